"""The webhook sink against a real receiver that verifies signatures with the Standard Webhooks
reference library (`standardwebhooks`), installed and loaded through its entry point."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import secrets
from datetime import UTC, datetime

import pytest
from aiohttp import web
from scimhost_webhook import WebhookSettings, WebhookSink
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from scimhost.app import create_app
from scimhost.config import ConfigError
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


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


class Receiver:
    """An HTTP endpoint that verifies each request and answers what the test scripts."""

    def __init__(self, secret: str) -> None:
        self.verifier = Webhook(secret)
        self.received: list[dict] = []
        self.headers: list[dict] = []
        self.answers: list[web.Response] = []
        self.down = False

    async def received_ids(self) -> list[str]:
        return [payload["data"]["id"] for payload in self.received]

    @contextlib.asynccontextmanager
    async def outage(self):
        self.down = True
        try:
            yield
        finally:
            self.down = False

    async def handle(self, request: web.Request) -> web.Response:
        if self.down:
            return web.Response(status=503, text="down for maintenance")
        body = await request.read()
        headers = dict(request.headers)
        try:
            payload = self.verifier.verify(body, headers)
        except WebhookVerificationError:
            return web.Response(status=401, text="bad signature")
        self.received.append(payload)
        self.headers.append(headers)
        return self.answers.pop(0) if self.answers else web.Response(status=204)


async def moved(request: web.Request) -> web.Response:
    raise web.HTTPFound("/events")


async def slow(request: web.Request) -> web.Response:
    await asyncio.sleep(2)
    return web.Response(status=204)


@pytest.fixture
async def receiver(aiohttp_server, monkeypatch):
    secret = new_secret()
    monkeypatch.setenv("TEST_WEBHOOK_SECRET", secret)
    target = Receiver(secret)
    app = web.Application()
    app.router.add_post("/events", target.handle)
    app.router.add_post("/moved", moved)
    app.router.add_post("/slow", slow)
    server = await aiohttp_server(app)
    target.url = str(server.make_url("/events"))
    return target


def config(tmp_path, url: str, **sink) -> dict:
    return {
        "storage": {"tortoise": {"url": f"sqlite://{tmp_path}/db.sqlite3"}},
        "events": {
            "poll_seconds": 0.05,
            "sinks": [{"name": "hr", "type": "webhook", "url": url, "secret_env": "TEST_WEBHOOK_SECRET", **sink}],
        },
        "sources": [{"slug": "demo", "name": "Demo"}],
    }


def test_the_plugin_is_found_through_its_entry_point(tmp_path, receiver):
    host = load_host(config(tmp_path, receiver.url))
    assert host.registry.event_sinks["webhook"] is WebhookSink
    assert host.registry.providers[("event sink", "webhook")] == "webhook"


async def test_a_write_reaches_the_receiver_signed_and_in_order(tmp_path, receiver, aiohttp_client):
    app = create_app(config(tmp_path, receiver.url))
    client = await aiohttp_client(app)
    token = await app[HOST].issue_token("demo")
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}
    response = await client.post(
        "/source/scim/demo/v2/Users", data=json.dumps({"userName": "bjensen"}), headers=headers
    )
    user = await response.json()
    for title in ("a", "b", "c"):
        patch = {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "title", "value": title}],
        }
        await client.patch(f"/source/scim/demo/v2/Users/{user['id']}", data=json.dumps(patch), headers=headers)
    for _ in range(200):
        if len(receiver.received) == 4:
            break
        await asyncio.sleep(0.02)
    assert [p["type"] for p in receiver.received] == ["user.created"] + ["user.patched"] * 3
    assert [p["data"]["version"] for p in receiver.received] == [1, 2, 3, 4]
    assert receiver.received[0]["data"]["resource"]["userName"] == "bjensen"
    assert [h["webhook-id"] for h in receiver.headers] == [p["data"]["id"] for p in receiver.received]


async def sink_for(url: str, **options) -> WebhookSink:
    sink = WebhookSink(
        WebhookSettings(url=url, secret_env=options.pop("secret_env", "TEST_WEBHOOK_SECRET"), **options), sink_name="hr"
    )
    await sink.start()
    return sink


@pytest.mark.parametrize(
    "answer, kind, after",
    [
        (web.Response(status=200), "delivered", None),
        (web.Response(status=503, headers={"Retry-After": "30"}), "retry", 30.0),
        (web.Response(status=429), "retry", None),
        (web.Response(status=408), "retry", None),
        (web.Response(status=410), "pause", None),
        (web.Response(status=400), "permanent", None),
        (web.Response(status=404), "permanent", None),
    ],
)
async def test_the_receivers_answer_decides_the_outcome(receiver, answer, kind, after):
    receiver.answers.append(answer)
    sink = await sink_for(receiver.url)
    try:
        [outcome] = await sink.deliver([envelope(stored_event())])
    finally:
        await sink.close()
    assert (outcome.kind, outcome.after) == (kind, after)


async def test_redirects_are_not_followed(receiver):
    sink = await sink_for(receiver.url.replace("/events", "/moved"))
    try:
        [outcome] = await sink.deliver([envelope(stored_event())])
    finally:
        await sink.close()
    assert outcome.kind == "permanent" and outcome.status == 302 and receiver.received == []


@pytest.mark.parametrize("where", ["slow", "unreachable"])
async def test_timeouts_and_unreachable_receivers_are_retried(receiver, unused_tcp_port, where):
    url = receiver.url.replace("/events", "/slow") if where == "slow" else f"http://127.0.0.1:{unused_tcp_port}/events"
    sink = await sink_for(url, timeout_seconds=0.5)
    try:
        [outcome] = await sink.deliver([envelope(stored_event())])
    finally:
        await sink.close()
    assert outcome.kind == "retry" and outcome.detail


async def test_every_secret_signs_during_a_rotation(receiver, monkeypatch):
    monkeypatch.setenv("TEST_WEBHOOK_NEXT", new_secret())
    sink = await sink_for(receiver.url, secret_env=("TEST_WEBHOOK_NEXT", "TEST_WEBHOOK_SECRET"))
    try:
        [outcome] = await sink.deliver([envelope(stored_event())])
    finally:
        await sink.close()
    assert outcome.kind == "delivered"  # the receiver knows only the old secret
    assert len(receiver.headers[0]["webhook-signature"].split(" ")) == 2


@pytest.mark.parametrize(
    "sink, message",
    [
        ({"secret_env": "TEST_WEBHOOK_UNSET"}, "TEST_WEBHOOK_UNSET is not set"),
        ({"secret_env": "TEST_WEBHOOK_PLAIN"}, "must hold a secret starting with whsec_"),
        ({"url": "ftp://x"}, "url: must be an absolute http"),
        ({"retries": 3}, "retries: unknown key"),
    ],
)
def test_settings_mistakes_are_config_errors(tmp_path, receiver, monkeypatch, sink, message):
    monkeypatch.setenv("TEST_WEBHOOK_PLAIN", "hunter2")
    monkeypatch.delenv("TEST_WEBHOOK_UNSET", raising=False)
    with pytest.raises(ConfigError, match=message):
        load_host(config(tmp_path, sink.pop("url", receiver.url), **sink))


async def test_webhooks_test_sends_a_signed_ping(tmp_path, receiver):
    from scimhost.cli import main

    path = tmp_path / "scimhost.toml"
    path.write_text(
        f'[storage.tortoise]\nurl = "sqlite://{tmp_path}/db.sqlite3"\n[[events.sinks]]\nname = "hr"\ntype = "webhook"\n'
        f'url = "{receiver.url}"\nsecret_env = "TEST_WEBHOOK_SECRET"\n[[sources]]\nslug = "demo"\nname = "Demo"\n'
    )
    assert await asyncio.to_thread(main, ["-c", str(path), "webhooks", "test", "hr"]) == 0
    [ping] = receiver.received
    assert ping["type"] == "scimhost.ping" and ping["data"]["id"].startswith("evt_")


def test_only_the_commands_that_deliver_need_the_sinks_secret(tmp_path, monkeypatch, capsys):
    from scimhost.cli import main

    monkeypatch.delenv("TEST_WEBHOOK_UNSET", raising=False)
    path = tmp_path / "scimhost.toml"
    path.write_text(
        f'[storage.tortoise]\nurl = "sqlite://{tmp_path}/db.sqlite3"\n[[events.sinks]]\nname = "hr"\ntype = "webhook"\n'
        'url = "http://127.0.0.1:9/events"\nsecret_env = "TEST_WEBHOOK_UNSET"\n[[sources]]\nslug = "demo"\nname = "Demo"\n'
    )
    assert main(["-c", str(path), "migrate"]) == 0
    for command in (["sources", "list"], ["sources", "token", "demo"], ["deliveries", "status"], ["events", "list"]):
        assert main(["-c", str(path), *command]) == 0, command
    capsys.readouterr()
    for command in (["webhooks", "test", "hr"], ["events", "dispatch"], ["check"]):
        assert main(["-c", str(path), *command]) == 1, command
        assert "events.sinks[0].secret_env: the environment variable TEST_WEBHOOK_UNSET is not set" in (
            capsys.readouterr().err
        )


async def test_a_delivery_waiting_an_hour_for_its_retry_is_shown_and_sent_at_once(
    tmp_path, receiver, aiohttp_client, capsys
):
    from scimhost.cli import main

    path = tmp_path / "scimhost.toml"
    path.write_text(
        f'[storage.tortoise]\nurl = "sqlite://{tmp_path}/db.sqlite3"\n[events]\npoll_seconds = 0.05\n'
        f'[[events.sinks]]\nname = "hr"\ntype = "webhook"\nurl = "{receiver.url}"\nsecret_env = "TEST_WEBHOOK_SECRET"\n'
        '[[sources]]\nslug = "demo"\nname = "Demo"\n'
    )
    receiver.answers.append(web.Response(status=503, headers={"Retry-After": "3600"}))
    app = create_app(path)
    client = await aiohttp_client(app)
    token = await app[HOST].issue_token("demo")
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}
    await client.post("/source/scim/demo/v2/Users", data=json.dumps({"userName": "late"}), headers=headers)

    async def status() -> dict:
        capsys.readouterr()
        assert await asyncio.to_thread(main, ["-c", str(path), "deliveries", "status", "--json"]) == 0
        [sink] = json.loads(capsys.readouterr().out)["sinks"]
        return sink

    for _ in range(200):  # the first attempt is answered 503, retry in an hour
        sink = await status()
        if sink["retrying"]:
            break
        await asyncio.sleep(0.02)
    assert (sink["state"], sink["retrying"], sink["most_attempts"]) == ("retrying", 1, 1)
    waiting = datetime.fromisoformat(sink["next_attempt"]) - datetime.now(UTC)
    assert 3500 < waiting.total_seconds() <= 3600
    assert await asyncio.to_thread(main, ["-c", str(path), "deliveries", "status"]) == 0
    text = capsys.readouterr().out
    assert "RETRYING" in text and "1 waiting to retry" in text and "deliveries retry hr --now" in text

    # The receiver is fixed; the operator ends the backoff rather than waiting an hour.
    assert await asyncio.to_thread(main, ["-c", str(path), "deliveries", "retry", "hr", "--now"]) == 0
    assert capsys.readouterr().out.strip() == "1 delivery waiting for a retry of hr will be sent now"
    for _ in range(200):
        if len(receiver.received) == 2:
            break
        await asyncio.sleep(0.02)
    assert [p["data"]["resource"]["userName"] for p in receiver.received] == ["late", "late"]
    assert (await status())["state"] == "healthy"


async def test_a_receiver_slow_for_one_resource_holds_back_only_that_resource(
    tmp_path, aiohttp_server, aiohttp_client, monkeypatch
):
    """One sink's receiver answers one user only after the sink's timeout; the other users of
    that sink and every user of a second sink still arrive within a second of their commit."""
    secret = new_secret()
    monkeypatch.setenv("TEST_WEBHOOK_SECRET", secret)
    verifier = Webhook(secret)
    loop = asyncio.get_running_loop()
    arrived: dict[tuple[str, str], float] = {}  # (sink path, userName) -> first arrival

    async def handle(request: web.Request) -> web.Response:
        payload = verifier.verify(await request.read(), dict(request.headers))
        name = payload["data"]["resource"]["userName"]
        arrived.setdefault((request.match_info["sink"], name), loop.time())
        if request.match_info["sink"] == "hr" and name == "slow":
            await asyncio.sleep(4)  # past the sink's 2 s timeout
        return web.Response(status=204)

    receiver = web.Application()
    receiver.router.add_post("/{sink}", handle)
    server = await aiohttp_server(receiver)
    sinks = [
        {
            "name": name,
            "type": "webhook",
            "url": str(server.make_url(f"/{name}")),
            "secret_env": "TEST_WEBHOOK_SECRET",
            "timeout_seconds": 2,
            "concurrency": 4,
        }
        for name in ("hr", "audit")
    ]
    settings = config(tmp_path, "http://unused")
    settings["events"]["sinks"] = sinks
    app = create_app(settings)
    client = await aiohttp_client(app)
    token = await app[HOST].issue_token("demo")
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}

    async def create(name: str) -> float:
        response = await client.post("/source/scim/demo/v2/Users", data=json.dumps({"userName": name}), headers=headers)
        assert response.status == 201
        return loop.time()  # committed: the response is back

    await create("slow")
    for _ in range(100):  # the slow attempt is running
        if ("hr", "slow") in arrived:
            break
        await asyncio.sleep(0.01)
    committed = {}
    for i in range(6):
        committed[f"fast{i}"] = await create(f"fast{i}")
        await asyncio.sleep(0.1)
    for _ in range(300):
        if all((sink, name) in arrived for sink in ("hr", "audit") for name in committed):
            break
        await asyncio.sleep(0.01)
    latencies = {(sink, name): arrived[(sink, name)] - at for name, at in committed.items() for sink in ("hr", "audit")}
    assert max(latencies.values()) < 1.0, latencies
    assert ("audit", "slow") in arrived
    for _ in range(300):  # the slow one's attempt timed out and waits for its retry
        stats = await app[HOST].storage.sink_stats("hr")
        if stats.retrying:
            break
        await asyncio.sleep(0.02)
    assert stats.retrying == 1 and "2s" in stats.last_error


class TestWebhookSinkContract(SinkContract):
    """The sink contract against the verifying receiver."""

    @pytest.fixture
    async def sink(self, receiver):
        sink = await sink_for(receiver.url)
        yield sink
        await sink.close()


async def test_deactivation_and_reactivation_are_said_in_the_payload(tmp_path, receiver, aiohttp_client, storage_url):
    settings = config(tmp_path, receiver.url)
    settings["storage"] = {"tortoise": {"url": storage_url}}
    app = create_app(settings)
    client = await aiohttp_client(app)
    headers = {
        "Authorization": f"Bearer {await app[HOST].issue_token('demo')}",
        "Content-Type": "application/scim+json",
    }
    base = "/source/scim/demo/v2/Users"
    user = await (await client.post(base, data=json.dumps({"userName": "leaver"}), headers=headers)).json()
    off = {"userName": "leaver", "active": False}
    assert (await client.put(f"{base}/{user['id']}", data=json.dumps(off), headers=headers)).status == 200
    again_off = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "title", "value": "away"}],
    }
    assert (await client.patch(f"{base}/{user['id']}", data=json.dumps(again_off), headers=headers)).status in (
        200,
        204,
    )
    on = {**again_off, "Operations": [{"op": "replace", "path": "active", "value": True}]}
    assert (await client.patch(f"{base}/{user['id']}", data=json.dumps(on), headers=headers)).status in (200, 204)
    for _ in range(200):
        if len(receiver.received) == 4:
            break
        await asyncio.sleep(0.02)
    assert [(p["data"]["action"], p["data"]["lifecycle"]) for p in receiver.received] == [
        ("create", None),
        ("replace", "deactivated"),
        ("patch", None),
        ("patch", "reactivated"),
    ]
