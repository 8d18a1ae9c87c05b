"""The set-poll feed driven by a poller written from RFC 8936: SETs verified with PyJWT against
the published JWKS, acknowledged, rejected (setErrs), handed out again after the in-flight time,
per resource in order, and a waiting poll woken by a new event. Through HTTP on both databases."""

from __future__ import annotations

import asyncio
import json
import time

import jwt as pyjwt
import pytest
from joserfc.jwk import ECKey

from scimhost.app import create_app
from scimhost.http.keys import HOST
from scimhost.testing_databases import (  # noqa: F401
    database,
    postgres_database_url,
    postgres_schema_url,
    postgres_template,
    postgres_url,
    sqlite_template,
    storage_url,
)

EVENT = "urn:ietf:params:scim:event:"
AUDIENCE = "https://poller.example.test"
PUBLIC_URL = "https://scim.example.test"
TOKEN = "poller-token-" + "x" * 40


@pytest.fixture
def poll_env(monkeypatch):
    monkeypatch.setenv("TEST_POLL_KEY", ECKey.generate_key("P-256").as_pem(private=True).decode())
    monkeypatch.setenv("TEST_POLL_TOKEN", TOKEN)


class Poller:
    """An RFC 8936 poller: POSTs ack / setErrs / maxEvents / returnImmediately, verifies each SET."""

    def __init__(self, client, jwks: dict) -> None:
        self.client = client
        self.keys = pyjwt.PyJWKSet.from_dict(jwks)

    async def poll(self, *, ack=(), errors=None, max_events=10, immediately=True, token=TOKEN):
        body = {"ack": list(ack), "setErrs": errors or {}, "maxEvents": max_events, "returnImmediately": immediately}
        response = await self.client.post(
            "/set/feed/poll",
            data=json.dumps(body),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        return response

    async def sets(self, **kwargs) -> dict[str, dict]:
        response = await self.poll(**kwargs)
        assert response.status == 200, await response.text()
        document = await response.json()
        verified = {}
        for jti, token in document["sets"].items():
            header = pyjwt.get_unverified_header(token)
            key = next(k for k in self.keys.keys if k.key_id == header["kid"])
            claims = pyjwt.decode(token, key.key, algorithms=["ES256"], audience=AUDIENCE, issuer=PUBLIC_URL)
            assert claims["jti"] == jti and header["typ"] == "secevent+jwt" and "sub" not in claims
            verified[jti] = claims
        return verified


async def feed(aiohttp_client, storage_url, **options):
    config = {
        "server": {"public_url": PUBLIC_URL},
        "storage": {"tortoise": {"url": storage_url}},
        "events": {
            "sinks": [
                {
                    "name": "feed",
                    "type": "set-poll",
                    "audience": AUDIENCE,
                    "token_env": "TEST_POLL_TOKEN",
                    "key_env": ["TEST_POLL_KEY"],
                    **options,
                }
            ]
        },
        "sources": [{"slug": "demo", "name": "Demo"}],
    }
    app = create_app(config)
    client = await aiohttp_client(app)
    jwks = await (await client.get("/.well-known/scimhost-set/feed/jwks.json")).json()
    headers = {
        "Authorization": f"Bearer {await app[HOST].issue_token('demo')}",
        "Content-Type": "application/scim+json",
    }
    return app, client, headers, Poller(client, jwks)


async def create(client, headers, name: str, **attributes) -> dict:
    response = await client.post(
        "/source/scim/demo/v2/Users", data=json.dumps({"userName": name, **attributes}), headers=headers
    )
    assert response.status == 201
    return await response.json()


async def test_sets_are_polled_acknowledged_and_not_handed_out_again(aiohttp_client, storage_url, poll_env):
    app, client, headers, poller = await feed(aiohttp_client, storage_url)
    users = [await create(client, headers, f"u{i}", externalId=f"e{i}") for i in range(3)]
    got = await poller.sets()
    assert sorted(c["sub_id"]["uri"] for c in got.values()) == sorted(f"/Users/{u['id']}" for u in users)
    assert all(EVENT + "prov:create:notice" in c["events"] for c in got.values())
    # Not acknowledged yet: in flight, not handed out again at once.
    assert await poller.sets() == {}
    assert await poller.sets(ack=list(got)) == {}
    stats = await app[HOST].storage.sink_stats("feed")
    assert (stats.done, stats.pending, stats.inflight) == (3, 0, 0)


async def test_a_resources_next_set_waits_for_the_previous_ones_ack(aiohttp_client, storage_url, poll_env):
    app, client, headers, poller = await feed(aiohttp_client, storage_url)
    user = await create(client, headers, "ordered")
    patch = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "active", "value": False}],
    }
    assert (
        await client.patch(f"/source/scim/demo/v2/Users/{user['id']}", data=json.dumps(patch), headers=headers)
    ).status in (200, 204)
    [(first_jti, first)] = (await poller.sets()).items()
    assert EVENT + "prov:create:notice" in first["events"]
    assert await poller.sets() == {}  # the patch waits for the create's ack
    [(_, second)] = (await poller.sets(ack=[first_jti])).items()
    # One SET for the change, with its deactivation beside it, the change's txn.
    assert set(second["events"]) == {EVENT + "prov:patch:notice", EVENT + "prov:deactivate"}
    assert second["txn"] != first["txn"]


async def test_an_unacknowledged_set_is_handed_out_again_with_its_id(aiohttp_client, storage_url, poll_env):
    app, client, headers, poller = await feed(aiohttp_client, storage_url, inflight_seconds=1)
    await create(client, headers, "again")
    first = await poller.sets()
    assert await poller.sets() == {}
    await asyncio.sleep(1.2)
    again = await poller.sets()
    assert list(again) == list(first) and next(iter(again.values()))["txn"] == next(iter(first.values()))["txn"]


async def test_set_errs_make_the_delivery_dead_and_a_forged_id_changes_nothing(aiohttp_client, storage_url, poll_env):
    app, client, headers, poller = await feed(aiohttp_client, storage_url)
    await create(client, headers, "rejected")
    [jti] = list(await poller.sets())
    assert await poller.sets(ack=["1.deadbeef", "x", 5]) == {}  # ids this feed never made
    assert (await app[HOST].storage.sink_stats("feed")).done == 0
    await poller.sets(errors={jti: {"err": "invalid_key", "description": "cannot verify"}})
    stats = await app[HOST].storage.sink_stats("feed")
    assert stats.dead == 1 and "invalid_key" in stats.last_error


async def test_a_waiting_poll_is_answered_when_an_event_comes(aiohttp_client, storage_url, poll_env):
    app, client, headers, poller = await feed(aiohttp_client, storage_url, max_wait_seconds=10)
    started = time.monotonic()
    waiting = asyncio.create_task(poller.sets(immediately=False))
    await asyncio.sleep(0.3)
    assert not waiting.done()
    await create(client, headers, "late")
    got = await asyncio.wait_for(waiting, 5)
    assert len(got) == 1 and time.monotonic() - started < 5
    # With nothing to hand out and no wait, the answer is empty at once.
    assert await poller.sets(ack=list(got)) == {}


async def test_the_poll_endpoint_wants_the_feeds_token_and_a_well_formed_body(aiohttp_client, storage_url, poll_env):
    app, client, headers, poller = await feed(aiohttp_client, storage_url)
    refused = await poller.poll(token="wrong")
    assert refused.status == 401 and (await refused.json())["err"] == "authentication_failed"
    assert "Bearer" in refused.headers["WWW-Authenticate"]
    bad = await client.post("/set/feed/poll", data="[1]", headers={"Authorization": f"Bearer {TOKEN}"})
    assert bad.status == 400 and (await bad.json())["err"] == "invalid_request"
    malformed = await poller.poll(max_events=-1)
    assert malformed.status == 400
    missing = await client.post("/set/nosuch/poll", data="{}", headers={"Authorization": f"Bearer {TOKEN}"})
    assert missing.status == 404
    spc = await (await client.get("/source/scim/demo/v2/ServiceProviderConfig", headers=headers)).json()
    assert EVENT + "prov:patch:notice" in spc["securityEvents"]["eventUris"]
