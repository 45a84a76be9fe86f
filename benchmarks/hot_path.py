"""The gateway's hot path (``/auth`` per credential, token verify) against a bare aiohttp app.

Usage: python benchmarks/hot_path.py [--duration 5] [--rounds 3] [--warmup 1] [--rows 0]
                                     [--issue] [--simplejwt] [--json PATH]

Starts, as separate processes on free loopback ports, a bare aiohttp app
(``benchmarks/bare_app.py``: ``/auth`` answers 200 after one header lookup) and the gateway
through its real command line (``gateway serve``, one worker, default logging: the JSON
access log is on, and its cost is part of what is measured), prepares credentials over
HTTP, then runs ``wrk -t1 -c32`` (keep-alive) against:

- ``GET /auth`` of the bare app (the baseline), with the very headers of the Bearer access
  request below, so both sides parse the same request;
- ``GET /auth`` of the gateway with ``X-Original-URI``/``X-Original-Method`` as nginx
  sends them, and each credential: Bearer access token, Bearer named token,
  ``X-Access-Token`` + ``X-Key`` (session), a media token in ``?signingKey=`` of a
  ``/media/<id>`` URL, and Basic;
- ``POST /api/token/verify/`` with an access token (``benchmarks/post_json.lua``).

The targets alternate: in each round every gateway path runs right after a run of the
bare app, and the next round repeats, so a noisy neighbour slows both sides of each pair
(these machines change speed within minutes). The figure per path is the median req/s
over the rounds, and its ratio is the median over the rounds of path / the bare run just
before it; compare ratios between runs and machines, not req/s. A ratio of 0.75 means the
gateway answers that path at three quarters of the rate at which aiohttp alone answers an
empty 200. Goals: 0.75 for Bearer access, named token and session; 0.65 for media, Basic
and verify. Beside each ratio the table gives the serving process's CPU time (user +
system, from ``/proc``) per request and the CPU ratio (bare's over the path's, from the
same pairs): req/s also falls when wrk or a neighbour takes the core, CPU per request
only when the work per request grows or the CPU itself slows; the req/s ratio stays the
measure of the goal. Each target is first asked once and must answer exactly 200 (201 for
``POST /token``), else the run stops with exit status 2. During the runs wrk counts
statuses of 400 and above ("non-2xx or 3xx") and socket errors; any of them is reported,
with the statuses the gateway's access log shows for that run, and makes the exit status
1. The gateway's config sets ``tokens.access_lifetime: 1 day`` so that tokens outlive
the run (a lifetime costs nothing per request); everything else is the default.

``--rows N`` fills the ``tokens`` table with N access-token rows of the admin (10 %
revoked) before the gateway starts, to see whether looking up token rows slows
with the table's size: run once with ``--rows 0`` and once with ``--rows 1000000`` and
compare the ratios. (``gateway migrate`` makes no user; the admin is then made with
``gateway users add``, as the first ``serve`` would have made it.)

``--issue`` also measures ``POST /token`` (HS256, one-time: every request writes a row and
commits with the configured ``storage.synchronous``) against ``GET /healthz`` of the same
gateway, at ``-c16``; the ratio is issue / healthz.

``--simplejwt`` also measures stock djangorestframework-simplejwt's ``TokenVerifyView``
(a minimal Django project written to a temporary directory: no middleware, no database
access on verify, the fastest stock setup) under ``gunicorn -w 1 --worker-class sync``,
in the same rounds, and prints gateway verify / SimpleJWT verify as "N times SimpleJWT"
(goal 12 times). Needs the ``bench`` extra: ``pip install -e '.[test,bench]'``.

Loopback only; every process started is stopped at the end and the temporary directory
removed. The default run takes about three minutes, with ``--issue --simplejwt`` about four.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import re
import secrets
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

HERE = Path(__file__).resolve().parent
BARE_APP = HERE / "bare_app.py"
POST_JSON_LUA = HERE / "post_json.lua"
HOST = "127.0.0.1"
ADMIN = "admin"
PASSWORD = "benchmark-password"
ACCESS_STATUS = re.compile(rb'^\{.*"status": (\d{3})')
NGINX_HEADERS = {"X-Original-URI": "/app/page", "X-Original-Method": "GET"}
ROW_BATCH = 50_000
TIMES = "\N{MULTIPLICATION SIGN}"
DAY = 86400


class BenchmarkError(Exception):
    """Something that stops the benchmark; printed as one message, exit status 2."""


@dataclass(frozen=True)
class Target:
    """One thing wrk hammers: a URL, its headers, and a JSON body for a POST."""

    key: str
    label: str
    port: int
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None
    connections: int = 32
    expect: int = 200
    baseline: str | None = None
    goal: float | None = None
    #: The gateway's log, whose JSON access lines tell the status of failed requests.
    access_log: Path | None = None
    #: The serving process, whose CPU time per request is measured (None: not measured).
    pid: int | None = None

    @property
    def method(self) -> str:
        return "GET" if self.body is None else "POST"

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}{self.path}"


@dataclass(frozen=True)
class WrkRun:
    requests_per_second: float
    requests: int
    non_2xx: int
    socket_errors: int
    #: Statuses other than 2xx in the gateway's access log during the run (gateway targets).
    log_statuses: dict[str, int] = field(default_factory=dict)
    #: CPU time (user + system) of the serving process per request, in microseconds.
    cpu_us: float | None = None


# Processes and HTTP


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def request(port: int, method: str, path: str, *, headers: dict[str, str] | None = None,
            body: object = None, raw_body: str | None = None) -> tuple[int, Any]:
    """One HTTP request to the loopback port; (status, parsed JSON body or None)."""
    all_headers = dict(headers or {})
    data: bytes | None = None
    if body is not None:
        raw_body = json.dumps(body)
    if raw_body is not None:
        data = raw_body.encode()
        all_headers["Content-Type"] = "application/json"
    connection = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        connection.request(method, path, body=data, headers=all_headers)
        response = connection.getresponse()
        payload = response.read()
    finally:
        connection.close()
    try:
        parsed = json.loads(payload) if payload else None
    except ValueError:
        parsed = payload[:200]
    return response.status, parsed


def tail(log: Path, lines: int = 15) -> str:
    try:
        text = log.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])


class Processes:
    """The servers this run started, each with its log file; stopped together."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._running: list[tuple[str, subprocess.Popen[bytes], IO[bytes]]] = []

    def start(self, name: str, argv: list[str], *, env: dict[str, str] | None = None,
              cwd: Path | None = None) -> tuple[subprocess.Popen[bytes], Path]:
        log_path = self._directory / f"{name}.log"
        log = log_path.open("wb")
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                   env=env, cwd=cwd)
        self._running.append((name, process, log))
        return process, log_path

    def stop_all(self) -> None:
        for _name, process, _log in reversed(self._running):
            if process.poll() is None:
                process.terminate()
        for _name, process, log in reversed(self._running):
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log.close()
        self._running.clear()


def wait_ready(name: str, process: subprocess.Popen[bytes], log: Path, port: int, method: str,
               path: str, *, ready: set[int], raw_body: str | None = None, seconds: float = 120) -> None:
    """Poll until ``method path`` answers a status in ``ready``; fail if the process dies."""
    deadline = time.monotonic() + seconds
    status: int | None = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchmarkError(f"{name} exited with status {process.returncode}:\n{tail(log)}")
        try:
            status, _ = request(port, method, path, raw_body=raw_body)
        except OSError:
            status = None
        if status in ready:
            return
        time.sleep(0.1)
    raise BenchmarkError(f"{name} did not get ready on port {port} (last status {status}):\n{tail(log)}")


# The database, for --rows


def run_cli(argv: list[str], env: dict[str, str], cwd: Path, stdin: str = "") -> str:
    completed = subprocess.run([sys.executable, "-m", "gateway", *argv], input=stdin,
                               capture_output=True, text=True, env=env, cwd=cwd, timeout=120,
                               check=False)
    if completed.returncode != 0:
        raise BenchmarkError(f"gateway {' '.join(argv[:2])} failed ({completed.returncode}):\n"
                             f"{completed.stdout}{completed.stderr}")
    return completed.stdout


def admin_id(database: Path) -> int | None:
    connection = sqlite3.connect(database)
    try:
        row = connection.execute("SELECT id FROM users WHERE tenant_id = 'default' AND username = ?",
                                 (ADMIN,)).fetchone()
    finally:
        connection.close()
    return None if row is None else int(row[0])


def token_rows(count: int, user_id: int, now: float) -> Iterator[tuple[object, ...]]:
    """Access-token rows of ``user_id``, unexpired, every tenth one revoked."""
    for index in range(count):
        revoked = index % 10 == 0
        yield (str(uuid.uuid4()), user_id, now, now + DAY,
               now if revoked else None, "benchmark" if revoked else None)


def seed_rows(config: Path, database: Path, rows: int, env: dict[str, str], cwd: Path) -> None:
    """Migrate, make sure the admin exists, and insert ``rows`` token rows in one transaction."""
    run_cli(["migrate", "--config", str(config)], env, cwd)
    user_id = admin_id(database)
    if user_id is None:
        # migrate makes the schema and tenants only; serve would bootstrap the root user,
        # so make the same user now (serve then sees a root user and leaves it alone).
        run_cli(["users", "add", ADMIN, "--config", str(config), "--role", "root",
                 "--roles", "ROLE_ADMIN", "--email", "admin@localhost", "--password-stdin"],
                env, cwd, stdin=PASSWORD + "\n")
        print(f"'gateway migrate' made no users: created {ADMIN!r} (root, ROLE_ADMIN) with "
              "'gateway users add'", flush=True)
        user_id = admin_id(database)
        if user_id is None:
            raise BenchmarkError(f"no user {ADMIN!r} in {database} after 'gateway users add'")
    started = time.perf_counter()
    connection = sqlite3.connect(database, isolation_level=None)
    try:
        connection.execute("BEGIN")
        rows_left = token_rows(rows, user_id, time.time())
        for start in range(0, rows, ROW_BATCH):
            batch = [next(rows_left) for _ in range(min(ROW_BATCH, rows - start))]
            connection.executemany(
                "INSERT INTO tokens (jti, kind, tenant_id, user_id, issued_at, expires_at, "
                "revoked_at, revoke_reason) VALUES (?, 'access', 'default', ?, ?, ?, ?, ?)", batch)
        connection.execute("COMMIT")
        total = connection.execute("SELECT count(*) FROM tokens").fetchone()[0]
    finally:
        connection.close()
    print(f"inserted {rows} token rows ({rows // 10} revoked) in {time.perf_counter() - started:.1f} s; "
          f"the tokens table has {total} rows", flush=True)


# SimpleJWT


DJANGO_SETTINGS = """\
from datetime import timedelta

SECRET_KEY = {secret!r}
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1"]
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "rest_framework",
    "rest_framework_simplejwt",
]
MIDDLEWARE = []
ROOT_URLCONF = "benchsite.urls"
DATABASES = {{"default": {{"ENGINE": "django.db.backends.sqlite3", "NAME": {database!r}}}}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
# Longer than the run, as the gateway's access tokens in this benchmark.
SIMPLE_JWT = {{"ACCESS_TOKEN_LIFETIME": timedelta(days=1)}}
"""
DJANGO_URLS = """\
from django.urls import path
from rest_framework_simplejwt.views import TokenVerifyView

urlpatterns = [path("api/token/verify/", TokenVerifyView.as_view())]
"""
DJANGO_WSGI = """\
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchsite.settings")

from django.core.wsgi import get_wsgi_application

application = get_wsgi_application()
"""
SIMPLEJWT_TOKEN = """\
import django

django.setup()
from rest_framework_simplejwt.tokens import AccessToken

token = AccessToken()
token["user_id"] = "1"
print(token)
"""


def write_django_project(directory: Path) -> dict[str, str]:
    """A minimal Django project serving TokenVerifyView; returns the environment to run it."""
    package = directory / "benchsite"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "settings.py").write_text(DJANGO_SETTINGS.format(
        secret=secrets.token_urlsafe(48), database=str(directory / "db.sqlite3")))
    (package / "urls.py").write_text(DJANGO_URLS)
    (package / "wsgi.py").write_text(DJANGO_WSGI)
    return {**os.environ, "DJANGO_SETTINGS_MODULE": "benchsite.settings", "PYTHONPATH": str(directory)}


def simplejwt_token(directory: Path, env: dict[str, str]) -> str:
    completed = subprocess.run([sys.executable, "-c", SIMPLEJWT_TOKEN], capture_output=True,
                               text=True, env=env, cwd=directory, timeout=60, check=False)
    if completed.returncode != 0:
        raise BenchmarkError(f"could not make a SimpleJWT token (is the bench extra installed?):\n"
                             f"{completed.stderr.strip()}")
    return completed.stdout.strip()


# Credentials and targets


def expect_json(port: int, method: str, path: str, statuses: set[int], **kwargs: Any) -> dict[str, Any]:
    got, body = request(port, method, path, **kwargs)
    if got not in statuses or not isinstance(body, dict):
        raise BenchmarkError(f"{method} {path} answered {got}, expected {sorted(statuses)}: {body!r:.300}")
    return body


def gateway_targets(port: int, log: Path, pid: int | None = None) -> tuple[list[Target], str]:
    """Prepare every credential over HTTP; the gateway's measured targets, and the access token."""
    login = {"username": ADMIN, "password": PASSWORD}
    access = expect_json(port, "POST", "/api/token/", {200}, body=login)["access"]
    basic = "Basic " + base64.b64encode(f"{ADMIN}:{PASSWORD}".encode()).decode()
    named = expect_json(port, "POST", "/api/v1alpha/token", {200, 201}, headers={"Authorization": basic},
                        body={"jwt_token_description": "bench", "jwt_token_life": "1 day"})["jwt_token"]
    session = expect_json(port, "POST", "/login", {200}, body=login)
    media = expect_json(port, "POST", "/token", {200, 201}, headers={"Authorization": f"Bearer {access}"},
                        body={"unique": False, "expire": 3600, "algorithm": "RS256"})["token"]
    common: dict[str, Any] = {"port": port, "baseline": "bare", "access_log": log, "pid": pid}
    return [
        Target("bearer_access", "GET /auth, Bearer access token", path="/auth", goal=0.75,
               headers={"Authorization": f"Bearer {access}", **NGINX_HEADERS}, **common),
        Target("bearer_named", "GET /auth, Bearer named token", path="/auth", goal=0.75,
               headers={"Authorization": f"Bearer {named}", **NGINX_HEADERS}, **common),
        Target("session", "GET /auth, X-Access-Token + X-Key", path="/auth", goal=0.75,
               headers={"X-Access-Token": session["token"], "X-Key": session["key"], **NGINX_HEADERS},
               **common),
        Target("media", "GET /auth, media ?signingKey=", path="/auth", goal=0.65,
               headers={"X-Original-URI": f"/media/28?signingKey={media}", "X-Original-Method": "GET"},
               **common),
        Target("basic", "GET /auth, Basic", path="/auth", goal=0.65,
               headers={"Authorization": basic, **NGINX_HEADERS}, **common),
        Target("verify", "POST /api/token/verify/", path="/api/token/verify/", goal=0.65,
               body=json.dumps({"token": access}), **common),
    ], access


def check_once(target: Target) -> None:
    """One request as wrk will send it; anything but the expected status stops the run."""
    status, body = request(target.port, target.method, target.path, headers=target.headers,
                           raw_body=target.body)
    if status != target.expect:
        raise BenchmarkError(f"{target.label}: {target.method} {target.path} answered {status}, "
                             f"expected {target.expect}: {body!r}")


# wrk


def failed_statuses(log: Path, offset: int) -> dict[str, int]:
    """Count the non-2xx statuses of the JSON access lines written to ``log`` after ``offset``."""
    counts: dict[str, int] = {}
    with log.open("rb") as lines:
        lines.seek(offset)
        for line in lines:
            found = ACCESS_STATUS.match(line)
            if found and not found.group(1).startswith(b"2"):
                status = found.group(1).decode()
                counts[status] = counts.get(status, 0) + 1
    return counts


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU time of process ``pid`` so far (Linux ``/proc``); None if unknown."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_wrk(wrk: str, target: Target, seconds: int) -> WrkRun:
    argv = [wrk, "-t1", f"-c{target.connections}", f"-d{seconds}s", "--timeout", "10s"]
    for name, value in target.headers.items():
        argv += ["-H", f"{name}: {value}"]
    env = dict(os.environ)
    if target.body is not None:
        argv += ["-s", str(POST_JSON_LUA)]
        env["WRK_BODY"] = target.body
    argv.append(target.url)
    log_offset = target.access_log.stat().st_size if target.access_log else 0
    cpu_before = cpu_seconds(target.pid)
    try:
        completed = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=seconds + 60,
                                   check=False)
    except subprocess.TimeoutExpired:
        raise BenchmarkError(f"wrk did not finish on {target.label} within {seconds + 60} s") from None
    cpu_after = cpu_seconds(target.pid)
    output = completed.stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    count = re.search(r"(\d+) requests in", output)
    if completed.returncode != 0 or rate is None or count is None:
        raise BenchmarkError(f"wrk failed on {target.label} ({completed.returncode}):\n"
                             f"{output}{completed.stderr}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    result = WrkRun(
        requests_per_second=float(rate.group(1)),
        requests=int(count.group(1)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(value) for value in errors.groups()) if errors else 0,
        cpu_us=(None if cpu_before is None or cpu_after is None or not int(count.group(1))
                else (cpu_after - cpu_before) / int(count.group(1)) * 1e6),
    )
    if result.non_2xx and target.access_log is not None:
        time.sleep(0.2)  # let the requests still in flight when wrk stopped be logged
        result.log_statuses.update(failed_statuses(target.access_log, log_offset))
    return result


# Reporting


def median_rate(runs: list[WrkRun]) -> float:
    return statistics.median(run.requests_per_second for run in runs)


def median_cpu(runs: list[WrkRun]) -> float | None:
    measured = [run.cpu_us for run in runs if run.cpu_us is not None]
    return statistics.median(measured) if measured else None


def merge(counts: Iterable[dict[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for one in counts:
        for status, count in one.items():
            total[status] = total.get(status, 0) + count
    return dict(sorted(total.items()))


def describe(statuses: dict[str, int]) -> str:
    """"; gateway access log: 44 x 429" for failed statuses, else nothing."""
    if not statuses:
        return ""
    return "; gateway access log: " + ", ".join(f"{count} x {status}" for status, count in statuses.items())


def _number(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def verdict(ratio: float, goal: float | None) -> str:
    if goal is None:
        return "-"
    return f"{goal:g} {'met' if ratio >= goal else 'MISSED'}"


def report(targets: list[Target], runs: dict[str, list[WrkRun]],
           pairs: dict[str, list[tuple[WrkRun, WrkRun]]], simplejwt: bool) -> dict[str, Any]:
    """Print the tables; the per-path figures. Paths measured in pairs with the bare app
    take their ratios from the pairs (median over rounds), others from the medians."""
    by_key = {target.key: target for target in targets}
    medians = {key: median_rate(value) for key, value in runs.items()}
    paths: dict[str, Any] = {}
    for target in targets:
        entry: dict[str, Any] = {
            "label": target.label,
            "connections": target.connections,
            "req_per_s": [run.requests_per_second for run in runs[target.key]],
            "median_req_per_s": medians[target.key],
            "non_2xx": sum(run.non_2xx for run in runs[target.key]),
            "socket_errors": sum(run.socket_errors for run in runs[target.key]),
            "failed_statuses_in_log": merge(run.log_statuses for run in runs[target.key]),
            "cpu_us_per_request": [run.cpu_us for run in runs[target.key]],
            "median_cpu_us_per_request": median_cpu(runs[target.key]),
        }
        if target.baseline is not None:
            entry["baseline"] = target.baseline
            entry["ratio"] = medians[target.key] / medians[target.baseline]
            entry["goal"] = target.goal
        if pairs.get(target.key):
            ratios = [path.requests_per_second / base.requests_per_second
                      for base, path in pairs[target.key]]
            entry["paired_ratios"] = ratios
            entry["ratio"] = statistics.median(ratios)
            cpu_ratios = [base.cpu_us / path.cpu_us for base, path in pairs[target.key]
                          if base.cpu_us and path.cpu_us]
            entry["cpu_ratio"] = statistics.median(cpu_ratios) if cpu_ratios else None
        paths[target.key] = entry

    bare_cpu = paths["bare"]["median_cpu_us_per_request"]
    print("\n| path | gateway req/s | bare req/s | ratio | goal | CPU µs/request | CPU ratio |")
    print("|---|---:|---:|---:|---|---:|---:|")
    for target in targets:
        if target.baseline != "bare":
            continue
        entry = paths[target.key]
        cpu = entry["median_cpu_us_per_request"]
        cpu_ratio = entry.get("cpu_ratio")
        print(f"| {target.label} | {entry['median_req_per_s']:.0f} | {medians['bare']:.0f} "
              f"| {entry['ratio']:.2f} | {verdict(entry['ratio'], target.goal)} "
              f"| {_number(cpu)} (bare {_number(bare_cpu)}) | {_number(cpu_ratio, 2)} |")
    extras = [target for target in targets if target.baseline not in (None, "bare")]
    if extras or simplejwt:
        print("\n| measure | req/s | against | req/s | ratio | goal |")
        print("|---|---:|---|---:|---:|---|")
        for target in extras:
            entry = paths[target.key]
            baseline = by_key[entry["baseline"]]
            print(f"| {target.label} (-c{target.connections}) | {entry['median_req_per_s']:.0f} "
                  f"| {baseline.label} | {medians[baseline.key]:.0f} | {entry['ratio']:.2f} "
                  f"| {verdict(entry['ratio'], target.goal)} |")
    if simplejwt:
        times = medians["verify"] / medians["simplejwt_verify"]
        paths["verify"]["times_simplejwt"] = times
        print(f"| {by_key['verify'].label}, gateway | {medians['verify']:.0f} "
              f"| {by_key['simplejwt_verify'].label} | {medians['simplejwt_verify']:.0f} "
              f"| {times:.1f} {TIMES} SimpleJWT | 12 {TIMES} {'met' if times >= 12 else 'MISSED'} |")
    failures = [f"{entry['label']}: {entry['non_2xx']} non-2xx/3xx, {entry['socket_errors']} socket errors"
                f"{describe(entry['failed_statuses_in_log'])}"
                for entry in paths.values() if entry["non_2xx"] or entry["socket_errors"]]
    if failures:
        print("\nRequests that failed:\n  " + "\n  ".join(failures))
    return paths


# The run


def run(arguments: argparse.Namespace) -> int:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise BenchmarkError("wrk is not installed (apt-get install wrk)")
    with tempfile.TemporaryDirectory(prefix="hot-path-") as temporary:
        directory = Path(temporary)
        processes = Processes(directory)
        try:
            return measure(arguments, wrk, directory, processes)
        finally:
            processes.stop_all()


def measure(arguments: argparse.Namespace, wrk: str, directory: Path, processes: Processes) -> int:
    bare_port, gateway_port = free_port(), free_port()
    database = directory / "data" / "gateway.db"
    config = directory / "config.yaml"
    config.write_text(textwrap.dedent(f"""\
        server: {{host: {HOST}, workers: 1}}
        storage: {{path: '{database}'}}
        # The run outlasts the default 5 minutes with --issue --simplejwt; lifetime costs nothing.
        tokens: {{access_lifetime: 1 day}}
        """))
    env = {name: value for name, value in os.environ.items()
           if not name.startswith("GATEWAY_") and not name.startswith("DJANGO_")}
    env.update(GATEWAY_SECRET_KEY=secrets.token_urlsafe(48), GATEWAY_ADMIN_PASSWORD=PASSWORD)
    if arguments.rows > 0:
        seed_rows(config, database, arguments.rows, env, directory)

    bare, bare_log = processes.start("bare", [sys.executable, str(BARE_APP), str(bare_port)])
    gateway, gateway_log = processes.start(
        "gateway", [sys.executable, "-m", "gateway", "serve", "--config", str(config),
                    "--port", str(gateway_port)], env=env, cwd=directory)
    simplejwt_port = free_port()
    simplejwt_token_text = ""
    if arguments.simplejwt:
        site = directory / "django"
        django_env = write_django_project(site)
        simplejwt_token_text = simplejwt_token(site, django_env)
        gunicorn, gunicorn_log = processes.start(
            "gunicorn", [sys.executable, "-m", "gunicorn", "-w", "1", "--worker-class", "sync",
                         "-b", f"{HOST}:{simplejwt_port}", "--chdir", str(site),
                         "benchsite.wsgi:application"], env=django_env, cwd=site)
    wait_ready("bare app", bare, bare_log, bare_port, "GET", "/auth", ready={200})
    wait_ready("gateway", gateway, gateway_log, gateway_port, "GET", "/readyz", ready={200})
    if arguments.simplejwt:
        wait_ready("gunicorn", gunicorn, gunicorn_log, simplejwt_port, "POST", "/api/token/verify/",
                   ready={200}, raw_body=json.dumps({"token": simplejwt_token_text}))

    measured, access = gateway_targets(gateway_port, gateway_log, gateway.pid)
    # The bare app gets the very request the Bearer path sends (same headers to parse), so
    # the ratio is what the gateway adds to aiohttp, not what a longer request costs.
    targets = [Target("bare", "GET /auth, bare aiohttp", bare_port, "/auth",
                      dict(measured[0].headers), pid=bare.pid), *measured]
    if arguments.issue:
        targets += [
            Target("healthz", "GET /healthz", gateway_port, "/healthz", connections=16,
                   access_log=gateway_log),
            Target("issue", "POST /token HS256 unique", gateway_port, "/token",
                   {"Authorization": f"Bearer {access}"},
                   body=json.dumps({"unique": True, "algorithm": "HS256"}),
                   connections=16, expect=201, baseline="healthz", access_log=gateway_log),
        ]
    if arguments.simplejwt:
        targets.append(Target("simplejwt_verify", "SimpleJWT TokenVerifyView", simplejwt_port,
                              "/api/token/verify/", body=json.dumps({"token": simplejwt_token_text})))
    for target in targets:
        check_once(target)
    print(f"all {len(targets)} targets answer {', '.join(sorted({str(t.expect) for t in targets}))}; "
          f"wrk -t1 -d{arguments.duration}s, {arguments.rounds} rounds, tokens rows seeded: "
          f"{arguments.rows}; 1-minute load average before: {os.getloadavg()[0]:.2f}", flush=True)

    if arguments.warmup > 0:
        for target in targets:
            run_wrk(wrk, target, arguments.warmup)
    runs: dict[str, list[WrkRun]] = {target.key: [] for target in targets}
    pairs: dict[str, list[tuple[WrkRun, WrkRun]]] = {target.key: [] for target in targets}
    bare = targets[0]
    for round_number in range(1, arguments.rounds + 1):
        for target in targets[1:]:
            # Each path against the bare app measured just before it (see the docstring).
            sequence = [bare, target] if target.baseline == "bare" else [target]
            for measured_target in sequence:
                result = run_wrk(wrk, measured_target, arguments.duration)
                runs[measured_target.key].append(result)
                failed = (f"  ({result.non_2xx} non-2xx, {result.socket_errors} socket errors"
                          f"{describe(result.log_statuses)})"
                          if result.non_2xx or result.socket_errors else "")
                print(f"round {round_number}/{arguments.rounds}  {measured_target.label:<36} "
                      f"{result.requests_per_second:9.0f} req/s{failed}", flush=True)
            if target.baseline == "bare":
                pairs[target.key].append((runs["bare"][-1], runs[target.key][-1]))
        if gateway.poll() is not None:
            raise BenchmarkError(f"the gateway exited during round {round_number}:\n{tail(gateway_log)}")

    paths = report(targets, runs, pairs, arguments.simplejwt)
    if arguments.json:
        Path(arguments.json).write_text(json.dumps({
            "duration_s": arguments.duration,
            "rounds": arguments.rounds,
            "warmup_s": arguments.warmup,
            "rows": arguments.rows,
            "load_average_at_end": os.getloadavg()[0],
            "wrk_threads": 1,
            "paths": paths,
        }, indent=2) + "\n")
    return 1 if any(entry["non_2xx"] or entry["socket_errors"] for entry in paths.values()) else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run (default 5)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    parser.add_argument("--warmup", type=int, default=1,
                        help="seconds of wrk per target before the rounds (default 1; 0: none)")
    parser.add_argument("--rows", type=int, default=0,
                        help="token rows to insert before the gateway starts (default 0)")
    parser.add_argument("--issue", action="store_true", help="also POST /token against GET /healthz")
    parser.add_argument("--simplejwt", action="store_true",
                        help="also SimpleJWT's TokenVerifyView under gunicorn (bench extra)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    arguments = parser.parse_args()
    if arguments.rounds < 1 or arguments.duration <= 0 or arguments.rows < 0 or arguments.warmup < 0:
        parser.error("--rounds must be at least 1, --duration positive, --rows and --warmup >= 0")
    try:
        status = run(arguments)
    except BenchmarkError as exc:
        print(f"hot_path: {exc}", file=sys.stderr)
        status = 2
    sys.exit(status)


if __name__ == "__main__":
    main()
