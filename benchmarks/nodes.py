"""PostgreSQL against SQLite, and how fast a revocation reaches the other nodes.

Usage: python benchmarks/nodes.py [--duration 5] [--rounds 3] [--samples 40]
                                  [--postgres-url URL]

Starts, as separate ``gateway serve`` processes (one worker each) on free loopback ports,
a node on a SQLite file and three nodes (A, B, C) on one PostgreSQL database made for the
run (``--postgres-url``, default ``$GATEWAY_TEST_POSTGRES_URL`` or the local server; the
database is dropped at the end), then:

1. Throughput, in alternating rounds of ``wrk -t1`` (medians, ratio PostgreSQL / SQLite of
   the same run): ``GET /auth`` with a Bearer access token already seen (``-c32``; both
   answer from the identity cache, so they should be close), and ``POST /token`` (HS256,
   one-time: a row written and committed per request, ``-c16``).
2. Revocation lag: ``--samples`` times, a session made by ``POST /login`` on A is used on
   B and C (so it is cached there), then ``POST /logout`` on A; from the moment the logout
   answered, B and C are polled (one keep-alive connection each, bounded) until each
   refuses the token. Prints p50 / p99 / max of those delays, in milliseconds, and checks
   that A itself refused it on the very next request. The goal is 100 ms.

Needs ``wrk`` and a PostgreSQL server; loopback only. Takes about a minute and a half.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
from hot_path import (
    HOST,
    BenchmarkError,
    Processes,
    Target,
    WrkRun,
    expect_json,
    free_port,
    median_rate,
    run_wrk,
    wait_ready,
)

PASSWORD = "benchmark-password"
LAG_GOAL_MS = 100.0
#: Bound on polling one node for the refusal of one revoked token.
POLL_LIMIT_S = 2.0


def postgres_admin(url: str, statement: str) -> None:
    async def run() -> None:
        connection = await asyncpg.connect(url, timeout=10)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    asyncio.run(run())


class Node:
    """One ``gateway serve`` of this run."""

    def __init__(self, name: str, processes: Processes, directory: Path, storage: str,
                 env: dict[str, str]) -> None:
        self.name = name
        self.port = free_port()
        config = directory / f"{name}.yaml"
        config.write_text(textwrap.dedent(f"""\
            server: {{host: {HOST}, workers: 1}}
            storage: {storage}
            tokens: {{access_lifetime: 1 day}}
            login: {{regulation: {{max_retries: 0}}}}
            """))
        self.process, self.log = processes.start(
            name, [sys.executable, "-m", "gateway", "serve", "--config", str(config),
                   "--port", str(self.port)], env=env, cwd=directory)

    def wait(self) -> None:
        wait_ready(self.name, self.process, self.log, self.port, "GET", "/readyz", ready={200})


def throughput(arguments: argparse.Namespace, wrk: str, sqlite: Node, postgres: Node) -> None:
    targets: list[Target] = []
    for node in (sqlite, postgres):
        login = {"username": "admin", "password": PASSWORD}
        access = expect_json(node.port, "POST", "/api/token/", {200}, body=login)["access"]
        bearer = {"Authorization": f"Bearer {access}"}
        targets += [
            Target(f"auth_{node.name}", f"GET /auth Bearer, {node.name}", node.port, "/auth",
                   {**bearer, "X-Original-URI": "/app", "X-Original-Method": "GET"},
                   access_log=node.log),
            Target(f"issue_{node.name}", f"POST /token HS256, {node.name}", node.port, "/token",
                   bearer, body=json.dumps({"unique": True, "algorithm": "HS256"}),
                   connections=16, expect=201, access_log=node.log),
        ]
    runs: dict[str, list[WrkRun]] = {target.key: [] for target in targets}
    for round_number in range(1, arguments.rounds + 1):
        for target in targets:
            result = run_wrk(wrk, target, arguments.duration)
            runs[target.key].append(result)
            trouble = (f"  ({result.non_2xx} non-2xx, {result.socket_errors} socket errors)"
                       if result.non_2xx or result.socket_errors else "")
            print(f"round {round_number}/{arguments.rounds}  {target.label:<34} "
                  f"{result.requests_per_second:9.0f} req/s{trouble}", flush=True)
    print("\n| measure | SQLite req/s | PostgreSQL req/s | PostgreSQL / SQLite |")
    print("|---|---:|---:|---:|")
    for kind, label in (("auth", "GET /auth, Bearer access (cached), -c32"),
                        ("issue", "POST /token HS256 one-time, -c16")):
        lite = median_rate(runs[f"{kind}_{sqlite.name}"])
        pg = median_rate(runs[f"{kind}_{postgres.name}"])
        print(f"| {label} | {lite:.0f} | {pg:.0f} | {pg / lite:.2f} |")


def status_of(connection: http.client.HTTPConnection, headers: dict[str, str]) -> int:
    connection.request("GET", "/auth", headers=headers)
    response = connection.getresponse()
    response.read()
    return response.status


def revocation_lag(samples: int, a: Node, others: list[Node]) -> None:
    connections = {node.name: http.client.HTTPConnection(HOST, node.port, timeout=10)
                   for node in (a, *others)}
    lags: list[float] = []
    try:
        for _ in range(samples):
            session = expect_json(a.port, "POST", "/login", {200},
                                  body={"username": "admin", "password": PASSWORD})
            headers = {"X-Access-Token": session["token"], "X-Key": session["key"],
                       "X-Original-URI": "/app", "X-Original-Method": "GET"}
            for node in others:
                for _ in range(3):
                    if status_of(connections[node.name], headers) != 200:
                        raise BenchmarkError(f"{node.name} refused a live session")
            expect_json(a.port, "POST", "/logout", {200},
                        headers={"X-Access-Token": session["token"], "X-Key": session["key"]})
            answered = time.perf_counter()
            if status_of(connections[a.name], headers) != 401:
                raise BenchmarkError("the revoking node accepted the token after its logout")
            for node in others:
                while status_of(connections[node.name], headers) != 401:
                    if time.perf_counter() - answered > POLL_LIMIT_S:
                        raise BenchmarkError(f"{node.name} still accepts a token revoked "
                                             f"{POLL_LIMIT_S} s ago")
                lags.append((time.perf_counter() - answered) * 1000)
    finally:
        for connection in connections.values():
            connection.close()
    ordered = sorted(lags)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    verdict = "met" if max(ordered) <= LAG_GOAL_MS else "MISSED"
    print(f"\nrevocation lag to the other nodes ({len(lags)} samples, logout on A, "
          f"refusal seen on {', '.join(node.name for node in others)}): "
          f"p50 {statistics.median(ordered):.1f} ms, p99 {p99:.1f} ms, max {max(ordered):.1f} ms "
          f"(goal {LAG_GOAL_MS:.0f} ms: {verdict}); the revoking node refused it at once")


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run (default 5)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    parser.add_argument("--samples", type=int, default=40, help="revocations timed (default 40)")
    parser.add_argument("--postgres-url", default=os.environ.get(
        "GATEWAY_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
    arguments = parser.parse_args()
    wrk = shutil.which("wrk")
    if wrk is None:
        raise BenchmarkError("wrk is not installed (apt-get install wrk)")
    database = f"gateway_bench_{secrets.token_hex(4)}"
    postgres_admin(arguments.postgres_url, f'CREATE DATABASE "{database}"')
    url = urlsplit(arguments.postgres_url)._replace(path=f"/{database}").geturl()
    try:
        with tempfile.TemporaryDirectory(prefix="nodes-") as temporary:
            directory = Path(temporary)
            processes = Processes(directory)
            env = {name: value for name, value in os.environ.items()
                   if not name.startswith("GATEWAY_")}
            env.update(GATEWAY_SECRET_KEY=secrets.token_urlsafe(48), GATEWAY_ADMIN_PASSWORD=PASSWORD)
            try:
                sqlite = Node("sqlite", processes, directory, "{path: ./sqlite/gateway.db}", env)
                first = Node("pg-a", processes, directory, f"{{url: '{url}'}}", env)
                sqlite.wait()
                first.wait()  # migrated the database and made the admin: the others start on it
                others = [Node(name, processes, directory, f"{{url: '{url}'}}", env)
                          for name in ("pg-b", "pg-c")]
                for node in others:
                    node.wait()
                print(f"nodes ready; 1-minute load average {os.getloadavg()[0]:.2f}", flush=True)
                throughput(arguments, wrk, sqlite, first)
                revocation_lag(arguments.samples, first, others)
            finally:
                processes.stop_all()
    finally:
        postgres_admin(arguments.postgres_url, f'DROP DATABASE "{database}" WITH (FORCE)')
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchmarkError as exc:
        print(f"nodes: {exc}", file=sys.stderr)
        sys.exit(2)
