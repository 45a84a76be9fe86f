"""The audit trail of a whole flow on a real server, read back through the admin API and
through ``gateway audit``; and what the trail and the logs never hold."""

from __future__ import annotations

import base64
import sqlite3
from pathlib import Path

import aiohttp
import pytest

from gateway.audit import parse_since
from tests.servers import Server, clean_env, run_cli

SECRET = "audit-trail-test-secret-0123456789-abcdef"
ADMIN_PASSWORD = "root-password-for-audit"
ALICE_PASSWORD = "alice-password-for-audit"
WRONG = ["wrong-password-one", "wrong-password-two", "wrong-password-three", "wrong-password-4"]


def basic(username: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()}


async def test_the_audit_trail_of_a_full_flow(tmp_path: Path) -> None:
    database = tmp_path / "data" / "gateway.db"
    config = tmp_path / "config.yaml"
    config.write_text(
        f"storage: {{path: '{database}'}}\n"
        "logging: {format: json, level: debug}\n"
        "login: {regulation: {max_retries: 2, find_time: 1 hour, ban_time: 1 hour}}\n",
        encoding="utf-8")
    env = clean_env(GATEWAY_SECRET_KEY=SECRET, GATEWAY_ADMIN_PASSWORD=ADMIN_PASSWORD)
    added = await run_cli(config, env, "users", "add", "alice", "--password-stdin",
                          stdin=ALICE_PASSWORD + "\n")
    assert added.returncode == 0, added.stderr

    server = Server(tmp_path, config, env)
    secrets: list[str] = [SECRET, ADMIN_PASSWORD, ALICE_PASSWORD, *WRONG]
    try:
        await server.wait_ready()
        root = basic("admin", ADMIN_PASSWORD)
        async with aiohttp.ClientSession(server.url) as http:
            async def login(username: str, password: str, request_id: str) -> aiohttp.ClientResponse:
                async with http.post("/login", json={"username": username, "password": password},
                                     headers={"X-Request-ID": request_id}) as response:
                    await response.read()
                    return response

            # A login failure; two more for mallory, then a ban (recorded once).
            assert (await login("alice", WRONG[0], "flow-alice-fails")).status == 401
            assert (await login("mallory", WRONG[1], "flow-m1")).status == 401
            assert (await login("mallory", WRONG[2], "flow-m2")).status == 401
            assert (await login("mallory", WRONG[3], "flow-banned")).status == 429
            assert (await login("mallory", WRONG[3], "flow-banned-again")).status == 429
            # A login, a named token created, then revoked.
            async with http.post("/login", json={"username": "alice", "password": ALICE_PASSWORD},
                                 headers={"X-Request-ID": "flow-login"}) as response:
                assert response.status == 200
                session = await response.json()
            secrets += [session["token"], session["key"]]
            async with http.post("/api/v1alpha/token", headers=basic("alice", ALICE_PASSWORD),
                                 json={"jwt_token_description": "ci", "jwt_token_life": "1 hour"}
                                 ) as response:
                assert response.status == 201
                named = await response.json()
            secrets.append(named["jwt_token"])
            async with http.delete(f"/api/v1alpha/token/{named['jwt_token_id']}",
                                   headers=basic("alice", ALICE_PASSWORD)) as response:
                assert response.status == 200
            # The user disabled by root: her session ends on the next request.
            async with http.patch("/admin/users/alice", json={"disabled": True}, headers=root,
                                  ) as response:
                assert response.status == 200
                assert (await response.json())["revoked"] == 1
            async with http.get("/auth", headers={"X-Access-Token": session["token"],
                                                  "X-Key": session["key"]}) as response:
                assert response.status == 401

            async with http.get("/admin/audit", headers=root) as response:
                assert response.status == 200
                events = (await response.json())["events"]
            async with http.get("/admin/audit?user=alice&limit=3", headers=root) as response:
                recent = (await response.json())["events"]
    finally:
        assert server.stop() == 0
    logs = server.output()

    assert [(e["action"], e["actor"], e["subject"]) for e in events] == [
        ("user_disabled", "admin", "alice"),
        ("token_revoked", "alice", "alice"),
        ("token_issued", "alice", "alice"),
        ("token_issued", "alice", "alice"),
        ("login_succeeded", "alice", "alice"),
        ("login_banned", "mallory", "mallory"),
        ("login_failed", "mallory", "mallory"),
        ("login_failed", "mallory", "mallory"),
        ("login_failed", "alice", "alice"),
        ("user_created", "cli", "alice"),
    ]
    by_request = {e["request_id"]: e for e in events if e["request_id"]}
    assert by_request["flow-banned"]["detail"]["retry_after"] > 3500
    assert by_request["flow-alice-fails"]["action"] == "login_failed"
    login_events = [e for e in events if e["request_id"] == "flow-login"]
    assert [e["action"] for e in login_events] == ["token_issued", "login_succeeded"]
    assert login_events[0]["detail"]["kind"] == "session"
    assert login_events[0]["detail"]["jti"]
    assert events[1]["detail"] == {"kind": "api", "jti": named["jwt_token_id"], "reason": "deleted"}
    assert events[2]["detail"]["description"] == "ci"
    assert all(e["address"] == "127.0.0.1" for e in events[:-1])
    assert events[-1]["address"] is None and events[-1]["request_id"] is None  # the CLI
    assert [e["action"] for e in recent] == ["user_disabled", "token_revoked", "token_issued"]
    assert parse_since(events[0]["time"]).at is not None

    # The same trail through the command line, oldest first, one event per line.
    listed = await run_cli(config, env, "audit")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert [line.split()[1] for line in lines] == [e["action"] for e in reversed(events)]
    assert "actor=admin subject=alice address=127.0.0.1" in lines[-1]
    assert "request_id=flow-banned" in lines[4] and "retry_after=" in lines[4]
    for args, actions in ((("--user", "mallory", "--limit", "2"), ["login_failed", "login_banned"]),
                          (("--user", "alice", "--since", "1 hour"), None),
                          (("--tenant", "default", "--limit", "1"), ["user_disabled"])):
        result = await run_cli(config, env, "audit", *args)
        assert result.returncode == 0, result.stderr
        got = [line.split()[1] for line in result.stdout.splitlines()]
        if actions is not None:
            assert got == actions
        else:
            assert "login_banned" not in got and got[-1] == "user_disabled"
    bad = await run_cli(config, env, "audit", "--since", "yesterday")
    assert bad.returncode == 1 and bad.stderr.startswith("gateway: expected an ISO 8601 time")
    unknown = await run_cli(config, env, "audit", "--tenant", "nope")
    assert unknown.returncode == 1 and "nope" in unknown.stderr

    # Never a password, token, key or X-Key: not in the trail, not in the logs.
    trail = str(events) + listed.stdout
    with sqlite3.connect(database) as db:
        trail += str(db.execute("SELECT * FROM audit_events").fetchall())
        private_keys = [row[0] for row in db.execute("SELECT private_key FROM keys")]
    assert "alice-password" not in logs
    for secret in [*secrets, *private_keys]:
        assert secret not in trail, secret[:12]
        assert secret not in logs, secret[:12]
    assert "PRIVATE KEY" not in logs
    assert any('"request_id": "flow-login"' in line for line in logs.splitlines())


@pytest.mark.sqlite_only
async def test_the_trail_is_append_only_and_pruned_past_its_retention(tmp_path: Path) -> None:
    database = tmp_path / "gateway.db"
    config = tmp_path / "config.yaml"
    config.write_text(f"storage: {{path: '{database}'}}\naudit: {{retention: 1 day}}\n",
                      encoding="utf-8")
    env = clean_env(GATEWAY_SECRET_KEY=SECRET)
    assert (await run_cli(config, env, "tenants", "add", "acme")).returncode == 0
    with sqlite3.connect(database) as db:
        db.execute("INSERT INTO audit_events (at, tenant_id, action) VALUES (1, 'acme', 'old')")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            db.execute("UPDATE audit_events SET actor = 'someone else'")
    pruned = await run_cli(config, env, "tokens", "prune")
    assert pruned.returncode == 0, pruned.stderr
    assert "pruned 1 audit event(s) older than 1 day" in pruned.stdout
    listed = await run_cli(config, env, "audit", "--tenant", "acme")
    assert [line.split()[1] for line in listed.stdout.splitlines()] == ["tenant_added"]
