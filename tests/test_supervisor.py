"""``gateway serve --workers N``: the supervisor replaces a dead worker and stops cleanly.

Real processes. Workers are the supervisor's children (besides multiprocessing's resource
tracker); the ones that answered requests are known by the pid in their access lines.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from gateway.cli import RESTART_LIMIT
from gateway.config import ConfigError, parse_config
from tests.servers import Server, clean_env

PASSWORD = "admin-password-123"
#: Clients sending requests at once; at most this many can be in flight on a killed worker.
CONCURRENCY = 4
#: Bounds, in seconds: the whole load, and the wait for the replacement worker to answer.
LOAD_TIMEOUT = 15.0
REPLACEMENT_TIMEOUT = 10.0
#: Answers before the kill, so the load is known to flow through both workers.
WARMUP_ANSWERS = 20


def cpu_count() -> int:
    """What ``server.workers: auto`` means on this machine."""
    count: int | None = getattr(os, "process_cpu_count", os.cpu_count)()
    return min(max(count or 1, 1), 64)


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    config = tmp_path / "config.yaml"
    config.write_text("storage: {path: ./state/gateway.db}\nserver: {shutdown_timeout: 5 seconds}\n")
    return config, clean_env(GATEWAY_ADMIN_PASSWORD=PASSWORD)


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a process from /proc, None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # "pid (comm) state ppid ...": comm may itself hold spaces and parentheses.
    state, ppid = text[text.rindex(")") + 2:].split()[:2]
    return state, int(ppid)


def alive(pid: int) -> bool:
    stat = _stat(pid)
    return stat is not None and stat[0] != "Z"


def children(parent: int) -> set[int]:
    """The live processes whose parent is ``parent``."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None and stat[1] == parent and stat[0] != "Z":
                found.add(int(entry.name))
    return found


async def wait_until(condition: Callable[[], bool], within: float) -> bool:
    """Poll a process state until ``condition`` holds, for at most ``within`` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if condition():
            return True
        await asyncio.sleep(0.05)
    return condition()


async def test_a_killed_worker_is_replaced_while_the_service_keeps_answering(tmp_path, setup):
    config, env = setup
    server = Server(tmp_path, config, env, "--workers", "2")
    processes: set[int] = set()
    try:
        await server.wait_ready(workers=2)
        workers = server.pids_seen()
        assert len(workers) == 2
        assert workers <= children(server.process.pid)
        victim = min(workers)

        answers: list[tuple[float, int]] = []  # (when the request started, status)
        failures: list[tuple[float, str]] = []
        warmed_up = asyncio.Event()
        done = asyncio.Event()

        async def client(http: aiohttp.ClientSession) -> None:
            deadline = time.monotonic() + LOAD_TIMEOUT
            while not done.is_set() and time.monotonic() < deadline:
                started = time.monotonic()
                try:
                    async with http.get(f"{server.url}/healthz") as response:
                        await response.read()
                        answers.append((started, response.status))
                except (TimeoutError, aiohttp.ClientConnectionError) as exc:
                    failures.append((started, repr(exc)))
                if len(answers) >= WARMUP_ANSWERS:
                    warmed_up.set()

        # A fresh connection per request lets the kernel spread them over the workers.
        connector = aiohttp.TCPConnector(force_close=True)
        timeout = aiohttp.ClientTimeout(total=5)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
            clients = [asyncio.create_task(client(http)) for _ in range(CONCURRENCY)]
            try:
                await asyncio.wait_for(warmed_up.wait(), LOAD_TIMEOUT)
                assert not failures, failures
                killed_at = time.monotonic()
                os.kill(victim, signal.SIGKILL)
                replaced = await wait_until(lambda: bool(server.pids_seen() - workers),
                                            REPLACEMENT_TIMEOUT)
                supervisor_running = server.process.poll() is None
            finally:
                done.set()
                await asyncio.gather(*clients)

        assert replaced, f"no new worker answered within {REPLACEMENT_TIMEOUT}s:\n{server.output()}"
        assert supervisor_running, server.output()
        assert not alive(victim)
        (new,) = server.pids_seen() - workers
        assert f"gateway: worker {victim} exited with SIGKILL; started {new}" in server.output()
        assert new in children(server.process.pid)

        # Only requests in flight on the victim when it died may fail: one per client at most.
        assert len(failures) <= CONCURRENCY, failures
        assert all(status == 200 for _, status in answers)
        answered_after = [started for started, _ in answers if started > killed_at]
        assert answered_after, "answers after the kill"
        processes = children(server.process.pid) | server.pids_seen()
    finally:
        status = server.stop()
    assert status == 0, server.output()
    # Every worker (the resource tracker too) is gone with the supervisor.
    assert await wait_until(lambda: not any(alive(pid) for pid in processes), 5.0), \
        [pid for pid in processes if alive(pid)]
    assert "Traceback" not in server.output()


def accepts(port: int) -> bool:
    """Whether anything listens on the port."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


async def test_sigterm_drains_a_request_in_flight_even_when_workers_get_signals_too(tmp_path, setup):
    config, env = setup
    arrived, release = asyncio.Event(), asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        arrived.set()
        await release.wait()
        return web.Response(text="finished")

    app = web.Application()
    app.router.add_get("/slow", slow)
    upstream = TestServer(app, host="127.0.0.1")
    await upstream.start_server()
    config.write_text("storage: {path: ./state/gateway.db}\n"
                      "gateway:\n"
                      f"  upstreams: [{{prefix: /slow, url: 'http://127.0.0.1:{upstream.port}'}}]\n"
                      "  rules: [{path: '^/slow', policy: bypass}]\n")
    server = Server(tmp_path, config, env, "--workers", "2")
    try:
        await server.wait_ready(workers=2)
        workers = server.pids_seen()
        async with aiohttp.ClientSession() as http:
            async def fetch() -> tuple[int, str]:
                async with http.get(f"{server.url}/slow") as response:
                    return response.status, await response.text()

            request = asyncio.create_task(fetch())
            await asyncio.wait_for(arrived.wait(), 10)
            # As Ctrl-C in a terminal or systemd's stop do: every process gets a signal of
            # its own, and the supervisor forwards SIGTERM on top of it.
            for pid in workers:
                os.kill(pid, signal.SIGINT)
            server.process.send_signal(signal.SIGTERM)
            assert await wait_until(lambda: not accepts(server.port), 10.0), "workers stop listening"
            assert server.process.poll() is None, "the supervisor waits for the drain"
            release.set()
            assert await asyncio.wait_for(request, 10) == (200, "finished")
        assert await asyncio.to_thread(server.process.wait, 15) == 0, server.output()
    finally:
        release.set()
        status = server.stop()
        await upstream.close()
    assert status == 0, server.output()
    assert not any(alive(pid) for pid in workers)
    assert "Traceback" not in server.output()


async def test_workers_auto_starts_one_worker_per_cpu(tmp_path, setup):
    config, env = setup
    expected = cpu_count()
    if expected > 8:
        pytest.skip(f"{expected} CPUs: too many workers for a test")
    config.write_text("storage: {path: ./state/gateway.db}\nserver: {workers: auto}\n")
    server = Server(tmp_path, config, env)
    try:
        await server.wait_ready(workers=expected)
        assert len(server.pids_seen()) == expected
        if expected > 1:
            assert f"gateway: {expected} workers on {server.url}" in server.output()
            assert server.pids_seen() <= children(server.process.pid)
    finally:
        assert server.stop() == 0, server.output()


def test_workers_that_keep_dying_make_the_supervisor_give_up(tmp_path, setup):
    config, env = setup
    server = Server(tmp_path, config, env, "--workers", "2")
    killed: set[int] = set()
    try:
        deadline = time.monotonic() + 30
        # Kill every worker as soon as it exists: more than RESTART_LIMIT exits within
        # RESTART_WINDOW seconds, as workers that cannot start would make.
        while server.process.poll() is None and time.monotonic() < deadline:
            for pid in children(server.process.pid) - killed:
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
            time.sleep(0.02)
        server.process.wait(timeout=15)
    finally:
        status = server.stop()
    output = server.output()
    assert status == 1, output
    lines = [line for line in output.splitlines() if line.startswith("gateway: worker ")]
    started = [int(pid) for pid in re.findall(r"; started (\d+)$", output, re.MULTILINE)]
    assert len(started) == RESTART_LIMIT, output
    assert lines[-1].endswith("giving up"), output
    assert sum(line.endswith("giving up") for line in lines) == 1
    assert not any(alive(pid) for pid in killed | set(started))


def test_a_taken_port_stops_the_supervisor_before_any_worker_starts(tmp_path, setup):
    config, env = setup
    # The port is held by a socket without SO_REUSEPORT: no worker could bind it.
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        # The last --port wins over the one Server passes.
        server = Server(tmp_path, config, env, "--workers", "2", "--port", str(port))
        try:
            server.process.wait(timeout=60)
        finally:
            status = server.stop()
    assert status == 1
    assert server.output().strip() == f"gateway: cannot listen on 127.0.0.1:{port}: Address already in use"


def test_workers_many_is_a_one_line_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"server": {"workers": "many"}}, {})
    assert str(info.value) == "server.workers: expected a number from 1 to 64 or auto, got 'many'"
    for value in (0, 65, "0", True):
        with pytest.raises(ConfigError, match=r"^server\.workers: [^\n]+$"):
            parse_config({"server": {"workers": value}}, {})


def test_workers_auto_and_numbers_in_the_config() -> None:
    assert parse_config({"server": {"workers": "auto"}}, {}).server.workers == cpu_count()
    assert parse_config({"server": {"workers": "3"}}, {}).server.workers == 3
    assert parse_config({"server": {"workers": 64}}, {}).server.workers == 64


@pytest.mark.parametrize("value", ["many", "0", "65", "1.5"])
def test_a_bad_workers_option_is_a_clean_command_error(tmp_path, setup, value: str) -> None:
    config, env = setup
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "serve", "--config", str(config), "--workers", value],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60, check=False,
    )
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("gateway: --workers: "), result.stderr
    assert not (tmp_path / "state").exists(), "nothing was prepared"
