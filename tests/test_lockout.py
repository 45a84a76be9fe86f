"""Brute-force regulation locks out guessers, not owners, and tells nothing about accounts.

Over real HTTP with the injected clock. The test client connects from 127.0.0.1, a trusted
proxy by default, so ``X-Forwarded-For`` sets the client address of each attempt. Default
policy: 5 failures of one login or 50 from one address within 2 minutes ban it for 5.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any

from tests.conftest import ADMIN_PASSWORD, add_user

ATTACKER = {"X-Forwarded-For": "198.51.100.66"}
OWNER = {"X-Forwarded-For": "203.0.113.10"}


def address(index: int) -> dict[str, str]:
    return {"X-Forwarded-For": f"192.0.2.{index}"}


def basic(username: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()}


async def login(client: Any, username: str, password: str, headers: dict[str, str]) -> Any:
    return await client.post("/login", json={"username": username, "password": password},
                             headers=headers)


async def answer(response: Any) -> tuple[int, Any, str | None]:
    """What a client can observe of a refusal: status, body, Retry-After."""
    return response.status, await response.json(), response.headers.get("Retry-After")


# Finding 1: attempts during a ban neither count nor lengthen it


async def test_attempts_during_a_ban_do_not_lengthen_it(client, clock):
    for _ in range(5):
        assert (await login(client, "admin", "wrong-password", ATTACKER)).status == 401
    # The attacker keeps knocking through the ban, once a minute: each is a 429 whose
    # Retry-After counts down to the end of the ban that began with the fifth failure.
    for minute in range(1, 5):
        clock.advance(60)
        banned = await login(client, "admin", "wrong-password", ATTACKER)
        assert banned.status == 429
        assert int(banned.headers["Retry-After"]) == 300 - 60 * minute
    clock.advance(299 - 240)
    assert (await login(client, "admin", ADMIN_PASSWORD, OWNER)).status == 429
    clock.advance(1)
    assert (await login(client, "admin", ADMIN_PASSWORD, OWNER)).status == 200


async def test_the_owner_gets_in_between_bans_an_attacker_keeps_starting(client, clock):
    for _ in range(3):
        for _ in range(5):
            assert (await login(client, "admin", "wrong-password", ATTACKER)).status == 401
        for _ in range(10):  # hammering through the ban changes nothing
            clock.advance(25)
            assert (await login(client, "admin", "wrong-password", ATTACKER)).status == 429
        clock.advance(50)
        assert (await login(client, "admin", ADMIN_PASSWORD, OWNER)).status == 200


async def test_the_right_password_during_a_ban_does_not_end_it(client, clock):
    for _ in range(5):
        assert (await login(client, "admin", "wrong-password", ATTACKER)).status == 401
    assert (await login(client, "admin", ADMIN_PASSWORD, OWNER)).status == 429
    clock.advance(150)
    assert (await login(client, "admin", ADMIN_PASSWORD, OWNER)).status == 429
    clock.advance(150)
    assert (await login(client, "admin", ADMIN_PASSWORD, OWNER)).status == 200


# Finding 2: the 429 never tells whether a login exists, nor which logins share an account


TENANTS = {"tenants": {"default": {}, "one": {}, "two": {}}}


async def _case_trick(client: Any, tenant: str, name: str) -> tuple[int, Any, str | None]:
    """Five wrong passwords as NAME in capitals, from five addresses, then one as name."""
    headers = {"X-TENANT-ID": tenant}
    for index in range(5):
        response = await login(client, name.upper(), "wrong-password", {**headers, **address(index)})
        assert response.status == 401
    return await answer(await login(client, name, "wrong-password", {**headers, **address(99)}))


async def test_another_case_of_a_login_answers_alike_whether_the_user_exists_or_not(make_client):
    # Tenants keep separate accounts and counters: "one" has the user, "two" does not.
    client = await make_client(TENANTS)
    await add_user(client.app, "ghost6", "ghost6-password", tenant="one")
    with_user = await _case_trick(client, "one", "ghost6")
    without_user = await _case_trick(client, "two", "ghost6")
    assert with_user == without_user
    assert with_user[0] == 429


async def _email_then_username(client: Any, tenant: str) -> tuple[int, Any, str | None]:
    """Five wrong passwords for carol@x.org, then one for carol (SimpleJWT's /api/token/)."""
    headers = {"X-TENANT-ID": tenant}
    for index in range(5):
        response = await client.post("/api/token/", json={"email": "carol@x.org", "password": "nope"},
                                     headers={**headers, **address(index)})
        assert response.status == 401
    return await answer(await client.post(
        "/api/token/", json={"username": "carol", "password": "nope"},
        headers={**headers, **address(99)}))


async def test_a_ban_does_not_tell_which_email_and_username_share_an_account(make_client):
    client = await make_client(TENANTS)
    # "default": one account has both; "one": two accounts; "two": neither exists.
    await add_user(client.app, "carol", "carol-password", email="carol@x.org")
    await add_user(client.app, "carol", "carol-password", tenant="one")
    await add_user(client.app, "dave", "dave-password", email="carol@x.org", tenant="one")
    answers = [await _email_then_username(client, tenant) for tenant in ("default", "one", "two")]
    assert answers[0] == answers[1] == answers[2]
    assert answers[0][0] == 401


# The per-address limit: one guesser against many accounts, not an office behind one NAT


async def test_an_office_behind_one_address_is_not_banned_by_a_few_typos(client):
    office = {"X-Forwarded-For": "203.0.113.200"}
    for index in range(5):
        await add_user(client.app, f"clerk{index}", f"clerk{index}-password")
    for index in range(5):
        assert (await login(client, f"clerk{index}", "mistyped", office)).status == 401
    for index in range(5):
        assert (await login(client, f"clerk{index}", f"clerk{index}-password", office)).status == 200
    await add_user(client.app, "latecomer", "latecomer-password")
    assert (await login(client, "latecomer", "latecomer-password", office)).status == 200


async def test_one_address_guessing_many_accounts_is_banned_at_fifty(client):
    await add_user(client.app, "alice", "alice-password")
    statuses = await asyncio.gather(*(
        login(client, f"user{index}", "guess-password", ATTACKER) for index in range(50)))
    assert [response.status for response in statuses] == [401] * 50
    assert (await login(client, "alice", "alice-password", ATTACKER)).status == 429
    assert (await login(client, "alice", "alice-password", OWNER)).status == 200


# One user, whatever the spelling of its name; regulation counts the spellings as one login


async def test_any_case_of_a_username_logs_in_as_that_user(client):
    await add_user(client.app, "Alice", "alice-password")
    for spelling in ("alice", "ALICE", "\uff21lice"):  # the last with a fullwidth A
        response = await login(client, spelling, "alice-password", OWNER)
        assert response.status == 200
        assert (await response.json())["username"] == "Alice"
        pair = await client.post("/api/token/", json={"username": spelling,
                                                      "password": "alice-password"})
        assert pair.status == 200
        whoami = await client.get("/api/v1alpha/token", headers=basic(spelling, "alice-password"))
        assert whoami.status == 200
    ghost = await login(client, "alice\u200b", "alice-password", OWNER)
    assert ghost.status == 401
