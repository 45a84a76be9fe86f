"""The seed documents' curl commands, run with real curl against a real server.

Only the host and port change (the seeds use 127.0.0.1:25441 and api.webitel.com:10022).
Seed 001 shows ``admin:password`` for POST and ``admin:secret`` for GET/DELETE; one
admin has one password, so all three use ``admin:password`` here.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from gateway.passwords import PasswordHasher
from gateway.storage import NewUser, open_sqlite_store
from tests.servers import Server, clean_env, run_cli

pytestmark = pytest.mark.skipif(shutil.which("curl") is None,
                                reason="curl is not installed (.ci/run installs it)")


async def curl(*args: str) -> tuple[int, dict]:
    """Run curl with the seed's arguments; the HTTP status and the JSON body."""
    result = await asyncio.to_thread(
        subprocess.run, ["curl", "-s", "-w", "\n%{http_code}", *args],
        capture_output=True, text=True, timeout=30, check=False,
    )
    assert result.returncode == 0, result.stderr
    body, _, status = result.stdout.rpartition("\n")
    return int(status), json.loads(body)


@pytest.fixture
async def server(tmp_path: Path):
    config = tmp_path / "config.yaml"
    config.write_text("storage: {path: ./state/gateway.db}\n")
    env = clean_env(GATEWAY_ADMIN_PASSWORD="password")
    # Seed 003's user has the 6-character password "secret", below the CLI's minimum of 8:
    # it is created through the store, as an existing user base would be migrated.
    store = await open_sqlite_store(tmp_path / "state" / "gateway.db")
    hasher = PasswordHasher(memory_cost_kib=19456, time_cost=2, parallelism=1)
    try:
        await store.add_tenant("default", time.time())
        await store.add_user(NewUser("default", "100@mydomain.com", await hasher.hash("secret")),
                             time.time())
    finally:
        hasher.close()
        await store.close()
    added = await run_cli(config, env, "users", "add", "johndoe", "--email", "johndoe@example.com",
                          "--password-stdin", stdin="example1234\n")
    assert added.returncode == 0, added.stderr
    running = Server(tmp_path, config, env)
    await running.wait_ready()
    yield running
    assert running.stop() == 0, running.output()


async def test_seed_001_named_tokens(server):
    base = server.url
    status, created = await curl(
        "-u", "admin:password", "--location", "--request", "POST", f"{base}/api/v1alpha/token",
        "--header", "Content-Type: application/json",
        "-d", '{\n    "jwt_token_description": "Token specter",\n    "jwt_token_life": "6 hours"\n}',
    )
    assert status == 201
    assert created["message"] == "Token generated"
    assert created["jwt_token_description"] == "Token specter"
    assert created["jwt_token_life"] == 21600
    assert uuid.UUID(created["jwt_token_id"]) and created["jwt_token"].count(".") == 2
    token_id = created["jwt_token_id"]

    status, one = await curl("-u", "admin:password", "--location", "--request", "GET",
                             f"{base}/api/v1alpha/token/{token_id}")
    assert status == 200
    assert one["message"] == "Tokens exists" and one["expiry_status"] == "Valid"
    assert one["jwt_token_description"] == "Token specter" and one["jwt_token_life"] == 21600
    assert 21500 < one["jwt_token_life_remaining"] <= 21600

    status, listing = await curl("-u", "admin:password", f"{base}/api/v1alpha/token")
    assert status == 200 and listing["message"] == "Tokens exists"
    assert listing["jwt_tokens"][token_id]["jwt_token_life"] == 21600

    status, deleted = await curl("-u", "admin:password", "--location", "--request", "DELETE",
                                 f"{base}/api/v1alpha/token/{token_id}")
    assert (status, deleted) == (200, {"message": "Token deleted"})


async def test_seed_003_login_and_logout(server):
    status, session = await curl(
        "-X", "POST", "-H", "Content-Type: application/json",
        "-d", '{"username":"100@mydomain.com","password":"secret"}', f"{server.url}/login",
    )
    assert status == 200
    assert session["username"] == "100@mydomain.com" and session["role"] == 2
    assert session["expires"] > time.time() * 1000
    status, body = await curl("-X", "POST", "-H", f"X-Access-Token: {session['token']}",
                              "-H", f"X-Key: {session['key']}", f"{server.url}/logout")
    assert (status, body) == (200, {"status": "OK", "info": "Successful logout."})
    status, body = await curl("-X", "POST", "-H", f"X-Access-Token: {session['token']}",
                              "-H", f"X-Key: {session['key']}", f"{server.url}/logout")
    assert (status, body) == (401, {"status": "error", "info": "Bad caller"})


async def test_seed_004_obtain_refresh_verify(server):
    json_header = ["-X", "POST", "-H", "Content-Type: application/json"]
    status, pair = await curl(*json_header, "-d",
                              '{\n    "email": "johndoe@example.com",\n    "password": "example1234"\n}',
                              f"{server.url}/api/token/")
    assert status == 200 and set(pair) == {"refresh", "access"}
    status, refreshed = await curl(*json_header, "-d", json.dumps({"refresh": pair["refresh"]}),
                                   f"{server.url}/api/token/refresh/")
    assert status == 200 and set(refreshed) == {"access"}
    status, verified = await curl(*json_header, "-d", json.dumps({"token": refreshed["access"]}),
                                  f"{server.url}/api/token/verify/")
    assert (status, verified) == (200, {})
    status, invalid = await curl(*json_header, "-d", '{"token": "eyJ0eXAiOi.JKV1QiLCJhbGc.iOiJIUzI1N"}',
                                 f"{server.url}/api/token/verify/")
    assert (status, invalid) == (401, {"detail": "Token is invalid or expired", "code": "token_not_valid"})
