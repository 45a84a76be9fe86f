"""The identity cache never outlives a revocation: real ``gateway serve`` processes.

Every process remembers the tokens and Basic credentials it verified (``identity.cache``)
and answers them from memory afterwards. This file proves that a revocation reaches every
such memory before the next request, whichever process made it. Every case goes:

1. make the credential and use it many times on every process that will be checked
   (``WARM_USES`` requests per server, each on a fresh connection; with ``--workers 2``
   until the access lines show that both worker pids answered it), so it is cached there;
2. revoke it (an HTTP request, or the CLI as a third process) and wait for the answer;
3. at once, with no retry and no sleep, send the old credential to every process again
   (at least ``CHECKS`` requests per server, on fresh connections, until every worker has
   answered): every answer must be the refusal (401) or show the change.

Where the revocation comes from (the ``deployment`` fixture, shared by a module's tests):

- ``single``: one server; the revoking request and the checks go to it.
- ``workers``: one server with ``--workers 2``; the revoking request reaches one worker,
  the checks reach both.
- ``pair``: two servers on one config and database file; revoking requests go to A, the
  checks to B first, then to A.

The CLI commands (``users passwd/disable/enable/roles``, ``tokens revoke``) run against the
same config while the servers run, in every deployment.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from multidict import CIMultiDict

from tests.conftest import ADMIN_PASSWORD, TEST_SECRET
from tests.servers import Server, clean_env, run_cli

pytestmark = pytest.mark.asyncio(loop_scope="module")

#: Uses of a credential on each server before it is revoked.
WARM_USES = 30
#: The fewest requests per server after a revocation.
CHECKS = 5
#: Bound on the requests sent to one server to reach each of its workers.
MAX_REQUESTS = 200
#: Bound on waiting for an access line: it is written just after its response is sent.
LOG_TIMEOUT = 10.0

CONFIG = """\
storage: {path: ./state/gateway.db}
tokens: {rotate_refresh_tokens: true}
# Refused Basic requests would count as failed logins from 127.0.0.1 and end in 429s.
login: {regulation: {max_retries: 0}}
"""

# The base64url alphabet, in the order of the 6-bit values its characters stand for.
B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


# Processes and what they logged


class AccessLog:
    """Which worker pid answered each request id: a server's access lines, read as they come."""

    def __init__(self, server: Server) -> None:
        self._server = server
        self._offset = 0
        self._pids: dict[str, int] = {}

    def _read(self) -> None:
        with self._server.log.open("rb") as handle:
            handle.seek(self._offset)
            data = handle.read()
        complete = data.rfind(b"\n") + 1
        self._offset += complete
        for line in data[:complete].splitlines():
            if not line.startswith(b"{"):
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry.get("request_id"), str) and isinstance(entry.get("pid"), int):
                self._pids[entry["request_id"]] = entry["pid"]

    async def pids(self, request_ids: Sequence[str]) -> list[int]:
        """The pid of each request, waiting (bounded) for lines not written yet."""
        deadline = time.monotonic() + LOG_TIMEOUT
        while True:
            self._read()
            if all(request_id in self._pids for request_id in request_ids):
                return [self._pids[request_id] for request_id in request_ids]
            if time.monotonic() > deadline:
                pytest.fail(f"no access line for some of {list(request_ids)} in "
                            f"{LOG_TIMEOUT} s:\n{self._server.output()[-3000:]}")
            await asyncio.sleep(0.01)


@dataclass
class Node:
    """One ``gateway serve`` and the number of worker processes behind its port."""

    server: Server
    workers: int
    log: AccessLog


@dataclass
class Deployment:
    """The servers of one source, their config and environment, and an HTTP client."""

    source: str
    config: Path
    env: dict[str, str]
    nodes: list[Node]
    #: Closes every connection after its response: each request picks a worker anew.
    http: aiohttp.ClientSession

    @property
    def url(self) -> str:
        """Where revoking requests (and logins) go: the first server."""
        return self.nodes[0].server.url

    def checked(self) -> list[Node]:
        """Every server, those the revocation did not go through first."""
        return [*self.nodes[1:], self.nodes[0]]


SOURCES: dict[str, tuple[int, tuple[str, ...]]] = {
    # source: (servers on the one database, arguments of each)
    "single": (1, ()),
    "workers": (1, ("--workers", "2")),
    "pair": (2, ()),
}


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=sorted(SOURCES))
async def deployment(request: pytest.FixtureRequest,
                     tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Deployment]:
    source: str = request.param
    count, args = SOURCES[source]
    workers = 2 if "--workers" in args else 1
    workdir = tmp_path_factory.mktemp(source)
    config = workdir / "config.yaml"
    config.write_text(CONFIG)
    env = clean_env(GATEWAY_SECRET_KEY=TEST_SECRET, GATEWAY_ADMIN_PASSWORD=ADMIN_PASSWORD)
    servers = [Server(workdir, config, env, *args) for _ in range(count)]
    http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True))
    try:
        await asyncio.gather(*(server.wait_ready(workers=workers) for server in servers))
        yield Deployment(source, config, env,
                         [Node(server, workers, AccessLog(server)) for server in servers], http)
    finally:
        await http.close()
        statuses = await asyncio.gather(*(asyncio.to_thread(server.stop) for server in servers))
        for server, status in zip(servers, statuses, strict=True):
            assert status == 0, server.output()


# Requests


@dataclass(frozen=True)
class Probe:
    """One request presenting a credential; ``name`` says which, in failure messages."""

    name: str
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] | None = None


@dataclass(frozen=True)
class Answer:
    status: int
    headers: CIMultiDict[str]
    text: str
    request_id: str

    def json(self) -> Any:
        return json.loads(self.text)


async def send(http: aiohttp.ClientSession, url: str, probe: Probe) -> Answer:
    """Send ``probe`` to ``url`` on a fresh connection, under a request id of its own."""
    request_id = uuid.uuid4().hex
    async with http.request(probe.method, url + probe.path, json=probe.body,
                            headers={**probe.headers, "X-Request-ID": request_id}) as response:
        return Answer(response.status, CIMultiDict(response.headers), await response.text(),
                      request_id)


def basic_header(username: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()}


def bearer(token: str, name: str) -> Probe:
    return Probe(name, "GET", "/auth", {"Authorization": f"Bearer {token}"})


def session(token: str, key: str) -> Probe:
    return Probe("session (X-Access-Token + X-Key)", "GET", "/auth",
                 {"X-Access-Token": token, "X-Key": key})


def basic(username: str, password: str, name: str) -> Probe:
    return Probe(name, "GET", "/auth", basic_header(username, password))


def verify(token: str, name: str) -> Probe:
    return Probe(f"{name} on /api/token/verify/", "POST", "/api/token/verify/", body={"token": token})


def accepted(answer: Answer) -> bool:
    return answer.status == 200


def refused(answer: Answer) -> bool:
    return answer.status == 401


def with_roles(roles: str) -> Callable[[Answer], bool]:
    def check(answer: Answer) -> bool:
        return answer.status == 200 and answer.headers.get("X-Auth-Roles") == roles

    return check


async def answered_everywhere(deployment: Deployment, probe: Probe, accept: Callable[[Answer], bool],
                              least: int, stage: str) -> None:
    """Send ``probe`` to every server, at least ``least`` times each and until every worker
    of it has answered (bounded); every answer must pass ``accept``, the first included."""
    for node in deployment.checked():
        sent: list[str] = []
        for _ in range(MAX_REQUESTS):
            answer = await send(deployment.http, node.server.url, probe)
            sent.append(answer.request_id)
            if not accept(answer):
                (pid,) = await node.log.pids([answer.request_id])
                pytest.fail(
                    f"{deployment.source}, {stage}: {probe.name} ({probe.method} {probe.path}), "
                    f"request {len(sent)} to {node.server.url} (pid {pid}) answered "
                    f"{answer.status} {dict(answer.headers)} {answer.text[:300]}"
                )
            if len(sent) >= least and (
                node.workers == 1 or len(set(await node.log.pids(sent))) >= node.workers
            ):
                break
        else:
            pytest.fail(f"{deployment.source}, {stage}: {MAX_REQUESTS} requests to "
                        f"{node.server.url} did not reach its {node.workers} workers")


async def warm(deployment: Deployment, probe: Probe,
               accept: Callable[[Answer], bool] = accepted) -> None:
    """Use ``probe`` ``WARM_USES`` times on every server (and worker): it is cached there."""
    await answered_everywhere(deployment, probe, accept, WARM_USES, "warm-up")


async def expect_refused(deployment: Deployment, *probes: Probe) -> None:
    """Right after a revocation: every process refuses each probe, from its first use on."""
    for probe in probes:
        await answered_everywhere(deployment, probe, refused, CHECKS, "after the revocation")


async def act(deployment: Deployment, method: str, path: str, *, status: int = 200,
              headers: dict[str, str] | None = None, body: dict[str, Any] | None = None) -> Answer:
    """One request to the first server (a login, or a revoking request), its answer checked."""
    answer = await send(deployment.http, deployment.url,
                        Probe(f"{method} {path}", method, path, headers or {}, body))
    assert answer.status == status, f"{method} {path}: {answer.status} {answer.text}"
    return answer


async def cli(deployment: Deployment, *args: str, stdin: str | None = None) -> None:
    """Run ``gateway ARGS`` on the deployment's config and wait for it to exit."""
    result = await run_cli(deployment.config, deployment.env, *args, stdin=stdin)
    assert result.returncode == 0, f"gateway {' '.join(args)}: {result.stderr}"


# Users and their credentials

_numbers = itertools.count(1)


@dataclass(frozen=True)
class Account:
    username: str
    password: str

    def basic(self, name: str = "Basic") -> Probe:
        return basic(self.username, self.password, name)


async def new_account(deployment: Deployment) -> Account:
    """A user made by the CLI while the servers run, with roles ``ROLE_USER``."""
    username = f"user{next(_numbers)}"
    account = Account(username, f"{username}-password-1")
    await cli(deployment, "users", "add", username, "--password-stdin", "--role", "user",
              "--roles", "ROLE_USER", "--email", f"{username}@example.org",
              stdin=account.password + "\n")
    return account


async def token_pair(deployment: Deployment, account: Account) -> tuple[str, str]:
    """A seed-004 login: (refresh, access)."""
    pair = (await act(deployment, "POST", "/api/token/",
                      body={"username": account.username, "password": account.password})).json()
    return pair["refresh"], pair["access"]


async def session_login(deployment: Deployment, account: Account) -> tuple[str, str]:
    """A seed-003 login: (token, key)."""
    answer = (await act(deployment, "POST", "/login",
                        body={"username": account.username, "password": account.password})).json()
    return answer["token"], answer["key"]


async def named_token(deployment: Deployment, account: Account) -> tuple[str, str]:
    """A seed-001 named token: (jwt_token_id, jwt_token)."""
    answer = (await act(deployment, "POST", "/api/v1alpha/token", status=201,
                        headers=basic_header(account.username, account.password),
                        body={"jwt_token_description": "cached", "jwt_token_life": "1 hour"})).json()
    return answer["jwt_token_id"], answer["jwt_token"]


def respell(token: str) -> str:
    """Another spelling of ``token`` with the same signature bytes.

    An HS256 signature is 32 bytes, 43 base64url characters: 258 bits, the last character's
    2 low bits unused. Flipping one of them changes the text, not the bytes.
    """
    head, payload, signature = token.split(".")
    assert len(signature) == 43, signature
    other = signature[:-1] + B64URL[B64URL.index(signature[-1]) ^ 0b01]
    assert base64.urlsafe_b64decode(other + "=") == base64.urlsafe_b64decode(signature + "=")
    return f"{head}.{payload}.{other}"


# Revocations by HTTP requests


async def test_logout_ends_a_cached_session_everywhere(deployment: Deployment) -> None:
    account = await new_account(deployment)
    token, key = await session_login(deployment, account)
    probe = session(token, key)
    await warm(deployment, probe)

    await act(deployment, "POST", "/logout", headers={"X-Access-Token": token, "X-Key": key})
    await expect_refused(deployment, probe)


async def test_deleting_a_cached_named_token_ends_it_everywhere(deployment: Deployment) -> None:
    account = await new_account(deployment)
    token_id, token = await named_token(deployment, account)
    probe = bearer(token, "named token")
    await warm(deployment, probe)

    await act(deployment, "DELETE", f"/api/v1alpha/token/{token_id}",
              headers=basic_header(account.username, account.password))
    await expect_refused(deployment, probe)


async def test_blacklisting_a_refresh_token_ends_its_cached_login_everywhere(
        deployment: Deployment) -> None:
    account = await new_account(deployment)
    refresh, access = await token_pair(deployment, account)
    probes = (bearer(access, "access token"), verify(refresh, "refresh token"))
    for probe in probes:
        await warm(deployment, probe)

    await act(deployment, "POST", "/api/token/blacklist/", body={"refresh": refresh})
    await expect_refused(deployment, *probes)


async def test_rotation_and_reuse_detection_reach_every_cache(deployment: Deployment) -> None:
    account = await new_account(deployment)
    refresh, _ = await token_pair(deployment, account)
    old = verify(refresh, "rotated-out refresh token")
    await warm(deployment, old)

    rotated = (await act(deployment, "POST", "/api/token/refresh/", body={"refresh": refresh})).json()
    await expect_refused(deployment, old)

    # Reuse of the rotated-out refresh token revokes the whole family, cached tokens too.
    probes = (bearer(rotated["access"], "access token of the rotation"),
              verify(rotated["refresh"], "refresh token of the rotation"))
    for probe in probes:
        await warm(deployment, probe)
    await act(deployment, "POST", "/api/token/refresh/", status=401, body={"refresh": refresh})
    await expect_refused(deployment, *probes)


# Revocations by the CLI, a third process


async def test_users_passwd_ends_cached_tokens_and_the_old_password(deployment: Deployment) -> None:
    account = await new_account(deployment)
    _, access = await token_pair(deployment, account)
    token, key = await session_login(deployment, account)
    _, named = await named_token(deployment, account)
    probes = (bearer(access, "access token"), session(token, key), bearer(named, "named token"),
              account.basic("Basic with the old password"))
    for probe in probes:
        await warm(deployment, probe)

    new_password = "a-brand-new-password-2"
    await cli(deployment, "users", "passwd", account.username, "--password-stdin",
              stdin=new_password + "\n")
    await expect_refused(deployment, *probes)
    await answered_everywhere(deployment,
                              basic(account.username, new_password, "Basic with the new password"),
                              accepted, CHECKS, "after the password change")


async def test_users_disable_ends_cached_credentials_and_enable_restores_basic(
        deployment: Deployment) -> None:
    account = await new_account(deployment)
    _, access = await token_pair(deployment, account)
    token_probe = bearer(access, "access token")
    basic_probe = account.basic()
    for probe in (token_probe, basic_probe):
        await warm(deployment, probe)

    await cli(deployment, "users", "disable", account.username)
    await expect_refused(deployment, token_probe, basic_probe)

    await cli(deployment, "users", "enable", account.username)
    await answered_everywhere(deployment, basic_probe, accepted, CHECKS, "after enable")
    await expect_refused(deployment, token_probe)  # revoked by disable, for good


async def test_users_roles_reach_cached_identities_at_once(deployment: Deployment) -> None:
    account = await new_account(deployment)
    _, access = await token_pair(deployment, account)
    probes = (bearer(access, "access token"), account.basic())
    for probe in probes:
        await warm(deployment, probe, with_roles("ROLE_USER"))

    await cli(deployment, "users", "roles", account.username, "ROLE_X")
    for probe in probes:
        await answered_everywhere(deployment, probe, with_roles("ROLE_X"), CHECKS,
                                  "after the roles change")


async def test_tokens_revoke_ends_every_cached_token_of_the_user(deployment: Deployment) -> None:
    account = await new_account(deployment)
    refresh, access = await token_pair(deployment, account)
    token, key = await session_login(deployment, account)
    _, named = await named_token(deployment, account)
    probes = (bearer(access, "access token"), verify(refresh, "refresh token"),
              session(token, key), bearer(named, "named token"))
    for probe in probes:
        await warm(deployment, probe)

    await cli(deployment, "tokens", "revoke", account.username)
    await expect_refused(deployment, *probes)


# Another spelling of the same token


@pytest.mark.parametrize("revocation", ["blacklist", "tokens revoke"])
async def test_every_cached_spelling_of_a_token_is_revoked(deployment: Deployment,
                                                           revocation: str) -> None:
    account = await new_account(deployment)
    refresh, access = await token_pair(deployment, account)
    probes = (bearer(access, "access token"),
              bearer(respell(access), "the access token spelled otherwise"))
    for probe in probes:
        await warm(deployment, probe)

    if revocation == "blacklist":
        await act(deployment, "POST", "/api/token/blacklist/", body={"refresh": refresh})
    else:
        await cli(deployment, "tokens", "revoke", account.username)
    await expect_refused(deployment, *probes)
