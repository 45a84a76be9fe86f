"""Three ``gateway serve`` nodes on one PostgreSQL database.

Each node is its own process with its own config file and data directory; they share the
secret (``GATEWAY_SECRET_KEY``) and one database schema (``storage.url``). The url of each
node also names it to the server (``application_name=gateway-node-X``), so that a test can
find and kill that node's listening connection.

What is shown, over real HTTP:

- what one node (or the CLI) creates, every node sees: users, tenants, keys;
- a revocation made through one node is refused by that node on its very next request, and
  by every other node within ``LAG`` of the revoking response (the lags are printed:
  ``pytest -s``);
- one-time media tokens, regulation and a tenant's first key hold across nodes;
- ``kill -9`` of a node under write load loses nothing it acknowledged;
- a node whose listening connection was killed still refuses revoked tokens in time.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import itertools
import os
import secrets
import signal
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
import pytest_asyncio
from jose import jwt

from tests.conftest import ADMIN_PASSWORD, POSTGRES_URL, TEST_SECRET
from tests.servers import Server, clean_env, run_cli

pytestmark = pytest.mark.asyncio(loop_scope="module")

#: The most a revocation may take to reach another node, from the revoking response.
LAG = 0.1
#: Uses of a credential on each node before it is revoked: it is cached there.
WARM_USES = 20
#: Bound on the requests sent to one node while waiting for it to refuse.
MAX_POLLS = 2000
#: Bound on waiting for a node's listening connection to be back.
RECONNECT_TIMEOUT = 5.0
#: Concurrent uses of one unique media token.
MEDIA_USES = 64

NAMES = ("a", "b", "c")

CONFIG = """\
storage: {{url: '{url}'}}
login: {{regulation: {{max_retries: 3, find_time: 2 minutes, ban_time: 5 minutes}}}}
"""

#: Revocation lags measured in this module: (what was revoked, node, seconds).
LAGS: list[tuple[str, str, float]] = []


# The cluster


@dataclass
class Node:
    """One ``gateway serve``: its name, config and the process now serving it."""

    name: str
    workdir: Path
    config: Path
    server: Server

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def application_name(self) -> str:
        return application_name(self.name)


def application_name(node: str) -> str:
    """How a node's connections name themselves to the server (``pg_stat_activity``)."""
    return f"gateway-node-{node}"


@dataclass
class Cluster:
    nodes: list[Node]
    env: dict[str, str]
    #: The test's own connection to the database (opened before any outage it causes).
    database: asyncpg.Connection
    http: aiohttp.ClientSession
    #: Servers replaced after a kill, stopped at the end.
    dead: list[Server] = field(default_factory=list)

    @property
    def a(self) -> Node:
        return self.nodes[0]

    def others(self, node: Node) -> list[Node]:
        return [other for other in self.nodes if other is not node]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def cluster(postgres_database: str,
                  tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Cluster]:
    schema = f"t_{secrets.token_hex(6)}"
    database = await asyncpg.connect(postgres_database, timeout=5)
    await database.execute(f'CREATE SCHEMA "{schema}"')
    env = clean_env(GATEWAY_SECRET_KEY=TEST_SECRET, GATEWAY_ADMIN_PASSWORD=ADMIN_PASSWORD)
    cluster = Cluster([], env, database, aiohttp.ClientSession())
    try:
        for name in NAMES:
            workdir = tmp_path_factory.mktemp(f"node-{name}")
            config = workdir / "config.yaml"
            config.write_text(CONFIG.format(url=f"{postgres_database}?search_path={schema}"
                                                f"&application_name={application_name(name)}"))
            cluster.nodes.append(Node(name, workdir, config, Server(workdir, config, env)))
        # All three start at once on the empty schema: migrations and bootstrap race.
        await asyncio.gather(*(node.server.wait_ready() for node in cluster.nodes))
        yield cluster
    finally:
        await cluster.http.close()
        await database.close()
        for server in cluster.dead:
            await asyncio.to_thread(server.stop)
        statuses = await asyncio.gather(
            *(asyncio.to_thread(node.server.stop) for node in cluster.nodes))
        for node, status in zip(cluster.nodes, statuses, strict=True):
            assert status == 0, node.server.output()[-3000:]
        print_lags()


def print_lags() -> None:
    if not LAGS:
        return
    print("\nrevocation lag to the other nodes (ms):")
    for what, node, seconds in LAGS:
        print(f"  {what:<40} node {node}: {seconds * 1000:7.2f}")
    values = sorted(seconds for _, _, seconds in LAGS)
    p99 = values[min(len(values) - 1, round(0.99 * (len(values) - 1)))]
    print(f"  n={len(values)} p50={statistics.median(values) * 1000:.2f} "
          f"p99={p99 * 1000:.2f} max={values[-1] * 1000:.2f}")


# Requests


@dataclass(frozen=True)
class Probe:
    """A request that presents one credential."""

    name: str
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] | None = None


async def send(http: aiohttp.ClientSession, node: Node, probe: Probe) -> tuple[int, Any]:
    """``probe`` sent to ``node``: the status and the JSON body (None when not JSON)."""
    async with http.request(probe.method, node.url + probe.path, json=probe.body,
                            headers=probe.headers) as response:
        text = await response.text()
        try:
            body = await response.json(content_type=None) if text else None
        except ValueError:
            body = None
        return response.status, body


async def call(cluster: Cluster, node: Node, method: str, path: str, *, status: int = 200,
               headers: dict[str, str] | None = None, body: dict[str, Any] | None = None) -> Any:
    """One request to ``node`` whose status must be ``status``; its JSON body."""
    got, answer = await send(cluster.http, node, Probe(path, method, path, headers or {}, body))
    assert got == status, f"{method} {path} on node {node.name}: {got} {answer}"
    return answer


def basic_header(username: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()}


ROOT = basic_header("admin", ADMIN_PASSWORD)


def bearer(token: str, name: str) -> Probe:
    return Probe(name, "GET", "/auth", {"Authorization": f"Bearer {token}"})


async def cli(cluster: Cluster, node: Node, *args: str, stdin: str | None = None) -> None:
    """``gateway ARGS`` with ``node``'s config, run to its end."""
    result = await run_cli(node.config, cluster.env, *args, stdin=stdin)
    assert result.returncode == 0, f"gateway {' '.join(args)}: {result.stderr}"


_numbers = itertools.count(1)


@dataclass(frozen=True)
class Account:
    username: str
    password: str

    @property
    def basic(self) -> dict[str, str]:
        return basic_header(self.username, self.password)


async def new_account(cluster: Cluster, node: Node | None = None, *, tenant: str = "default",
                      role: str = "user") -> Account:
    """A user added by the CLI with ``node``'s config (node A by default)."""
    username = f"user{next(_numbers)}"
    account = Account(username, f"{username}-password-1")
    await cli(cluster, node or cluster.a, "users", "add", username, "--password-stdin",
              "--role", role, "--roles", "ROLE_USER", "--tenant", tenant,
              "--email", f"{username}@example.org", stdin=account.password + "\n")
    return account


async def warm(cluster: Cluster, probe: Probe) -> None:
    """Use ``probe`` ``WARM_USES`` times on every node: accepted every time."""
    for node in cluster.nodes:
        for use in range(WARM_USES):
            status, body = await send(cluster.http, node, probe)
            assert status == 200, f"{probe.name}, use {use} on node {node.name}: {status} {body}"


async def refused_at_once(cluster: Cluster, node: Node, probe: Probe) -> None:
    status, body = await send(cluster.http, node, probe)
    assert status == 401, f"{probe.name}: node {node.name} answered its next request {status} {body}"


async def lag_of(cluster: Cluster, node: Node, probe: Probe, since: float) -> float:
    """Seconds from ``since`` until ``node`` answered ``probe`` with a refusal (bounded)."""
    for _ in range(MAX_POLLS):
        status, body = await send(cluster.http, node, probe)
        if status == 401:
            return time.monotonic() - since
        assert status == 200, f"{probe.name} on node {node.name}: {status} {body}"
    pytest.fail(f"{probe.name}: node {node.name} still accepts it after {MAX_POLLS} requests, "
                f"{time.monotonic() - since:.3f} s")


async def expect_revoked(cluster: Cluster, what: str, probe: Probe, since: float,
                         revoking: Node | None) -> None:
    """Right after a revoking answer received at ``since``: ``revoking`` refuses ``probe`` on
    its next request, every other node within ``LAG`` (all polled at once)."""
    others = cluster.nodes if revoking is None else cluster.others(revoking)
    checks: list[Awaitable[Any]] = [lag_of(cluster, node, probe, since) for node in others]
    if revoking is not None:
        checks.append(refused_at_once(cluster, revoking, probe))
    results = await asyncio.gather(*checks)
    lags = dict(zip((node.name for node in others), results[:len(others)], strict=True))
    LAGS.extend((what, name, lag) for name, lag in lags.items())
    late = {name: f"{lag * 1000:.1f} ms" for name, lag in lags.items() if lag > LAG}
    assert not late, f"{what}: refused later than {LAG * 1000:.0f} ms on {late}"


# What a node creates, every node sees


async def test_a_user_added_through_one_nodes_cli_logs_in_on_the_others(cluster: Cluster) -> None:
    account = await new_account(cluster, cluster.nodes[0])
    for node in cluster.nodes[1:]:
        answer = await call(cluster, node, "POST", "/login",
                            body={"username": account.username, "password": account.password})
        assert answer["username"] == account.username and answer["role"] == 2
        # The session made on this node works on every node.
        probe = Probe("session", "GET", "/auth",
                      {"X-Access-Token": answer["token"], "X-Key": answer["key"]})
        for other in cluster.nodes:
            assert (await send(cluster.http, other, probe))[0] == 200


# Revocation across nodes


@dataclass(frozen=True)
class Revoking:
    """A revocation: the probe it must end, and how to make it (returns the revoking node,
    None for the CLI)."""

    probe: Probe
    revoke: Callable[[Node], Awaitable[Node | None]]


async def delete_named_token(cluster: Cluster, account: Account) -> Revoking:
    created = await call(cluster, cluster.a, "POST", "/api/v1alpha/token", status=201,
                         headers=account.basic,
                         body={"jwt_token_description": f"warm-{next(_numbers)}",
                               "jwt_token_life": "1 hour"})

    async def revoke(node: Node) -> Node:
        await call(cluster, node, "DELETE", f"/api/v1alpha/token/{created['jwt_token_id']}",
                   headers=account.basic)
        return node

    return Revoking(bearer(created["jwt_token"], "named token"), revoke)


async def logout(cluster: Cluster, account: Account) -> Revoking:
    login = await call(cluster, cluster.a, "POST", "/login",
                       body={"username": account.username, "password": account.password})
    headers = {"X-Access-Token": login["token"], "X-Key": login["key"]}

    async def revoke(node: Node) -> Node:
        await call(cluster, node, "POST", "/logout", headers=headers)
        return node

    return Revoking(Probe("session token", "GET", "/auth", headers), revoke)


async def token_pair(cluster: Cluster, account: Account) -> dict[str, str]:
    pair: dict[str, str] = await call(
        cluster, cluster.a, "POST", "/api/token/",
        body={"username": account.username, "password": account.password})
    return pair


async def blacklist(cluster: Cluster, account: Account) -> Revoking:
    pair = await token_pair(cluster, account)

    async def revoke(node: Node) -> Node:
        await call(cluster, node, "POST", "/api/token/blacklist/", body={"refresh": pair["refresh"]})
        return node

    return Revoking(bearer(pair["access"], "access token"), revoke)


async def users_disable(cluster: Cluster, account: Account) -> Revoking:
    pair = await token_pair(cluster, account)

    async def revoke(node: Node) -> None:
        await cli(cluster, node, "users", "disable", account.username)

    return Revoking(bearer(pair["access"], "access token"), revoke)


async def users_passwd(cluster: Cluster, account: Account) -> Revoking:
    login = await call(cluster, cluster.a, "POST", "/login",
                       body={"username": account.username, "password": account.password})

    async def revoke(node: Node) -> None:
        await cli(cluster, node, "users", "passwd", account.username, "--password-stdin",
                  stdin="a-brand-new-password-2\n")

    return Revoking(Probe("session token", "GET", "/auth",
                          {"X-Access-Token": login["token"], "X-Key": login["key"]}), revoke)


REVOCATIONS: dict[str, Callable[[Cluster, Account], Awaitable[Revoking]]] = {
    "DELETE named token": delete_named_token,
    "POST /logout": logout,
    "POST /api/token/blacklist/": blacklist,
    "gateway users disable": users_disable,
    "gateway users passwd": users_passwd,
}


@pytest.mark.parametrize("where", range(len(NAMES)), ids=[f"via-{name}" for name in NAMES])
@pytest.mark.parametrize("what", list(REVOCATIONS))
async def test_a_revocation_reaches_every_node_in_time(cluster: Cluster, what: str,
                                                       where: int) -> None:
    account = await new_account(cluster)
    revoking = await REVOCATIONS[what](cluster, account)
    await warm(cluster, revoking.probe)

    node = await revoking.revoke(cluster.nodes[where])
    since = time.monotonic()
    await expect_revoked(cluster, what, revoking.probe, since, node)


# One-time media tokens, regulation, first keys


async def issue_media(cluster: Cluster, node: Node, **fields: Any) -> dict[str, Any]:
    answer: dict[str, Any] = await call(cluster, node, "POST", "/token", status=201,
                                        headers=ROOT, body=fields)
    return answer


@pytest.mark.parametrize("use", ["/auth", "/token/check"])
async def test_a_unique_media_token_passes_once_across_nodes(cluster: Cluster, use: str) -> None:
    media_id = f"m{next(_numbers)}"
    token = (await issue_media(cluster, cluster.a, unique=True, media={"id": media_id}))["token"]
    if use == "/auth":
        probe = Probe("media", "GET", "/auth",
                      {"X-Original-URI": f"/media/{media_id}?signingKey={token}"})
    else:
        probe = Probe("media", "POST", "/token/check", body={"token": token, "media_id": media_id})

    answers = await asyncio.gather(*(send(cluster.http, cluster.nodes[i % len(cluster.nodes)], probe)
                                     for i in range(MEDIA_USES)))
    statuses = collections.Counter(status for status, _ in answers)
    assert statuses == {200: 1, 403: MEDIA_USES - 1}, answers


async def test_failed_logins_on_every_node_add_up_to_one_ban(cluster: Cluster) -> None:
    account = await new_account(cluster)
    wrong = {"username": account.username, "password": "not-the-password"}
    # Each attempt from its own address: only the count per login name can ban.
    addresses = (f"198.51.100.{n}" for n in itertools.count(1))

    failures = await asyncio.gather(*(
        send(cluster.http, node, Probe("login", "POST", "/login",
                                       {"X-Forwarded-For": next(addresses)}, wrong))
        for node in cluster.nodes))
    assert [status for status, _ in failures] == [401] * len(cluster.nodes), failures

    right = {"username": account.username, "password": account.password}
    for node in cluster.nodes:
        status, body = await send(cluster.http, node, Probe(
            "login", "POST", "/login", {"X-Forwarded-For": next(addresses)}, right))
        assert status == 429, f"node {node.name}: {status} {body}"


async def test_a_new_tenants_first_key_is_made_once_across_nodes(cluster: Cluster) -> None:
    await cli(cluster, cluster.nodes[1], "tenants", "add", "acme")
    admin = await new_account(cluster, cluster.nodes[2], tenant="acme", role="admin")
    headers = {**admin.basic, "X-TENANT-ID": "acme"}
    algorithms = ("RS256", "ES256")

    # Every node, every algorithm, at once: each node finds no key and races to make one.
    requests = [(node, algorithm) for node in cluster.nodes for algorithm in algorithms]
    answers = await asyncio.gather(*(
        send(cluster.http, node, Probe("issue", "POST", "/token", headers,
                                       {"algorithm": algorithm, "unique": False}))
        for node, algorithm in requests))
    assert [status for status, _ in answers] == [201] * len(requests), answers

    sets = [await call(cluster, node, "GET", "/.well-known/jwks.json?tenant=acme")
            for node in cluster.nodes]
    assert sets[1:] == sets[:-1], "the nodes publish different key sets"
    keys = {key["kid"]: key for key in sets[0]["keys"]}
    assert len(keys) == len(algorithms), keys  # a fresh tenant: one key per algorithm

    kids: dict[str, set[str]] = collections.defaultdict(set)
    for (node, algorithm), (_, answer) in zip(requests, answers, strict=True):
        token = answer["token"]
        kid = jwt.get_unverified_header(token)["kid"]
        kids[algorithm].add(kid)
        key = keys[kid]
        assert key.get("alg", algorithm) == algorithm, key
        claims = jwt.decode(token, key, algorithms=[algorithm], issuer="gateway",
                            options={"verify_aud": False})
        assert claims["tenant"] == "acme", node.name
        # And every node accepts it.
        check = Probe("check", "POST", "/token/check", {"X-TENANT-ID": "acme"}, {"token": token})
        for other in cluster.nodes:
            assert (await send(cluster.http, other, check))[0] == 200
    assert {algorithm: len(found) for algorithm, found in kids.items()} == {
        algorithm: 1 for algorithm in algorithms}, kids


async def test_a_key_rotation_reaches_every_node(cluster: Cluster) -> None:
    await cli(cluster, cluster.a, "tenants", "add", "rotating")
    admin = await new_account(cluster, tenant="rotating", role="admin")
    issue = Probe("issue", "POST", "/token", {**admin.basic, "X-TENANT-ID": "rotating"},
                  {"algorithm": "ES256", "unique": False})

    async def kids() -> list[tuple[str, str]]:
        """(kid of the signing key, token) of one token issued on each node."""
        answers = [await call(cluster, node, issue.method, issue.path, status=201,
                              headers=issue.headers, body=issue.body) for node in cluster.nodes]
        return [(jwt.get_unverified_header(answer["token"])["kid"], answer["token"])
                for answer in answers]

    before = await kids()
    assert len({kid for kid, _ in before}) == 1, before
    await cli(cluster, cluster.nodes[2], "keys", "rotate", "--tenant", "rotating")
    after = await kids()
    assert len({kid for kid, _ in after}) == 1, after
    assert after[0][0] != before[0][0]

    # Tokens of the old key still pass everywhere; the set publishes both keys.
    check = Probe("check", "POST", "/token/check", {"X-TENANT-ID": "rotating"})
    for node, (_, token) in zip(cluster.nodes, before, strict=True):
        status, body = await send(cluster.http, node, Probe(
            check.name, check.method, check.path, check.headers, {"token": token}))
        assert status == 200, f"node {node.name}: {status} {body}"
    published = await call(cluster, cluster.nodes[1], "GET", "/.well-known/jwks.json?tenant=rotating")
    assert {key["kid"] for key in published["keys"]} == {before[0][0], after[0][0]}


# Failures: a killed listening connection, a killed node


async def listener_pid(cluster: Cluster, node: Node, *, other_than: int | None = None) -> int:
    """The backend pid of ``node``'s listening connection, waiting (bounded) for one that is
    not ``other_than``.

    Every connection of the node carries its ``application_name``; an idle pooled
    connection shows the pool's reset statement as its last query, the listening one its
    ``LISTEN`` or the liveness probe that follows it every second.
    """
    deadline = time.monotonic() + RECONNECT_TIMEOUT
    while True:
        found = await listeners(cluster, node, other_than=other_than)
        assert len(found) <= 1, f"node {node.name}: several listeners? {found}"
        if found:
            return found[0]
        if time.monotonic() > deadline:
            pytest.fail(f"node {node.name}: no listening connection within {RECONNECT_TIMEOUT} s")
        await asyncio.sleep(0.01)


async def listeners(cluster: Cluster, node: Node, *, other_than: int | None = None) -> list[int]:
    rows = await cluster.database.fetch(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
        " AND application_name = $1 AND (query LIKE 'LISTEN %' OR query = 'SELECT 1')"
        " AND pid <> pg_backend_pid()", node.application_name)
    return [int(row["pid"]) for row in rows if row["pid"] != other_than]


async def terminate(cluster: Cluster, pid: int) -> None:
    """End a server process (a connection) of the database, and wait (bounded) until it
    is gone."""
    assert await cluster.database.fetchval("SELECT pg_terminate_backend($1, 5000)", pid) is True


@contextlib.asynccontextmanager
async def new_connections_refused(cluster: Cluster) -> AsyncIterator[None]:
    """No new connection to the database is accepted meanwhile (connections already open
    go on working): a node that lost its listening connection cannot listen again."""
    name = await cluster.database.fetchval("SELECT current_database()")
    maintenance = await asyncpg.connect(POSTGRES_URL, timeout=5)
    try:
        await maintenance.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        try:
            yield
        finally:
            await maintenance.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
    finally:
        await maintenance.close()


async def test_a_node_whose_listener_was_killed_still_refuses_in_time(cluster: Cluster) -> None:
    account = await new_account(cluster)
    victim, revoking = cluster.nodes[1], cluster.nodes[0]
    tokens = [await delete_named_token(cluster, account) for _ in range(5)]
    for token in tokens:
        await warm(cluster, token.probe)

    # Revoked just after the kill: the victim hears no NOTIFY, whether it has listened
    # again by then or not.
    await terminate(cluster, await listener_pid(cluster, victim))
    await tokens[0].revoke(revoking)
    await expect_revoked(cluster, "named token, listener killed", tokens[0].probe,
                         time.monotonic(), revoking)

    # While it cannot listen again it serves no cached decision: it reads the database.
    async with new_connections_refused(cluster):
        await terminate(cluster, await listener_pid(cluster, victim))
        await tokens[1].revoke(revoking)
        await expect_revoked(cluster, "named token, listener down", tokens[1].probe,
                             time.monotonic(), revoking)
        assert (await send(cluster.http, victim, tokens[2].probe))[0] == 200
        assert await listeners(cluster, victim) == []

    # Revoked while it cannot listen and not asked meanwhile: once it listens again, it
    # catches up with the log before it answers.
    pid = await listener_pid(cluster, victim)
    await warm(cluster, tokens[3].probe)
    async with new_connections_refused(cluster):
        await terminate(cluster, pid)
        await tokens[3].revoke(revoking)
    await listener_pid(cluster, victim, other_than=pid)
    await refused_at_once(cluster, victim, tokens[3].probe)

    # Listening again: notifications reach it.
    await tokens[4].revoke(revoking)
    await expect_revoked(cluster, "named token, listener back", tokens[4].probe,
                         time.monotonic(), revoking)


async def test_a_node_cut_off_from_the_database_answers_503_then_serves_again(
        cluster: Cluster) -> None:
    account = await new_account(cluster)
    victim = cluster.nodes[2]
    token = await delete_named_token(cluster, account)
    await warm(cluster, token.probe)

    async with new_connections_refused(cluster):
        await cluster.database.execute(
            "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name = $1",
            victim.application_name)
        # Nothing cached may be served, and nothing can be read: 503, never a 500.
        for probe in (token.probe, Probe("Basic", "GET", "/auth", account.basic),
                      Probe("login", "POST", "/login", {},
                            {"username": account.username, "password": account.password})):
            status, body = await send(cluster.http, victim, probe)
            assert status == 503, f"{probe.name}: {status} {body}"
        assert (await send(cluster.http, victim, Probe("alive", "GET", "/healthz")))[0] == 200
        for node in cluster.others(victim):
            assert (await send(cluster.http, node, token.probe))[0] == 200

    deadline = time.monotonic() + RECONNECT_TIMEOUT
    while (await send(cluster.http, victim, token.probe))[0] != 200:
        assert time.monotonic() < deadline, f"node {victim.name} did not serve again"
        await asyncio.sleep(0.05)
    await listener_pid(cluster, victim)
    await token.revoke(cluster.a)
    await expect_revoked(cluster, "named token, after reconnecting", token.probe,
                         time.monotonic(), cluster.a)


@dataclass
class Load:
    """Named tokens created under load: which node acknowledged each id, and failures."""

    acknowledged: dict[str, list[str]] = field(default_factory=lambda: collections.defaultdict(list))
    failures: list[str] = field(default_factory=list)


def descriptions() -> Iterator[str]:
    for number in itertools.count(1):
        yield f"load-{number}"


async def test_kill_9_of_a_node_under_write_load_loses_nothing_acknowledged(
        cluster: Cluster) -> None:
    account = await new_account(cluster)
    victim = cluster.nodes[2]
    load = Load()
    names = descriptions()
    killed = asyncio.Event()
    done = asyncio.Event()
    body = {"jwt_token_life": "1 hour"}

    async def write(node: Node) -> None:
        while not done.is_set():
            try:
                status, answer = await send(cluster.http, node, Probe(
                    "create", "POST", "/api/v1alpha/token", account.basic,
                    {**body, "jwt_token_description": next(names)}))
            except aiohttp.ClientError as exc:
                if node is victim and killed.is_set():
                    return
                load.failures.append(f"node {node.name}: {exc!r}")
                return
            if status == 201:
                load.acknowledged[node.name].append(answer["jwt_token_id"])
            elif not (node is victim and killed.is_set()):
                load.failures.append(f"node {node.name}: {status} {answer}")

    async def acknowledged_at_least(count: int) -> None:
        """Wait (bounded) until every surviving node acknowledged ``count`` more writes."""
        start = {name: len(ids) for name, ids in load.acknowledged.items()}
        deadline = time.monotonic() + 20
        while any(len(load.acknowledged[node.name]) - start.get(node.name, 0) < count
                  for node in cluster.nodes if not (node is victim and killed.is_set())):
            assert not load.failures, load.failures
            assert time.monotonic() < deadline, dict(load.acknowledged)
            await asyncio.sleep(0.01)

    writers = [asyncio.create_task(write(node)) for node in cluster.nodes for _ in range(4)]
    try:
        await acknowledged_at_least(20)
        os.kill(victim.server.process.pid, signal.SIGKILL)
        killed.set()
        await acknowledged_at_least(20)
    finally:
        done.set()
        await asyncio.gather(*writers)
    assert not load.failures, load.failures
    assert victim.server.process.wait(timeout=10) == -signal.SIGKILL

    # Every id any node acknowledged, the dead one's too, is there for the survivors.
    expected = {token_id for ids in load.acknowledged.values() for token_id in ids}
    for node in cluster.others(victim):
        listed = await call(cluster, node, "GET", "/api/v1alpha/token?limit=1000",
                            headers=account.basic)
        missing = expected - set(listed["jwt_tokens"])
        assert not missing, f"node {node.name} lost {len(missing)} acknowledged tokens"

    # The node comes back on the same config and sees them too.
    cluster.dead.append(victim.server)
    victim.server = Server(victim.workdir, victim.config, cluster.env)
    await victim.server.wait_ready()
    listed = await call(cluster, victim, "GET", "/api/v1alpha/token?limit=1000",
                        headers=account.basic)
    assert expected <= set(listed["jwt_tokens"])
