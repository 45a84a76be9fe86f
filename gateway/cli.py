"""The ``gateway`` command (docs/operations.md): serve, migrate, users, tenants, tokens."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import logging
import multiprocessing
import multiprocessing.connection
import os
import shutil
import signal
import sys
import tempfile
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any, TypeVar

from pydantic import ValidationError

from gateway import __version__
from gateway.admin import (
    CLI,
    Administration,
    AuditQuery,
    InvalidField,
    NewTenant,
    NewUserRequest,
    UserChanges,
    validated,
)
from gateway.audit import format_line
from gateway.bootstrap import bootstrap, ensure_tenants
from gateway.config import Config, ConfigError, ServerConfig, load_config
from gateway.durations import format_duration
from gateway.errors import GatewayError
from gateway.metrics import MULTIPROC_ENV
from gateway.passwords import validate_new_password
from gateway.services import Services, build_services, make_hasher, open_store
from gateway.storage import MigrationError, Role, StorageError, Store

__all__ = ["main"]

ROLES = {role.name.lower(): role for role in Role}
T = TypeVar("T")
#: Seconds a revocation log row is kept: far longer than any process takes to read it.
CHANGE_LOG_RETENTION = 86400


class CommandError(Exception):
    """A command that cannot do what was asked; printed as one line, exit 1."""


def _parser() -> argparse.ArgumentParser:
    config_help = "config file (default: $GATEWAY_CONFIG, else ./config.yaml)"
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: a --config after the command overrides one before it, and absence none.
    common.add_argument("--config", default=argparse.SUPPRESS, help=config_help)
    tenant = argparse.ArgumentParser(add_help=False)
    tenant.add_argument("--tenant", default="default", help="tenant id (default: default)")
    stdin = argparse.ArgumentParser(add_help=False)
    stdin.add_argument("--password-stdin", action="store_true",
                       help="read the password from standard input instead of prompting")

    parser = argparse.ArgumentParser(prog="gateway", description="JWT auth gateway")
    parser.add_argument("--version", action="version", version=f"gateway {__version__}")
    parser.add_argument("--config", help=config_help)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", parents=[common], help="run the HTTP server")
    serve.add_argument("--host", help="address to listen on (default: server.host)")
    serve.add_argument("--port", type=int, help="port to listen on (default: server.port)")
    serve.add_argument("--workers", metavar="N|auto",
                       help="processes sharing the port, auto: one per CPU core (default: server.workers)")

    commands.add_parser("migrate", parents=[common], help="apply database migrations")

    users = commands.add_parser("users", help="manage users").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    add = users.add_parser("add", parents=[common, tenant, stdin], help="create a user")
    add.add_argument("username")
    add.add_argument("--email")
    add.add_argument("--role", choices=sorted(ROLES), default="user")
    add.add_argument("--roles", default="", help="comma-separated role strings, e.g. ROLE_USER,ROLE_ADMIN")
    users.add_parser("list", parents=[common, tenant], help="list the users of a tenant")
    passwd = users.add_parser("passwd", parents=[common, tenant, stdin],
                              help="set a password (revokes the user's tokens)")
    passwd.add_argument("username")
    for action, text in (("disable", "disable a user (revokes their tokens)"),
                         ("enable", "enable a user")):
        users.add_parser(action, parents=[common, tenant], help=text).add_argument("username")
    roles = users.add_parser("roles", parents=[common, tenant], help="replace a user's role strings")
    roles.add_argument("username")
    roles.add_argument("roles", help="comma-separated, e.g. ROLE_USER,ROLE_ADMIN ('' clears)")

    tenants = commands.add_parser("tenants", help="manage tenants").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    tenants.add_parser("add", parents=[common], help="create a tenant").add_argument("id")
    tenants.add_parser("list", parents=[common], help="list tenants")

    keys = commands.add_parser(
        "keys", help="tenant signing keys (media tokens; RS256/ES256 user tokens)",
    ).add_subparsers(
        dest="action", required=True, metavar="ACTION")
    keys.add_parser("rotate", parents=[common, tenant],
                    help="new keys for the tenant; old tokens verify until they expire")
    keys.add_parser("list", parents=[common, tenant], help="list the tenant's keys")

    tokens = commands.add_parser("tokens", help="token housekeeping").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    tokens.add_parser("prune", parents=[common],
                      help="drop expired token rows and stale login failures")
    tokens.add_parser("revoke", parents=[common, tenant],
                      help="log a user out everywhere: revoke every token of the user"
                      ).add_argument("username")

    audit = commands.add_parser("audit", parents=[common, tenant],
                                help="the tenant's security events, one per line")
    audit.add_argument("--user", help="only events whose actor or subject is this user")
    audit.add_argument("--since", help="ISO 8601 time, or a duration back from now ('1 hour')")
    audit.add_argument("--limit", default="100", help="the newest N events (default 100)")
    return parser


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Repeat password: ") != password:
            raise CommandError("the passwords do not match")
    try:
        validate_new_password(password)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    return password


async def _with_store(config: Config, action: Callable[[Store], Awaitable[T]]) -> T:
    store = await open_store(config)
    try:
        await ensure_tenants(store, config, time.time())
        return await action(store)
    finally:
        await store.close()


async def _with_services(config: Config, action: Callable[[Services], Awaitable[T]]) -> T:
    """Run ``action`` with the services a server builds (``services.build_services``)."""
    hasher = make_hasher(config)

    async def run(store: Store) -> T:
        services = await build_services(config, store, hasher, time.time)
        try:
            return await action(services)
        finally:
            services.close()

    try:
        return await _with_store(config, run)
    finally:
        hasher.close()


async def _prepare(config: Config) -> None:
    """Migrate and bootstrap before any worker starts, so that happens exactly once."""
    hasher = make_hasher(config)
    try:
        await _with_store(config, lambda store: bootstrap(store, config, hasher, time.time()))
    finally:
        hasher.close()


def _run_worker(config: Config, config_path: str | None, host: str, port: int,
                reuse_port: bool) -> None:
    # Imported here: the user and tenant commands start faster without the server stack.
    from gateway.logs import configure_logging

    # A SIGHUP before the server's own handler is in place must not end the process.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    configure_logging(config.logging.level, config.logging.format)
    serve = _serve_until_signalled(config, config_path, host, port, reuse_port)
    if not reuse_port:
        asyncio.run(serve)
        return
    try:  # a supervised worker: one line, and the supervisor decides what follows
        asyncio.run(serve)
    except CommandError as exc:
        print(f"gateway: {exc}", file=sys.stderr, flush=True)
        sys.exit(1)


async def _serve_until_signalled(config: Config, config_path: str | None, host: str, port: int,
                                 reuse_port: bool) -> None:
    """Serve (on the shared port when supervised) until SIGTERM or SIGINT, then drain;
    SIGHUP reloads the config file (``gateway.reload``).

    Not ``web.run_app``: its handler raises on every signal, so a second one cuts the drain
    short, and a worker often gets two (Ctrl-C reaches the whole process group and the
    supervisor forwards SIGTERM too; systemd signals every process of the unit). Here
    repeats are ignored; a worker that overruns its drain is killed by the supervisor.
    """
    from aiohttp import web

    from gateway.app import create_app
    from gateway.logs import AccessLogger
    from gateway.reload import reload_config
    from gateway.runner import GatewayRunner

    app = create_app(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    reloads: set[asyncio.Task[bool]] = set()

    def hang_up() -> None:
        task = loop.create_task(reload_config(app, config_path))
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    runner = GatewayRunner(
        app, access_log_class=AccessLogger,
        access_log=logging.getLogger("gateway.access"), keepalive_timeout=75.0,
        shutdown_timeout=config.server.shutdown_timeout,
    )
    await runner.setup()
    try:
        try:
            await web.TCPSite(runner, host, port, reuse_port=reuse_port or None).start()
        except OSError as exc:
            raise _not_listening(host, port, exc) from None
        if not reuse_port:  # the supervisor announces its workers itself
            print(f"gateway: listening on http://{host}:{port}", flush=True)
        loop.add_signal_handler(signal.SIGHUP, hang_up)
        await stop.wait()
    finally:
        await runner.cleanup()


#: Crash-loop guard: when workers exit more than RESTART_LIMIT times within RESTART_WINDOW
#: seconds (all workers together), the supervisor gives up instead of restarting again.
#: A worker takes about a second to start, so workers that cannot start (database
#: unreadable, out of memory) pass this within a few seconds, while deaths of running workers
#: (an OOM kill, an operator's kill -9) are far rarer than one every two seconds.
RESTART_LIMIT = 5
RESTART_WINDOW = 10.0
#: How long after server.shutdown_timeout a stopping worker may take before it is killed:
#: the drain itself is bounded by aiohttp; this covers closing the store and exiting.
STOP_GRACE = 5.0


def _worker_count(text: str) -> int:
    """``--workers N|auto``, validated and resolved exactly as ``server.workers`` is."""
    try:
        return ServerConfig.model_validate({"workers": text}).workers
    except ValidationError as exc:
        message = exc.errors()[0]["msg"].removeprefix("Value error, ")
        raise CommandError(f"--workers: {message}") from None


def _exit_text(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            return signal.Signals(-exitcode).name
        except ValueError:
            return f"signal {-exitcode}"
    return f"status {exitcode}"


def _not_listening(host: str, port: int, exc: OSError) -> CommandError:
    reason = os.strerror(exc.errno) if exc.errno else str(exc)
    return CommandError(f"cannot listen on {host}:{port}: {reason}")


async def _check_listenable(host: str, port: int, reuse_port: bool) -> None:
    """Bind and close at once, as the server will bind: a port in use (or an address this
    machine does not have) is one line before anything starts, not a worker crash loop."""
    try:
        server = await asyncio.get_running_loop().create_server(
            asyncio.Protocol, host, port, reuse_port=reuse_port or None)
    except OSError as exc:
        raise _not_listening(host, port, exc) from None
    server.close()
    await server.wait_closed()


def _serve(config: Config, args: argparse.Namespace) -> int:
    host = args.host or config.server.host
    port = args.port if args.port is not None else config.server.port
    workers = config.server.workers if args.workers is None else _worker_count(args.workers)
    if not 1 <= port <= 65535:
        raise CommandError(f"--port: {port} is not a port number")
    asyncio.run(_check_listenable(host, port, reuse_port=workers > 1))
    asyncio.run(_prepare(config))
    with _metrics_directory():
        if workers == 1:
            _run_worker(config, args.config, host, port, reuse_port=False)
            return 0
        return _supervise(config, args.config, host, port, workers)


@contextlib.contextmanager
def _metrics_directory() -> Iterator[None]:
    """prometheus-client's multiprocess directory for this run, so that one scrape of any
    worker sums them all (``gateway.metrics``): set before a worker imports the library,
    removed at exit. One the operator set in the environment is used as it is."""
    if os.environ.get(MULTIPROC_ENV):
        yield
        return
    directory = tempfile.mkdtemp(prefix="gateway-metrics-")
    os.environ[MULTIPROC_ENV] = directory
    try:
        yield
    finally:
        del os.environ[MULTIPROC_ENV]
        shutil.rmtree(directory, ignore_errors=True)


def _supervise(config: Config, config_path: str | None, host: str, port: int,
               workers: int) -> int:
    """Run ``workers`` processes on one port and keep that many running until SIGTERM/SIGINT.

    Each binds with SO_REUSEPORT and the kernel spreads connections between them; they
    share the SQLite file (see storage.sqlite). A worker that exits while the supervisor is
    not stopping is replaced; see RESTART_LIMIT for when it gives up instead. SIGHUP: the
    supervisor loads the config file (a bad one is refused here, once), keeps it for the
    workers it starts from then on, and passes SIGHUP to every worker.
    """
    from gateway.logs import configure_logging
    from gateway.reload import load_for_reload

    configure_logging(config.logging.level, config.logging.format)
    context = multiprocessing.get_context("spawn")
    stopping = False
    hung_up = False
    # A signal writes to this pipe, so the wait below wakes at once.
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    os.set_blocking(wake_read, False)

    def on_signal(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True
        try:
            os.write(wake_write, b"\0")
        except BlockingIOError:
            pass

    def on_hangup(signum: int, frame: Any) -> None:
        nonlocal hung_up
        hung_up = True
        try:
            os.write(wake_write, b"\0")
        except BlockingIOError:
            pass

    def start(index: int) -> multiprocessing.process.BaseProcess:
        process = context.Process(target=_run_worker,
                                  args=(config, config_path, host, port, True),
                                  name=f"gateway-worker-{index}")
        process.start()
        return process

    # Before the first start: a signal in between must not leave workers behind.
    previous = {signum: signal.signal(signum, on_signal) for signum in (signal.SIGTERM, signal.SIGINT)}
    previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, on_hangup)
    processes: list[multiprocessing.process.BaseProcess] = []
    status = 0
    try:
        for index in range(workers):
            if stopping:
                break
            processes.append(start(index))
        print(f"gateway: {workers} workers on http://{host}:{port}", flush=True)
        exits: deque[float] = deque()
        while not stopping:
            multiprocessing.connection.wait([process.sentinel for process in processes] + [wake_read])
            while True:  # empty the wake-up pipe (a signal wrote to it)
                try:
                    if not os.read(wake_read, 64):
                        break
                except BlockingIOError:
                    break
            if hung_up and not stopping:
                hung_up = False
                merged = load_for_reload(config_path, config)
                if merged is not None:
                    config = merged[0]
                    for process in processes:
                        if process.exitcode is None and process.pid is not None:
                            os.kill(process.pid, signal.SIGHUP)
            for index, process in enumerate(processes):
                if stopping or process.exitcode is None:
                    continue
                now = time.monotonic()
                exits.append(now)
                while exits[0] < now - RESTART_WINDOW:
                    exits.popleft()
                if len(exits) > RESTART_LIMIT:
                    print(f"gateway: worker {process.pid} exited with {_exit_text(process.exitcode)}; "
                          f"{len(exits)} worker exits within {RESTART_WINDOW:g} s, giving up",
                          file=sys.stderr, flush=True)
                    status = 1
                    stopping = True
                    break
                processes[index] = start(index)
                print(f"gateway: worker {process.pid} exited with {_exit_text(process.exitcode)}; "
                      f"started {processes[index].pid}", file=sys.stderr, flush=True)
                process.close()
        for process in processes:
            if process.exitcode is None:
                process.terminate()
        deadline = time.monotonic() + config.server.shutdown_timeout + STOP_GRACE
        for process in processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.exitcode is None:
                print(f"gateway: worker {process.pid} did not stop in time; killed",
                      file=sys.stderr, flush=True)
                process.kill()
                process.join()
                status = 1
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        os.close(wake_read)
        os.close(wake_write)
    return status


def _admin(config: Config, action: Callable[[Administration], Awaitable[T]]) -> T:
    """Run one ``Administration`` operation, as the admin API runs it (``gateway.admin``)."""
    return asyncio.run(_with_services(config, lambda services: action(services.admin)))


def _users(config: Config, args: argparse.Namespace) -> int:
    tenant = args.tenant
    if args.action == "list":
        users = _admin(config, lambda admin: admin.list_users(CLI, tenant))
        print(f"{'USERNAME':<24} {'EMAIL':<28} {'ROLE':<6} {'STATUS':<9} ROLES")
        for user in users:
            status = "disabled" if user.disabled else "active"
            print(f"{user.username:<24} {user.email or '-':<28} {user.role.name.lower():<6} "
                  f"{status:<9} {','.join(user.roles)}")
        return 0
    if args.action == "add":
        request = validated(NewUserRequest, {
            "username": args.username, "password": _read_password(args.password_stdin),
            "email": args.email, "role": args.role, "roles": args.roles})
        user = _admin(config, lambda admin: admin.create_user(CLI, tenant, request))
        print(f"created user {user.username!r} in tenant {user.tenant!r}")
        return 0
    if args.action == "passwd":
        changes = validated(UserChanges, {"password": _read_password(args.password_stdin)})
    elif args.action in ("disable", "enable"):
        changes = UserChanges(disabled=args.action == "disable")
    elif args.action == "roles":
        changes = validated(UserChanges, {"roles": args.roles})
    else:
        raise CommandError(f"unknown action {args.action!r}")
    user, revoked = _admin(config, lambda admin: admin.change_user(CLI, tenant, args.username,
                                                                   changes))
    if args.action == "passwd":
        print(f"password changed for {user.username!r}; {revoked} token(s) revoked")
    elif args.action == "roles":
        print(f"roles of {user.username!r}: {','.join(user.roles) or '(none)'}")
    else:
        print(f"user {user.username!r} {args.action}d" +
              (f"; {revoked} token(s) revoked" if user.disabled else ""))
    return 0


def _tenants(config: Config, args: argparse.Namespace) -> int:
    if args.action == "list":
        for tenant in _admin(config, lambda admin: admin.tenants(CLI)):
            print(tenant)
        return 0
    request = validated(NewTenant, {"id": args.id})
    created = _admin(config, lambda admin: admin.add_tenant(CLI, request))
    print(f"tenant {request.id!r} {'created' if created else 'already exists'}")
    return 0


def _keys(config: Config, args: argparse.Namespace) -> int:
    tenant = args.tenant
    if args.action == "list":
        print(f"{'KID':<44} {'ALGORITHM':<9} {'CREATED':<20} STATUS")
        for key in _admin(config, lambda admin: admin.keys(CLI, tenant)):
            made = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(key.created_at))
            status = "active" if key.retired_at is None else "retired"
            print(f"{key.kid:<44} {key.algorithm:<9} {made:<20} {status}")
        return 0
    retired, created = _admin(config, lambda admin: admin.rotate_keys(CLI, tenant))
    if not created:
        print(f"tenant {tenant!r} has no keys yet; they are made on first use")
        return 0
    print(f"tenant {tenant!r}: new key(s) {', '.join(created)}; retired {', '.join(retired)} "
          "(still verifying their tokens until 'gateway tokens prune' finds them unneeded)")
    return 0


def _tokens(config: Config, args: argparse.Namespace) -> int:
    if args.action == "revoke":
        revoked = _admin(config, lambda admin: admin.revoke_tokens(CLI, args.tenant,
                                                                   args.username))
        print(f"{revoked} token(s) of {args.username!r} revoked")
        return 0
    now = time.time()
    # Expired tokens are refused by their exp claim alone, so their rows can go; keep
    # the leeway's worth so a token still accepted under leeway keeps its row.
    expired_before = now - config.tokens.leeway
    regulation = config.login.regulation
    failures_before = now - (regulation.find_time + regulation.ban_time)
    # Revocation log rows are read by running processes within moments; a day is plenty.
    changes_before = now - CHANGE_LOG_RETENTION

    async def prune(store: Store) -> tuple[tuple[int, int, int], int]:
        counts = await store.prune(expired_before, failures_before, changes_before)
        return counts, await store.prune_audit(now - config.audit.retention)

    (tokens, failures, keys), events = asyncio.run(_with_store(config, prune))
    print(f"pruned {tokens} expired token(s), {failures} old login failure(s) "
          f"and {keys} retired key(s) no token needs")
    print(f"pruned {events} audit event(s) older than {format_duration(config.audit.retention)}")
    return 0


def _audit(config: Config, args: argparse.Namespace) -> int:
    """The tenant's security events, one per line, oldest first (the newest ``--limit``)."""
    query = validated(AuditQuery, {"user": args.user, "since": args.since, "limit": args.limit})
    records = _admin(config, lambda admin: admin.audit_events(CLI, args.tenant, query))
    for record in reversed(records):
        print(format_line(record))
    return 0


def _migrate(config: Config, args: argparse.Namespace) -> int:
    async def noop(store: Store) -> None:
        return None

    asyncio.run(_with_store(config, noop))
    print(f"database {config.storage.path} is up to date")
    return 0


_COMMANDS: dict[str, Callable[[Config, argparse.Namespace], int]] = {
    "serve": _serve,
    "migrate": _migrate,
    "users": _users,
    "tenants": _tenants,
    "tokens": _tokens,
    "keys": _keys,
    "audit": _audit,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"gateway: config error: {exc}", file=sys.stderr)
        return 2
    try:
        return _COMMANDS[args.command](config, args)
    except InvalidField as exc:  # an argument, whatever the field is called over HTTP
        print(f"gateway: {exc.reason}", file=sys.stderr)
        return 1
    except (CommandError, GatewayError, MigrationError, StorageError) as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
