"""The NATS sink against the real NATS JetStream server: events are stored in the stream,
read back, deduplicated by event id, and wait when NATS is unreachable."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import uuid

import nats
import pytest
from scimhost_nats import NatsSettings, NatsSink

from scimhost.app import create_app
from scimhost.delivery.envelope import envelope
from scimhost.host import load_host
from scimhost.http.keys import HOST
from scimhost.testing import SinkContract, stored_event
from scimhost.testing_databases import (  # noqa: F401
    database,
    postgres_database_url,
    postgres_schema_url,
    postgres_template,
    postgres_url,
    sqlite_template,
    storage_url,
)

NATS_URL = os.environ.get("SCIMHOST_TEST_NATS", "nats://127.0.0.1:4222")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture
async def stream():
    """A fresh stream name and subject prefix on the test NATS, deleted afterwards."""
    try:
        connection = await nats.connect(NATS_URL, connect_timeout=3, max_reconnect_attempts=0)
    except Exception as exc:
        message = f"NATS at {NATS_URL} is unreachable ({type(exc).__name__}: {exc})"
        if IN_CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    name = f"SCIMHOST_T_{uuid.uuid4().hex[:12]}"
    jetstream = connection.jetstream()
    try:
        yield name, f"{name.lower()}.{{source}}.{{resource_type}}.{{action}}", jetstream
    finally:
        try:
            await jetstream.delete_stream(name)
        except Exception:
            pass
        await connection.close()


async def stored(jetstream, name: str) -> list:
    info = await jetstream.stream_info(name)
    return [
        await jetstream.get_msg(name, seq)
        for seq in range(info.state.first_seq, info.state.last_seq + 1)
        if info.state.messages
    ]


async def test_a_write_is_published_to_the_stream(tmp_path, stream, aiohttp_client):
    name, subject, jetstream = stream
    config = {
        "storage": {"tortoise": {"url": f"sqlite://{tmp_path}/db.sqlite3"}},
        "events": {
            "poll_seconds": 0.05,
            "sinks": [{"name": "bus", "type": "nats", "servers": [NATS_URL], "stream": name, "subject": subject}],
        },
        "sources": [{"slug": "demo", "name": "Demo"}],
    }
    app = create_app(config)
    client = await aiohttp_client(app)
    token = await app[HOST].issue_token("demo")
    response = await client.post(
        "/source/scim/demo/v2/Users",
        data=json.dumps({"userName": "bjensen"}),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"},
    )
    user = await response.json()
    for _ in range(200):
        if (await app[HOST].storage.sink_stats("bus")).done == 1:
            break
        await asyncio.sleep(0.02)
    [message] = await stored(jetstream, name)
    body = json.loads(message.data)
    assert message.subject == f"{name.lower()}.demo.user.create"
    assert body["type"] == "user.created" and body["data"]["resourceId"] == user["id"]
    assert message.headers["Nats-Msg-Id"] == body["data"]["id"]


async def test_a_republished_event_is_stored_once(stream):
    name, subject, jetstream = stream
    sink = NatsSink(NatsSettings(servers=(NATS_URL,), stream=name, subject=subject), sink_name="bus")
    await sink.start()
    try:
        one = envelope(stored_event())
        assert [o.kind for o in await sink.deliver([one])] == ["delivered"]
        assert [o.kind for o in await sink.deliver([one, envelope(stored_event(2))])] == ["delivered", "delivered"]
    finally:
        await sink.close()
    messages = await stored(jetstream, name)
    assert len(messages) == 2 and messages[0].headers["Nats-Msg-Id"] == one["data"]["id"]


async def test_an_unreachable_nats_makes_deliveries_wait(unused_tcp_port):
    sink = NatsSink(NatsSettings(servers=(f"nats://127.0.0.1:{unused_tcp_port}",), timeout_seconds=1), sink_name="bus")
    await sink.start()
    try:
        outcomes = await sink.deliver([envelope(stored_event()), envelope(stored_event(2))])
    finally:
        await sink.close()
    assert [o.kind for o in outcomes] == ["retry", "retry"] and "not reachable" in outcomes[0].detail


def test_the_plugin_is_found_and_its_settings_checked(tmp_path):
    from scimhost.config import ConfigError

    config = {
        "storage": {"tortoise": {"url": f"sqlite://{tmp_path}/db.sqlite3"}},
        "events": {"sinks": [{"name": "bus", "type": "nats", "subject": "x.{nosuch}"}]},
        "sources": [{"slug": "demo", "name": "Demo"}],
    }
    with pytest.raises(ConfigError, match="unknown placeholders nosuch"):
        load_host(config)
    config["events"]["sinks"][0]["subject"] = "x.{source}"
    assert load_host(config).registry.event_sinks["nats"] is NatsSink


class StreamReceiver:
    """A JetStream stream the test creates, read back by message id; an outage deletes it."""

    def __init__(self, name: str, subject: str, jetstream) -> None:
        self.name, self.jetstream = name, jetstream
        self.subjects = [NatsSettings(subject=subject).subjects]

    async def create(self) -> None:
        await self.jetstream.add_stream(name=self.name, subjects=self.subjects, duplicate_window=600)

    async def received_ids(self) -> list[str]:
        return [message.headers["Nats-Msg-Id"] for message in await stored(self.jetstream, self.name)]

    @contextlib.asynccontextmanager
    async def outage(self):
        await self.jetstream.delete_stream(self.name)
        try:
            yield
        finally:
            await self.create()


class TestNatsSinkContract(SinkContract):
    """The sink contract against the real JetStream server."""

    @pytest.fixture
    async def receiver(self, stream):
        receiver = StreamReceiver(*stream)
        await receiver.create()
        return receiver

    @pytest.fixture
    async def sink(self, stream, receiver):
        name, subject, _ = stream
        settings = NatsSettings(
            servers=(NATS_URL,), stream=name, subject=subject, create_stream=False, timeout_seconds=2
        )
        sink = NatsSink(settings, sink_name="contract")
        await sink.start()
        yield sink
        await sink.close()


async def test_deactivation_and_reactivation_have_subjects_a_consumer_subscribes_to(
    tmp_path, stream, aiohttp_client, storage_url
):
    """docs/events.md's consumer: a durable subscription to `<prefix>.*.user.deactivated` gets
    the PATCH that turned `active` off, and nothing else; the PUT turning it on is `reactivated`."""
    name, _, jetstream = stream
    prefix = name.lower()
    config = {
        "storage": {"tortoise": {"url": storage_url}},
        "events": {
            "poll_seconds": 0.05,
            "sinks": [
                {
                    "name": "lifecycle",
                    "type": "nats",
                    "servers": [NATS_URL],
                    "stream": name,
                    "subject": prefix + ".{source}.{resource_type}.{lifecycle}",
                }
            ],
        },
        "sources": [{"slug": "demo", "name": "Demo"}],
    }
    app = create_app(config)
    client = await aiohttp_client(app)
    headers = {
        "Authorization": f"Bearer {await app[HOST].issue_token('demo')}",
        "Content-Type": "application/scim+json",
    }
    base = "/source/scim/demo/v2/Users"
    user = await (
        await client.post(base, data=json.dumps({"userName": "leaver", "active": True}), headers=headers)
    ).json()
    off = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "active", "value": False}],
    }
    assert (await client.patch(f"{base}/{user['id']}", data=json.dumps(off), headers=headers)).status in (200, 204)
    back = {"userName": "leaver", "active": True, "title": "returned"}
    assert (await client.put(f"{base}/{user['id']}", data=json.dumps(back), headers=headers)).status == 200
    for _ in range(200):
        if (await app[HOST].storage.sink_stats("lifecycle")).done == 3:
            break
        await asyncio.sleep(0.02)
    subjects = [message.subject for message in await stored(jetstream, name)]
    assert subjects == [
        f"{prefix}.demo.user.none",
        f"{prefix}.demo.user.deactivated",
        f"{prefix}.demo.user.reactivated",
    ]
    subscription = await jetstream.subscribe(f"{prefix}.*.user.deactivated", durable="end-sessions", stream=name)
    message = await subscription.next_msg(timeout=5)
    event = json.loads(message.data)["data"]
    assert (event["resourceId"], event["action"], event["lifecycle"]) == (user["id"], "patch", "deactivated")
    await message.ack()
    with pytest.raises(nats.errors.TimeoutError):
        await subscription.next_msg(timeout=0.5)
    await subscription.unsubscribe()


async def test_a_backlog_goes_out_in_batches_each_resource_in_order(stream, aiohttp_client, storage_url, monkeypatch):
    """Writes made while the sink is paused are published up to `batch_size` per attempt, the
    acknowledgements awaited together; each resource's events still reach the stream in order."""
    name, subject, jetstream = stream
    sizes: list[int] = []
    publish_batch = NatsSink.deliver

    async def counted(self, envelopes):
        sizes.append(len(envelopes))
        return await publish_batch(self, envelopes)

    monkeypatch.setattr(NatsSink, "deliver", counted)
    config = {
        "storage": {"tortoise": {"url": storage_url}},
        "events": {
            "poll_seconds": 0.05,
            "sinks": [
                {
                    "name": "bus",
                    "type": "nats",
                    "servers": [NATS_URL],
                    "stream": name,
                    "subject": subject,
                    "batch_size": 20,
                }
            ],
        },
        "sources": [{"slug": "demo", "name": "Demo"}],
    }
    app = create_app(config)
    client = await aiohttp_client(app)
    storage = app[HOST].storage
    from datetime import UTC, datetime

    await storage.set_sink_paused("bus", True, reason="backlog", now=datetime.now(UTC))
    headers = {
        "Authorization": f"Bearer {await app[HOST].issue_token('demo')}",
        "Content-Type": "application/scim+json",
    }
    ids = []
    for i in range(60):
        response = await client.post(
            "/source/scim/demo/v2/Users", data=json.dumps({"userName": f"u{i}"}), headers=headers
        )
        ids.append((await response.json())["id"])
    for title in ("a", "b", "c"):
        for user_id in ids[:10]:
            patch = {
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "replace", "path": "title", "value": title}],
            }
            response = await client.patch(
                f"/source/scim/demo/v2/Users/{user_id}", data=json.dumps(patch), headers=headers
            )
            assert response.status in (200, 204)
    await storage.set_sink_paused("bus", False, reason=None, now=datetime.now(UTC))
    for _ in range(500):
        if (await storage.sink_stats("bus")).done == 90:
            break
        await asyncio.sleep(0.02)
    assert (await storage.sink_stats("bus")).done == 90
    assert max(sizes) == 20 and len(sizes) < 90 / 2  # batches, none larger than asked
    versions: dict[str, list[int]] = {}
    for message in await stored(jetstream, name):
        data = json.loads(message.data)["data"]
        versions.setdefault(data["resourceId"], []).append(data["version"])
    assert len(versions) == 60
    assert [versions[i] for i in ids[:10]] == [[1, 2, 3, 4]] * 10  # each patched one in order
