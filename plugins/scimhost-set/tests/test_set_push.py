"""The set-push sink against a receiver written from RFC 8935 that verifies every SET with
PyJWT (not joserfc, which signs them) against the JWKS the host publishes, and checks the
claims RFC 9967 asks for. Through HTTP on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import json

import jwt as pyjwt
import pytest
from aiohttp import web
from joserfc.jwk import ECKey, RSAKey
from scimhost_set import SetPushSettings, SetPushSink

from scimhost.app import create_app
from scimhost.cli import main
from scimhost.delivery.envelope import envelope
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

EVENT = "urn:ietf:params:scim:event:"
AUDIENCE = "https://receiver.example.test"
PUBLIC_URL = "https://scim.example.test"


@pytest.fixture
def signing_keys(monkeypatch):
    ec = ECKey.generate_key("P-256")
    rsa = RSAKey.generate_key(2048)
    monkeypatch.setenv("TEST_SET_EC_KEY", ec.as_pem(private=True).decode())
    monkeypatch.setenv("TEST_SET_RSA_KEY", rsa.as_pem(private=True).decode())
    return ("TEST_SET_EC_KEY", "TEST_SET_RSA_KEY")


class Receiver:
    """An RFC 8935 push endpoint: each SET verified against `jwks`, then 202 or what the test
    scripts (a status and an RFC 8935 error body)."""

    def __init__(self) -> None:
        self.jwks: dict | None = None
        self.sets: list[dict] = []
        self.headers: list[dict] = []
        self.answers: list[tuple[int, dict | None, dict]] = []
        self.down = False
        self.delay = 0.0

    async def handle(self, request: web.Request) -> web.Response:
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.down:
            return web.Response(status=503)
        if request.content_type != "application/secevent+jwt":
            return web.json_response({"err": "invalid_request", "description": "not a SET"}, status=400)
        token = (await request.read()).decode()
        header = pyjwt.get_unverified_header(token)
        keys = pyjwt.PyJWKSet.from_dict(self.jwks or {"keys": []})
        key = next((k for k in keys.keys if k.key_id == header["kid"]), None)
        if key is None:
            return web.json_response({"err": "invalid_key", "description": "unknown kid"}, status=400)
        try:
            claims = pyjwt.decode(token, key.key, algorithms=["ES256", "RS256"], audience=AUDIENCE, issuer=PUBLIC_URL)
        except pyjwt.InvalidTokenError as exc:
            return web.json_response({"err": "invalid_request", "description": str(exc)}, status=400)
        self.sets.append({"header": header, "claims": claims})
        self.headers.append(dict(request.headers))
        if self.answers:
            status, body, headers = self.answers.pop(0)
            return (
                web.json_response(body, status=status, headers=headers)
                if body
                else web.Response(status=status, headers=headers)
            )
        return web.Response(status=202)

    async def received_ids(self) -> list[str]:
        return [s["claims"]["txn"] for s in self.sets]

    @contextlib.asynccontextmanager
    async def outage(self):
        self.down = True
        try:
            yield
        finally:
            self.down = False


@pytest.fixture
async def receiver(aiohttp_server):
    target = Receiver()
    app = web.Application()
    app.router.add_post("/sets", target.handle)
    server = await aiohttp_server(app)
    target.url = str(server.make_url("/sets"))
    return target


def config(storage_url: str, url: str, key_env, **sink) -> dict:
    return {
        "server": {"public_url": PUBLIC_URL},
        "storage": {"tortoise": {"url": storage_url}},
        "events": {
            "poll_seconds": 0.05,
            "sinks": [
                {
                    "name": "feed",
                    "type": "set-push",
                    "url": url,
                    "audience": AUDIENCE,
                    "key_env": list(key_env),
                    "sources": ["demo"],
                    **sink,
                }
            ],
        },
        "sources": [{"slug": "demo", "name": "Demo"}, {"slug": "other", "name": "Other"}],
    }


async def started(aiohttp_client, storage_url, receiver, signing_keys, **sink):
    app = create_app(config(storage_url, receiver.url, signing_keys, **sink))
    client = await aiohttp_client(app)
    receiver.jwks = await (await client.get("/.well-known/scimhost-set/feed/jwks.json")).json()
    headers = {
        "Authorization": f"Bearer {await app[HOST].issue_token('demo')}",
        "Content-Type": "application/scim+json",
    }
    return app, client, headers


async def until(condition, timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("timed out")  # pragma: no cover


async def test_each_change_is_a_verified_set_with_the_claims_rfc_9967_asks(
    aiohttp_client, storage_url, receiver, signing_keys
):
    app, client, headers = await started(aiohttp_client, storage_url, receiver, signing_keys)
    base = "/source/scim/demo/v2/Users"
    user = await (
        await client.post(base, data=json.dumps({"userName": "bjensen", "externalId": "bj"}), headers=headers)
    ).json()
    off = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [
            {"op": "replace", "path": "title", "value": "CEO"},
            {"op": "replace", "path": "active", "value": False},
        ],
    }
    assert (await client.patch(f"{base}/{user['id']}", data=json.dumps(off), headers=headers)).status in (200, 204)
    put = {"userName": "bjensen", "externalId": "bj", "displayName": "Barbara", "active": False}
    assert (await client.put(f"{base}/{user['id']}", data=json.dumps(put), headers=headers)).status == 200
    assert (await client.delete(f"{base}/{user['id']}", headers=headers)).status == 204
    await until(lambda: len(receiver.sets) == 5)
    events = await app[HOST].storage.list_events("demo", resource_id=user["id"])
    kinds = [next(iter(s["claims"]["events"])) for s in receiver.sets]
    assert kinds == [
        EVENT + "prov:create:notice",
        EVENT + "prov:patch:notice",
        EVENT + "prov:deactivate",
        EVENT + "prov:put:notice",
        EVENT + "prov:delete",
    ]
    for got in receiver.sets:
        claims = got["claims"]
        assert got["header"]["typ"] == "secevent+jwt" and got["header"]["alg"] == "ES256"
        assert "sub" not in claims
        assert claims["sub_id"] == {
            "format": "scim",
            "uri": f"/Users/{user['id']}",
            "id": user["id"],
            "externalId": "bj",
        }
        assert claims["iss"] == PUBLIC_URL and claims["aud"] == AUDIENCE and isinstance(claims["iat"], int)
    # txn is the change's event id: shared by the SETs of one change, each with its own jti.
    assert [s["claims"]["txn"] for s in receiver.sets] == [
        events[0].id,
        events[1].id,
        events[1].id,
        events[2].id,
        events[3].id,
    ]
    assert len({s["claims"]["jti"] for s in receiver.sets}) == 5
    create, patch, _, put_set, delete = (next(iter(s["claims"]["events"].values())) for s in receiver.sets)
    assert create["version"] == 'W/"1"' and "userName" in create["attributes"] and "id" in create["attributes"]
    assert patch == {"version": 'W/"2"', "attributes": ["title", "active"]}
    assert put_set["version"] == 'W/"3"' and "displayName" in put_set["attributes"]
    assert delete == {}
    assert all(h["Content-Type"] == "application/secevent+jwt" for h in receiver.headers)


async def test_full_mode_carries_the_resource_the_put_body_and_a_patch_op(
    aiohttp_client, storage_url, receiver, signing_keys
):
    app, client, headers = await started(aiohttp_client, storage_url, receiver, signing_keys, mode="full")
    base = "/source/scim/demo/v2/Users"
    user = await (
        await client.post(
            base, data=json.dumps({"userName": "full", "title": "a", "password": "s3cret"}), headers=headers
        )
    ).json()
    patch = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [
            {"op": "replace", "path": "title", "value": "b"},
            {"op": "replace", "path": "password", "value": "n3w"},
        ],
    }
    assert (await client.patch(f"{base}/{user['id']}", data=json.dumps(patch), headers=headers)).status in (200, 204)
    assert (
        await client.put(f"{base}/{user['id']}", data=json.dumps({"userName": "full"}), headers=headers)
    ).status == 200
    await until(lambda: len(receiver.sets) == 3)
    create, patched, put = (s["claims"]["events"] for s in receiver.sets)
    data = create[EVENT + "prov:create:full"]["data"]
    assert data["id"] == user["id"] and data["userName"] == "full" and data["title"] == "a"
    assert "password" not in json.dumps(receiver.sets)  # writeOnly values never leave
    assert patched[EVENT + "prov:patch:full"]["data"] == {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "title", "value": "b"}],
    }
    assert (
        put[EVENT + "prov:put:full"]["data"]["userName"] == "full"
        and "title" not in put[EVENT + "prov:put:full"]["data"]
    )


async def test_a_group_change_is_a_patch_of_its_members(aiohttp_client, storage_url, receiver, signing_keys):
    app, client, headers = await started(aiohttp_client, storage_url, receiver, signing_keys, mode="full")
    user = await (
        await client.post("/source/scim/demo/v2/Users", data=json.dumps({"userName": "m"}), headers=headers)
    ).json()
    group = await (
        await client.post("/source/scim/demo/v2/Groups", data=json.dumps({"displayName": "G"}), headers=headers)
    ).json()
    add = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "add", "path": "members", "value": [{"value": user["id"]}]}],
    }
    assert (
        await client.patch(f"/source/scim/demo/v2/Groups/{group['id']}", data=json.dumps(add), headers=headers)
    ).status in (200, 204)
    await until(lambda: len(receiver.sets) == 3)
    claims = receiver.sets[2]["claims"]
    assert claims["sub_id"]["uri"] == f"/Groups/{group['id']}"
    assert claims["events"][EVENT + "prov:patch:full"]["data"]["Operations"] == [
        {"op": "add", "path": "members", "value": [{"value": user["id"]}]}
    ]


async def test_service_provider_config_lists_security_events_for_the_sources_the_sink_takes(
    aiohttp_client, storage_url, receiver, signing_keys
):
    app, client, headers = await started(aiohttp_client, storage_url, receiver, signing_keys)
    spc = await (await client.get("/source/scim/demo/v2/ServiceProviderConfig", headers=headers)).json()
    assert spc["securityEvents"]["asyncRequest"] == "none"
    assert (
        EVENT + "prov:create:notice" in spc["securityEvents"]["eventUris"]
        and EVENT + "prov:deactivate" in spc["securityEvents"]["eventUris"]
    )
    other = {"Authorization": f"Bearer {await app[HOST].issue_token('other')}"}
    assert (
        "securityEvents"
        not in await (await client.get("/source/scim/other/v2/ServiceProviderConfig", headers=other)).json()
    )
    # The other source's writes never reach the sink.
    await client.post(
        "/source/scim/other/v2/Users",
        data=json.dumps({"userName": "elsewhere"}),
        headers={**other, "Content-Type": "application/scim+json"},
    )
    await asyncio.sleep(0.3)
    assert receiver.sets == []


async def sink_for(receiver, key_env, **options) -> SetPushSink:
    sink = SetPushSink(
        SetPushSettings(url=receiver.url, audience=AUDIENCE, key_env=tuple(key_env), **options), sink_name="feed"
    )
    sink.public_url = PUBLIC_URL
    await sink.start()
    return sink


async def test_each_answer_of_the_receiver_is_its_outcome(receiver, signing_keys):
    from scimhost_set.keys import jwks, load_keys

    receiver.jwks = jwks(load_keys(signing_keys))
    sink = await sink_for(receiver, signing_keys, timeout_seconds=0.5)
    try:
        scripted = [
            ((400, {"err": "invalid_request", "description": "?"}, {}), "permanent"),
            ((400, {"err": "invalid_key", "description": "?"}, {}), "permanent"),
            ((400, {"err": "invalid_issuer", "description": "?"}, {}), "permanent"),
            ((400, {"err": "invalid_audience", "description": "?"}, {}), "permanent"),
            ((400, {"err": "authentication_failed", "description": "?"}, {}), "pause"),
            ((400, {"err": "access_denied", "description": "?"}, {}), "pause"),
            ((401, None, {}), "pause"),
            ((403, None, {}), "pause"),
            ((503, None, {}), "retry"),
            ((429, None, {"Retry-After": "30"}), "retry"),
            ((202, None, {}), "delivered"),
        ]
        for answer, kind in scripted:
            receiver.answers.append(answer)
            [outcome] = await sink.deliver([envelope(stored_event())])
            assert outcome.kind == kind, (answer, outcome)
            if answer[0] == 429:
                assert outcome.after == 30.0
        receiver.delay = 1.0
        [outcome] = await sink.deliver([envelope(stored_event())])
        assert outcome.kind == "retry" and "0.5s" in outcome.detail
    finally:
        await sink.close()


async def test_rotated_keys_are_all_published_and_old_sets_still_verify(
    receiver, signing_keys, monkeypatch, capsys, tmp_path
):
    from scimhost_set.keys import jwks, load_keys

    ec, rsa = signing_keys
    receiver.jwks = jwks(load_keys((ec,)))
    old = await sink_for(receiver, (ec,))
    [outcome] = await old.deliver([envelope(stored_event())])
    await old.close()
    assert outcome.kind == "delivered"
    first_token_kid = receiver.sets[0]["header"]["kid"]
    # Rotation: the new key first (it signs), the old one still published.
    receiver.jwks = jwks(load_keys((rsa, ec)))
    new = await sink_for(receiver, (rsa, ec))
    [outcome] = await new.deliver([envelope(stored_event())])
    await new.close()
    assert outcome.kind == "delivered" and receiver.sets[1]["header"]["alg"] == "RS256"
    assert {k["kid"] for k in receiver.jwks["keys"]} >= {first_token_kid, receiver.sets[1]["header"]["kid"]}
    # The command prints the same keys.
    path = tmp_path / "scimhost.toml"
    path.write_text(
        f'[[events.sinks]]\nname = "feed"\ntype = "set-push"\nurl = "{receiver.url}"\naudience = "{AUDIENCE}"\n'
        f'key_env = ["{rsa}", "{ec}"]\n[[sources]]\nslug = "demo"\nname = "Demo"\n'
    )
    assert main(["-c", str(path), "set", "keys", "feed"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert [k["kid"] for k in printed["keys"]] == [k["kid"] for k in receiver.jwks["keys"]]
    assert all("d" not in k for k in printed["keys"])  # public keys only


def test_a_missing_or_wrong_key_is_said_before_serving(tmp_path, monkeypatch):
    from scimhost.config import ConfigError
    from scimhost.host import load_host

    monkeypatch.setenv("TEST_SET_NOT_A_KEY", "hello")
    for env, said in (("TEST_SET_UNSET_KEY", "is not set"), ("TEST_SET_NOT_A_KEY", "holds no PEM")):
        settings = config(f"sqlite://{tmp_path}/db.sqlite3", "https://receiver.example.test/sets", (env,))
        with pytest.raises(ConfigError, match=said):
            load_host(settings)


class TestSetPushSinkContract(SinkContract):
    """The sink contract against the verifying receiver: ids are the SETs' txn."""

    @pytest.fixture
    async def sink(self, receiver, signing_keys):
        from scimhost_set.keys import jwks, load_keys

        receiver.jwks = jwks(load_keys(signing_keys))
        sink = await sink_for(receiver, signing_keys)
        yield sink
        await sink.close()


def test_a_big_group_change_goes_as_a_notice_even_in_full_mode():
    from scimhost_set.tokens import MAX_MEMBER_VALUES, payloads

    def data(members):
        return {
            "action": "patch",
            "etag": 'W/"2"',
            "resourceId": "g",
            "changed": {},
            "members": members,
            "resource": {},
        }

    small = payloads(data({"added": ["a"], "removed": []}), "full")
    assert [uri for uri, _ in small] == [EVENT + "prov:patch:full"]
    many = [str(i) for i in range(MAX_MEMBER_VALUES + 1)]
    for members in ({"added": many}, {"replaced": True, "count": 5000}, {"replaced": True, "members": many}):
        [(uri, payload)] = payloads(data(members), "full")
        assert uri == EVENT + "prov:patch:notice" and payload["attributes"] == ["members"]


def test_the_plugin_is_found_through_its_entry_point_and_listed(capsys):
    assert main(["plugins"]) == 0
    [line] = [line for line in capsys.readouterr().out.splitlines() if line.startswith("set ")]
    assert "scimhost-set" in line and "register_event_sinks" in line and "register_routes" in line
