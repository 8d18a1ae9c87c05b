"""Per-source rate limits: a token bucket and a cap on requests in progress, each answered 429
with Retry-After before any credential check, body read or storage work; one source flooding
the host does not slow another. Through HTTP on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import statistics
import time

import pytest
from helpers import ScimClient, bearer, make_config, metric

from scimhost.app import create_app
from scimhost.config import ConfigError
from scimhost.host import load_host
from scimhost.http.keys import HOST
from scimhost.rate_limits import RateLimits, SourceLimiter

ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def limited_config(storage_url: str, **limits) -> dict:
    config = make_config(storage_url)
    config["limits"] = limits
    config["sources"][1]["limits"] = {"source_rate_per_second": 0, "source_max_concurrent": 0}  # "other": none
    return config


async def app_with_clock(aiohttp_client, config):
    app = create_app(config)
    client = await aiohttp_client(app)
    host = app[HOST]
    clock = Clock()
    host.limiter = SourceLimiter({slug: s.limits for slug, s in host.sources.items()}, clock=clock)
    return client, host, clock


async def test_over_the_rate_a_request_is_429_with_retry_after_and_does_nothing(aiohttp_client, storage_url):
    client, host, clock = await app_with_clock(
        aiohttp_client, limited_config(storage_url, source_rate_per_second=2, source_rate_burst=2)
    )
    scim = ScimClient(client, "demo", await host.issue_token("demo"))
    assert (await scim.request("GET", "/Users")).status == 200
    assert (await scim.request("GET", "/Users")).status == 200
    refused = await scim.request("POST", "/Users", {"userName": "never"})
    assert refused.status == 429 and refused.headers["Retry-After"] == "1"
    body = await refused.json(content_type=None)
    assert body["schemas"] == [ERROR_SCHEMA] and body["status"] == "429" and "demo" in body["detail"]
    # No credentials are even looked at: a wrong token gets the same 429, not a 401.
    wrong = await client.get("/source/scim/demo/v2/Users", headers=bearer("wrong"))
    assert wrong.status == 429
    # Another source has limits of its own (here none).
    other = ScimClient(client, "other", await host.issue_token("other"))
    assert all([(await other.request("GET", "/Users")).status == 200 for _ in range(10)])
    clock.now += 0.5  # one token back at 2/s
    found = await scim.request("GET", '/Users?filter=userName eq "never"')
    assert found.status == 200 and (await found.json())["totalResults"] == 0  # the refused POST did nothing
    assert (await scim.request("GET", "/Users")).status == 429
    clock.now += 10
    assert (await scim.request("POST", "/Users", {"userName": "later"})).status == 201
    text = host.metrics.exposition()[0].decode()
    assert metric(text, "scimhost_rate_limited_total", source="demo", reason="rate") == 3
    assert metric(text, "scimhost_rate_limited_total", source="other", reason="rate") == 0


async def test_retry_after_says_when_a_token_is_free(aiohttp_client, storage_url):
    client, host, clock = await app_with_clock(
        aiohttp_client, limited_config(storage_url, source_rate_per_second=0.2, source_rate_burst=1)
    )
    scim = ScimClient(client, "demo", await host.issue_token("demo"))
    assert (await scim.request("GET", "/Users")).status == 200
    clock.now += 1  # a fifth of a token back; four fifths need 4 s more
    refused = await scim.request("GET", "/Users")
    assert refused.status == 429 and refused.headers["Retry-After"] == "4"
    clock.now += 4
    assert (await scim.request("GET", "/Users")).status == 200


async def test_over_the_concurrency_cap_a_request_is_429_until_one_ends(aiohttp_client, storage_url):
    client, host, _ = await app_with_clock(
        aiohttp_client, limited_config(storage_url, source_rate_per_second=0, source_max_concurrent=1)
    )
    token = await host.issue_token("demo")
    scim = ScimClient(client, "demo", token)
    release = asyncio.Event()

    async def slow_body():
        yield b'{"userName": '
        await release.wait()
        yield b'"slowpoke"}'

    slow = asyncio.create_task(
        client.post(
            "/source/scim/demo/v2/Users",
            data=slow_body(),
            headers={**bearer(token), "Content-Type": "application/scim+json"},
        )
    )
    for _ in range(200):  # the slow POST is in progress (admitted, its body still arriving)
        if host.limiter._running["demo"] == 1:
            break
        await asyncio.sleep(0.01)
    refused = await scim.request("GET", "/Users")
    assert refused.status == 429 and refused.headers["Retry-After"] == "1"
    assert "in progress at once" in (await refused.json(content_type=None))["detail"]
    release.set()
    assert (await slow).status == 201
    assert (await scim.request("GET", "/Users")).status == 200
    text = host.metrics.exposition()[0].decode()
    assert metric(text, "scimhost_rate_limited_total", source="demo", reason="concurrency") == 1


async def test_a_flooded_source_does_not_slow_another(aiohttp_client, storage_url):
    """`demo` at ten times its limit; `other`'s GETs keep their pace and are never refused."""
    config = make_config(storage_url)
    config["limits"] = {"source_rate_per_second": 20, "source_rate_burst": 20}
    app = create_app(config)
    client = await aiohttp_client(app)
    flooded = ScimClient(client, "demo", await app[HOST].issue_token("demo"))
    calm = ScimClient(client, "other", await app[HOST].issue_token("other"))
    await calm.create_user("steady")

    async def timed_gets(count: int) -> list[float]:
        took = []
        for _ in range(count):
            started = time.perf_counter()
            response = await calm.request("GET", '/Users?filter=userName eq "steady"')
            assert response.status == 200
            took.append(time.perf_counter() - started)
            await asyncio.sleep(0.04)  # 25 requests a second
        return took

    before = await timed_gets(15)
    statuses: list[int] = []
    stop = asyncio.Event()

    async def flood() -> None:
        while not stop.is_set():  # as fast as the loop goes: far over 20/s
            statuses.append((await flooded.request("GET", "/Users")).status)

    flooders = [asyncio.create_task(flood()) for _ in range(8)]
    during = await timed_gets(15)
    stop.set()
    await asyncio.gather(*flooders)
    refused = statuses.count(429)
    assert refused > 0 and len(statuses) > 200, (len(statuses), refused)
    assert statistics.median(during) < 3 * statistics.median(before) + 0.02, (before, during)


def test_limits_are_checked_and_a_source_may_override_them(tmp_path):
    config = make_config(f"sqlite://{tmp_path}/db.sqlite3")
    config["limits"] = {"source_rate_per_second": -1}
    config["sources"][0]["limits"] = {"source_rate_burst": 0, "source_rate_per_second": 5, "nosuch": 1}
    with pytest.raises(ConfigError) as excinfo:
        load_host(config)
    text = str(excinfo.value)
    assert "limits.source_rate_per_second: must not be negative" in text
    assert "sources[0].limits.nosuch: unknown key" in text
    assert "sources[0].limits.source_rate_burst: must be at least 1 when a rate is set" in text
    config["limits"] = {"source_rate_per_second": 50}
    config["sources"][0]["limits"] = {"source_max_concurrent": 4}
    host = load_host(config)
    assert host.sources["demo"].limits == RateLimits(50.0, 200, 4)
    assert host.sources["other"].limits == RateLimits(50.0, 200, 32)


def test_the_defaults_never_refuse_an_identity_providers_normal_pace():
    """Entra's validator: 25 requests/s per tenant, sustained; a worker's share with two workers
    even when every connection lands on one of them."""
    from scimhost.config import LimitSettings

    defaults = LimitSettings()
    limits = RateLimits(defaults.source_rate_per_second, defaults.source_rate_burst, defaults.source_max_concurrent)
    for share in (1.0, 0.5):
        clock = Clock()
        limiter = SourceLimiter({"entra": limits}, share=share, clock=clock)
        for _ in range(25 * 120):  # two minutes at 25/s
            assert limiter.admit("entra") is None
            limiter.release("entra")
            clock.now += 0.04


def test_a_worker_takes_its_share_of_the_limits():
    limits = RateLimits(100.0, 200, 32).shared(0.5)
    assert limits == RateLimits(50.0, 100, 16)
    assert RateLimits(0.0, 0, 0).shared(0.5) == RateLimits(0.0, 0, 0)
