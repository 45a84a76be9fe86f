"""Instructions per request under callgrind: the bare aiohttp app against the gateway's paths.

Usage: python benchmarks/instructions.py [--requests 2000] [--paths bearer_access,basic,...]

wrk's req/s on a shared machine moves by tens of percent between minutes; the count of
user-space instructions a server executes per request does not (valgrind's callgrind counts
them, whatever else the machine is doing). Each server (``benchmarks/bare_app.py`` and
``gateway serve``, one worker, as ``benchmarks/hot_path.py`` starts them) runs under
``valgrind --tool=callgrind --instr-atstart=no``; for each target, instrumentation is
switched on, 100 requests warm it, the counters are zeroed, ``--requests`` requests are
sent over four keep-alive connections, and the dump's total divided by the requests is
printed, with the ratio bare / path (what the hot_path ratios would be if the kernel's
share of a request and the CPU's cache behaviour were the same on both sides; they are
not, so req/s ratios come out lower, but a change that removes instructions shows here
first and for certain).

Needs valgrind (``apt-get install valgrind``); about a minute per target. Loopback only;
every process started is stopped at the end.
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import hot_path  # the servers, credentials and targets of the hot-path benchmark

KEYS = ("bare", "bearer_access", "bearer_named", "session", "media", "basic", "verify")
TOTAL = re.compile(r"^(?:summary|totals): (\d+)", re.MULTILINE)


def send(target: hot_path.Target, count: int, connections: int = 4) -> None:
    """``count`` requests as the target describes them, each answered as expected."""
    clients = [http.client.HTTPConnection(hot_path.HOST, target.port, timeout=120)
               for _ in range(connections)]
    headers = dict(target.headers)
    body = target.body.encode() if target.body is not None else None
    if body is not None:
        headers["Content-Type"] = "application/json"
    try:
        for index in range(count):
            client = clients[index % connections]
            client.request(target.method, target.path, body=body, headers=headers)
            response = client.getresponse()
            response.read()
            if response.status != target.expect:
                raise hot_path.BenchmarkError(f"{target.label} answered {response.status}")
    finally:
        for client in clients:
            client.close()


CALLGRIND_CONTROL = shutil.which("callgrind_control") or "callgrind_control"


def callgrind(pid: int, *arguments: str) -> None:
    subprocess.run([CALLGRIND_CONTROL, *arguments, str(pid)], capture_output=True, check=False,
                   timeout=120)


def measure(arguments: argparse.Namespace, directory: Path, processes: hot_path.Processes) -> None:
    bare_port, gateway_port = hot_path.free_port(), hot_path.free_port()
    config = directory / "config.yaml"
    config.write_text(textwrap.dedent(f"""\
        server: {{host: {hot_path.HOST}, workers: 1}}
        storage: {{path: '{directory / "data" / "gateway.db"}'}}
        tokens: {{access_lifetime: 1 day}}
        """))
    env = {name: value for name, value in os.environ.items() if not name.startswith("GATEWAY_")}
    env.update(GATEWAY_SECRET_KEY=secrets.token_urlsafe(48), GATEWAY_ADMIN_PASSWORD=hot_path.PASSWORD)
    dumps = directory / "dumps"
    dumps.mkdir()
    valgrind = ["valgrind", "--tool=callgrind", "--instr-atstart=no",
                f"--callgrind-out-file={dumps}/callgrind.%p"]
    bare, bare_log = processes.start("bare", [*valgrind, sys.executable, str(hot_path.BARE_APP),
                                              str(bare_port)], env=env)
    gateway, gateway_log = processes.start(
        "gateway", [*valgrind, sys.executable, "-m", "gateway", "serve", "--config", str(config),
                    "--port", str(gateway_port)], env=env, cwd=directory)
    hot_path.wait_ready("bare app", bare, bare_log, bare_port, "GET", "/auth", ready={200}, seconds=600)
    hot_path.wait_ready("gateway", gateway, gateway_log, gateway_port, "GET", "/readyz", ready={200},
                        seconds=600)
    measured, _ = hot_path.gateway_targets(gateway_port, gateway_log)
    targets = [hot_path.Target("bare", "GET /auth, bare aiohttp", bare_port, "/auth",
                               dict(measured[0].headers)), *measured]
    wanted = [target for target in targets if target.key in arguments.paths]
    print(f"{arguments.requests} requests per target over 4 keep-alive connections, under callgrind",
          flush=True)
    counts: dict[str, float] = {}
    for target in wanted:
        pid = bare.pid if target.key == "bare" else gateway.pid
        callgrind(pid, "--instr=on")
        send(target, 100)
        callgrind(pid, "--zero")
        send(target, arguments.requests)
        for old in dumps.iterdir():
            old.unlink()
        callgrind(pid, "--dump")
        deadline = time.monotonic() + 60
        totals: list[int] = []
        while time.monotonic() < deadline and not totals:
            time.sleep(0.5)
            totals = [int(found.group(1)) for dump in dumps.iterdir()
                      if (found := TOTAL.search(dump.read_text(errors="replace")))]
        if not totals:
            raise hot_path.BenchmarkError(f"no callgrind dump for {target.label}")
        counts[target.key] = sum(totals) / arguments.requests
        ratio = (f"  ratio bare/path {counts['bare'] / counts[target.key]:.2f}"
                 if "bare" in counts and target.key != "bare" else "")
        print(f"{target.label:<36} {counts[target.key]:10.0f} instructions/request{ratio}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per target (default 2000)")
    parser.add_argument("--paths", default=",".join(KEYS),
                        help=f"targets, comma-separated (default: all of {', '.join(KEYS)})")
    arguments = parser.parse_args()
    arguments.paths = [key for key in arguments.paths.split(",") if key]
    unknown = set(arguments.paths) - set(KEYS)
    if unknown or arguments.requests < 1:
        parser.error(f"unknown paths {sorted(unknown)}" if unknown else "--requests must be positive")
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        print("instructions: valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        sys.exit(2)
    with tempfile.TemporaryDirectory(prefix="instructions-") as temporary:
        processes = hot_path.Processes(Path(temporary))
        try:
            measure(arguments, Path(temporary), processes)
        except hot_path.BenchmarkError as exc:
            print(f"instructions: {exc}", file=sys.stderr)
            sys.exit(2)
        finally:
            processes.stop_all()


if __name__ == "__main__":
    main()
