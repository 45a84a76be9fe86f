"""``POST /token/check``'s ``ip`` is believed only from a trusted proxy or an admin.

From anyone else it is a 403 ``ip_not_allowed_here``: a client must not claim an address
inside a token's ``rangeip``, nor spend someone else's one-time token by naming theirs.
The test client connects from 127.0.0.1, a trusted proxy by default; the configs below
that trust only 10.0.0.0/8 make it an ordinary client.
"""

from __future__ import annotations

import base64
from typing import Any

from tests.conftest import ADMIN_PASSWORD, add_user

ADMIN = {"Authorization": "Basic " + base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()}
USER = {"Authorization": "Basic " + base64.b64encode(b"alice:alice-password-1").decode()}
UNTRUSTED_LOOPBACK = {"server": {"trusted_proxies": ["10.0.0.0/8"]}}
OFFICE = "203.0.113.0/24"


async def issue(client, **body: Any) -> str:
    response = await client.post("/token", json={"ipRange": [OFFICE], **body}, headers=ADMIN)
    assert response.status == 201, await response.text()
    token: str = (await response.json())["token"]
    return token


async def check(client, token: str, headers: dict[str, str] | None = None,
                **body: Any) -> tuple[int, dict[str, Any]]:
    response = await client.post("/token/check", json={"token": token, **body}, headers=headers)
    return response.status, await response.json()


async def test_a_client_cannot_claim_an_address_inside_the_range(make_client):
    client = await make_client(UNTRUSTED_LOOPBACK)
    token = await issue(client, unique=False)
    assert await check(client, token) == (403, {"error": "ip_not_allowed",
                                                "message": "This token is not valid from this address"})
    status, body = await check(client, token, ip="203.0.113.9")
    assert (status, body["error"]) == (403, "ip_not_allowed_here")


async def test_a_client_cannot_spend_someone_elses_one_time_token(make_client):
    client = await make_client(UNTRUSTED_LOOPBACK)
    token = await issue(client, unique=True)
    status, body = await check(client, token, ip="203.0.113.9")
    assert (status, body["error"]) == (403, "ip_not_allowed_here")
    # Not used up: the admin, on behalf of the client at that address, still can.
    assert (await check(client, token, ADMIN, ip="203.0.113.9"))[0] == 200
    assert (await check(client, token, ADMIN, ip="203.0.113.9"))[1]["error"] == "token_used"


async def test_a_plain_user_credential_does_not_allow_an_address(make_client):
    client = await make_client(UNTRUSTED_LOOPBACK)
    await add_user(client.app, "alice", "alice-password-1")
    token = await issue(client, unique=False)
    status, body = await check(client, token, USER, ip="203.0.113.9")
    assert (status, body["error"]) == (403, "ip_not_allowed_here")


async def test_an_admin_may_name_the_address_both_ways(make_client):
    client = await make_client(UNTRUSTED_LOOPBACK)
    token = await issue(client, unique=False)
    assert (await check(client, token, ADMIN, ip="203.0.113.9"))[0] == 200
    status, body = await check(client, token, ADMIN, ip="198.51.100.1")
    assert (status, body["error"]) == (403, "ip_not_allowed")


async def test_a_trusted_proxy_may_name_the_address_without_credentials(client):
    token = await issue(client, unique=False)
    assert (await check(client, token, ip="203.0.113.9"))[0] == 200
    assert (await check(client, token, ip="::ffff:203.0.113.9"))[0] == 200
    status, body = await check(client, token, ip="198.51.100.1")
    assert (status, body["error"]) == (403, "ip_not_allowed")


async def test_without_ip_the_callers_own_address_counts(make_client):
    client = await make_client(UNTRUSTED_LOOPBACK)
    token = await issue(client, unique=False, ipRange=["127.0.0.0/8"])
    assert (await check(client, token))[0] == 200


async def test_a_trusted_proxy_written_as_ipv4_mapped_ipv6_is_trusted(make_client):
    # The same parser as the token's ipRange: ::ffff:127.0.0.0/104 is 127.0.0.0/8.
    client = await make_client({"server": {"trusted_proxies": ["::ffff:127.0.0.0/104"]}})
    token = await issue(client, unique=False)
    forwarded = {"X-Forwarded-For": "203.0.113.9"}
    assert (await check(client, token, forwarded))[0] == 200
    assert (await check(client, token, forwarded, ip="203.0.113.9"))[0] == 200
