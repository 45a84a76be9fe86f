"""``GET /metrics``: what the counters say after real requests, in one process and summed
over the workers of a real ``gateway serve --workers 2``."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from gateway.metrics import LATENCY_BUCKETS
from tests.conftest import ADMIN_PASSWORD, TEST_SECRET, ClientMaker
from tests.servers import Server, clean_env

ADMIN_LOGIN = {"username": "admin", "password": ADMIN_PASSWORD}


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape, by (name, sorted labels)."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(scrape: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str,
          **labels: str) -> float:
    return scrape.get((name, tuple(sorted(labels.items()))), 0.0)


async def scrape(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    return samples(await response.text())


async def test_metrics_move_with_requests_tokens_and_the_cache(make_client: ClientMaker) -> None:
    client = await make_client()
    before = await scrape(client)
    assert value(before, "gateway_requests_total", route="/login", method="POST",
                 status="200") == 0

    session = await (await client.post("/login", json=ADMIN_LOGIN)).json()
    assert (await client.post("/login", json={**ADMIN_LOGIN, "password": "wrong-one"})).status == 401
    pair = await (await client.post("/api/token/", json=ADMIN_LOGIN)).json()
    bearer = {"Authorization": f"Bearer {pair['access']}"}
    for _ in range(3):
        assert (await client.get("/auth", headers=bearer)).status == 200
    named = await client.post("/api/v1alpha/token", headers=bearer,
                              json={"jwt_token_description": "ci", "jwt_token_life": 600})
    token_id = (await named.json())["jwt_token_id"]
    assert (await client.delete(f"/api/v1alpha/token/{token_id}", headers=bearer)).status == 200
    assert (await client.post("/logout", headers={"X-Access-Token": session["token"],
                                                  "X-Key": session["key"]})).status == 200
    assert (await client.get("/no/such/page")).status == 404

    after = await scrape(client)
    assert value(after, "gateway_requests_total", route="/login", method="POST", status="200") == 1
    assert value(after, "gateway_requests_total", route="/login", method="POST", status="401") == 1
    assert value(after, "gateway_requests_total", route="/auth", method="GET", status="200") == 3
    assert value(after, "gateway_requests_total", route="unmatched", method="GET",
                 status="404") == 1
    # Raw paths never become labels: the token id is in the pattern, not the metric.
    assert not any(token_id in str(labels) for _, labels in after)
    assert value(after, "gateway_requests_total", route="/api/v1alpha/token/{token_id}",
                 method="DELETE", status="200") == 1
    # The latency histogram counts each request once, in a bucket no lower than its time.
    assert value(after, "gateway_request_duration_seconds_count", route="/auth") == 3
    assert value(after, "gateway_request_duration_seconds_bucket", route="/auth",
                 le="+Inf") == 3
    assert value(after, "gateway_request_duration_seconds_sum", route="/auth") > 0
    assert value(after, "gateway_request_duration_seconds_bucket", route="/auth",
                 le=str(LATENCY_BUCKETS[-1])) <= 3
    assert value(after, "gateway_logins_total", outcome="succeeded") == 2
    assert value(after, "gateway_logins_total", outcome="failed") == 1
    assert value(after, "gateway_tokens_issued_total", kind="session") == 1
    assert value(after, "gateway_tokens_issued_total", kind="refresh") == 1
    assert value(after, "gateway_tokens_issued_total", kind="access") == 1
    assert value(after, "gateway_tokens_issued_total", kind="api") == 1
    assert value(after, "gateway_tokens_revoked_total", reason="deleted") == 1
    assert value(after, "gateway_tokens_revoked_total", reason="logout") == 1
    # The first /auth verified the token (a miss); the next two came from the cache.
    assert value(after, "gateway_identity_cache_lookups_total", result="hit") >= 2
    assert value(after, "gateway_identity_cache_lookups_total", result="miss") >= 1
    # The logout and the deletion reached this process's cache through the revocation log.
    assert value(after, "gateway_revocation_lag_seconds_count") >= 1


async def test_a_regulated_attempt_counts_as_banned(make_client: ClientMaker) -> None:
    client = await make_client({"login": {"regulation": {"max_retries": 1}}})
    wrong = {**ADMIN_LOGIN, "password": "wrong-one"}
    assert (await client.post("/login", json=wrong)).status == 401
    assert (await client.post("/login", json=wrong)).status == 429
    after = await scrape(client)
    assert value(after, "gateway_logins_total", outcome="failed") == 1
    assert value(after, "gateway_logins_total", outcome="banned") == 1


async def test_one_scrape_sums_every_worker(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("storage: {path: ./data/gateway.db}\n")
    server = Server(tmp_path, config, clean_env(GATEWAY_SECRET_KEY=TEST_SECRET,
                                                GATEWAY_ADMIN_PASSWORD=ADMIN_PASSWORD),
                    "--workers", "2")
    try:
        await server.wait_ready(workers=2)
        sent = 0
        connector = aiohttp.TCPConnector(force_close=True)  # the kernel spreads connections
        async with aiohttp.ClientSession(connector=connector) as session:
            deadline = time.monotonic() + 20
            while sent < 40 or len(server.pids_seen()) < 2:
                assert time.monotonic() < deadline, "both workers never answered"
                async with session.get(f"{server.url}/healthz") as response:
                    assert response.status == 200
                sent += 1
                if sent % 20 == 0:
                    await asyncio.sleep(0.1)  # let the access lines reach the log
            # Each worker flushes within a second; any worker's scrape sums them all.
            total = 0.0
            while time.monotonic() < deadline:
                async with session.get(f"{server.url}/metrics") as response:
                    scraped = samples(await response.text())
                total = value(scraped, "gateway_requests_total", route="/healthz",
                              method="GET", status="200")
                if total == sent:
                    break
                await asyncio.sleep(0.2)
            assert total == sent
        assert len(server.pids_seen()) == 2
    finally:
        assert server.stop() == 0
