"""OAuth 2.0 client credentials through HTTP, on SQLite and PostgreSQL, with the plugin loaded
through its entry point and its secrets made by its own commands."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from scimhost_oauth.credentials import SECRET_KIND, digest
from scimhost_oauth.scheme import OAuthScheme

from scimhost.admin import build_admin_app
from scimhost.app import create_app
from scimhost.cli import main
from scimhost.http.keys import HOST
from scimhost.storage.backend import Credential
from scimhost.testing_databases import (  # noqa: F401
    database,
    postgres_database_url,
    postgres_schema_url,
    postgres_template,
    postgres_url,
    sqlite_template,
    storage_url,
)

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
ADMIN_TOKEN = "an-admin-token-of-more-than-32-characters"


def write_config(tmp_path, storage_url: str, oauth: str = "") -> list[str]:  # noqa: F811
    """Sources demo (OAuth or bearer), hr (OAuth) and plain (bearer only); the -c arguments."""
    path = tmp_path / "scimhost.toml"
    path.write_text(
        f'[server]\npublic_url = "https://scim.example.com"\n[oauth]\ncache_seconds = 0\n'
        '[admin]\ntoken_env = "OAUTH_TEST_ADMIN"\n'
        f'[storage.tortoise]\nurl = "{storage_url}"\n'
        f'[[sources]]\nslug = "demo"\nname = "Demo"\nauth = ["bearer", "oauth"]\n[sources.oauth]\n{oauth}\n'
        '[[sources]]\nslug = "hr"\nname = "HR"\nauth = ["oauth"]\n'
        '[[sources]]\nslug = "plain"\nname = "Plain"\n'
    )
    return ["-c", str(path)]


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


async def secret_for(capsys, config: list[str], slug: str) -> dict:
    code, out, err = await asyncio.to_thread(cli, capsys, *config, "oauth", "secrets", "create", slug, "--json")
    assert code == 0, err
    return json.loads(out)


def basic(client_id: str, secret: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


async def token_request(client, slug: str, data: dict, headers: dict | None = None):
    response = await client.post(f"/source/scim/{slug}/v2/oauth/token", data=data, headers={**FORM, **(headers or {})})
    assert response.headers["Cache-Control"] == "no-store"  # every answer, errors too
    return response.status, await response.json(), response.headers


@pytest.fixture
async def served(tmp_path, storage_url, aiohttp_client):  # noqa: F811
    config = write_config(tmp_path, storage_url)
    assert await asyncio.to_thread(main, [*config, "migrate"]) == 0
    client = await aiohttp_client(create_app(config[1]))
    return config, client


async def test_a_secret_gets_a_token_by_basic_and_by_body_that_opens_its_source_only(served, capsys, aiohttp_client):
    config, client = served
    made = await secret_for(capsys, config, "demo")
    assert made["client_id"] == "scimhost-source-demo" and made["client_secret"].startswith("scs_")
    assert made["token_url"] == "https://scim.example.com/source/scim/demo/v2/oauth/token"
    host = client.app[HOST]
    [kept] = await host.storage.list_credentials("demo", SECRET_KIND)
    assert made["client_secret"] not in kept.secret_hash and kept.secret_hash == digest(
        made["client_secret"].split(".")[1]
    )

    grant = {"grant_type": "client_credentials"}
    by_basic = await token_request(client, "demo", grant, basic(made["client_id"], made["client_secret"]))
    form = {**grant, "client_id": made["client_id"], "client_secret": made["client_secret"], "scope": "scim"}
    by_body = await token_request(client, "demo", form)
    for status, body, _ in (by_basic, by_body):
        assert status == 200 and body["token_type"] == "Bearer" and body["expires_in"] == 3600
        assert body["scope"] == "scim" and body["access_token"].startswith("sat_")
    token = {"Authorization": f"Bearer {by_basic[1]['access_token']}"}
    refused = await client.get("/source/scim/demo/v2/Users")
    assert refused.status == 401 and refused.headers["WWW-Authenticate"] == 'Bearer realm="scimhost"'  # said once
    assert (await client.get("/source/scim/demo/v2/Users", headers=token)).status == 200
    assert (await client.get("/source/scim/hr/v2/Users", headers=token)).status == 401  # another source
    assert (await client.get("/source/scim/plain/v2/Users", headers=token)).status == 401
    admin = await aiohttp_client(build_admin_app(host, environ={"OAUTH_TEST_ADMIN": ADMIN_TOKEN}))
    assert (await admin.get("/api/overview", headers=token)).status == 401  # never the admin listener
    assert (await admin.get("/api/overview", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})).status == 200
    # The secret's last use is recorded; the token is stored only as a hash.
    [used] = await host.storage.list_credentials("demo", SECRET_KIND)
    assert used.last_used is not None
    code, out, _ = await asyncio.to_thread(cli, capsys, *config, "oauth", "secrets", "list", "demo", "--json")
    [listed] = json.loads(out)
    assert listed["id"] == made["secret_id"] and listed["state"] == "active" and "secret" not in json.dumps(listed)


async def test_wrong_revoked_expired_and_foreign_secrets_are_all_invalid_client(served, capsys):
    config, client = served
    demo, hr = await secret_for(capsys, config, "demo"), await secret_for(capsys, config, "hr")
    grant = {"grant_type": "client_credentials"}
    storage = client.app[HOST].storage
    expired_at = datetime.now(UTC) - timedelta(seconds=1)
    await storage.add_credential(
        "demo", Credential(SECRET_KIND, "old", digest("s3cret"), expired_at - timedelta(days=400), expires=expired_at)
    )
    attempts = [
        basic(demo["client_id"], demo["client_secret"][:-2] + "xx"),  # wrong
        basic(demo["client_id"], "scs_old.s3cret"),  # expired
        basic(demo["client_id"], hr["client_secret"]),  # another source's secret
        basic(hr["client_id"], hr["client_secret"]),  # another source's client at this endpoint
        basic("nobody", demo["client_secret"]),  # unknown client
        {"Authorization": "Basic !!!"},  # not even base64
        {},  # no authentication at all
    ]
    for headers in attempts:
        status, body, answer = await token_request(client, "demo", grant, headers)
        assert (status, body["error"]) == (401, "invalid_client"), headers
        assert body["error_description"] in ("client authentication failed", "client authentication is missing")
        assert answer["WWW-Authenticate"] == 'Basic realm="scimhost"'
    code, _, _ = await asyncio.to_thread(cli, capsys, *config, "oauth", "secrets", "revoke", "demo", demo["secret_id"])
    assert code == 0
    status, body, _ = await token_request(client, "demo", grant, basic(demo["client_id"], demo["client_secret"]))
    assert (status, body["error"]) == (401, "invalid_client")  # revoked
    code, _, err = await asyncio.to_thread(cli, capsys, *config, "oauth", "secrets", "revoke", "demo", "nosuch")
    assert code == 1 and "no client secret 'nosuch'" in err


async def test_malformed_token_requests_get_the_rfc_6749_error_codes(served, capsys):
    config, client = served
    made = await secret_for(capsys, config, "demo")
    auth = basic(made["client_id"], made["client_secret"])
    cases = [
        ({}, "invalid_request"),
        ({"grant_type": "password", "username": "x"}, "unsupported_grant_type"),
        ({"grant_type": "client_credentials", "scope": "scim admin"}, "invalid_scope"),
        ({"grant_type": "client_credentials", "client_secret": made["client_secret"]}, "invalid_request"),  # two ways
        ({"grant_type": "client_credentials", "client_id": "someone-else"}, "invalid_request"),
    ]
    for data, error in cases:
        status, body, _ = await token_request(client, "demo", data, auth)
        assert (status, body["error"]) == (400, error), data
    duplicated = "grant_type=client_credentials&grant_type=client_credentials"
    response = await client.post("/source/scim/demo/v2/oauth/token", data=duplicated, headers={**FORM, **auth})
    assert (response.status, (await response.json())["error"]) == (400, "invalid_request")
    as_json = await client.post("/source/scim/demo/v2/oauth/token", json={"grant_type": "client_credentials"})
    assert as_json.status == 400 and (await as_json.json())["error"] == "invalid_request"
    # A source that does not use OAuth has no token endpoint; an unknown one is not found.
    assert (await client.post("/source/scim/plain/v2/oauth/token", data={}, headers=FORM)).status == 404
    assert (await client.post("/source/scim/nosuch/v2/oauth/token", data={}, headers=FORM)).status == 404
    code, _, err = await asyncio.to_thread(cli, capsys, *config, "oauth", "secrets", "create", "plain")
    assert code == 1 and "does not list oauth" in err


async def test_a_source_may_refuse_secrets_in_the_body(tmp_path, storage_url, capsys, aiohttp_client):  # noqa: F811
    config = write_config(tmp_path, storage_url, "secret_in_body = false\naccess_token_seconds = 7200")
    assert await asyncio.to_thread(main, [*config, "migrate"]) == 0
    capsys.readouterr()
    client = await aiohttp_client(create_app(config[1]))
    made = await secret_for(capsys, config, "demo")
    form = {"grant_type": "client_credentials", "client_id": made["client_id"], "client_secret": made["client_secret"]}
    status, body, _ = await token_request(client, "demo", form)
    assert (status, body["error"]) == (401, "invalid_client")
    status, body, _ = await token_request(
        client, "demo", {"grant_type": "client_credentials"}, basic(made["client_id"], made["client_secret"])
    )
    assert status == 200 and body["expires_in"] == 7200
    assert client.app[HOST].config_warnings() == []  # 7200 s is within what Entra accepts
    write_config(tmp_path, storage_url, "access_token_seconds = 600")
    code, _, err = await asyncio.to_thread(cli, capsys, *config, "check")
    assert code == 0 and "access_token_seconds = 600 is outside the 3600 to 21600" in err


async def test_an_access_token_ends_when_it_expires_and_with_sources_revoke(served, capsys):
    config, client = served
    made = await secret_for(capsys, config, "demo")
    grant = {"grant_type": "client_credentials"}
    _, body, _ = await token_request(client, "demo", grant, basic(made["client_id"], made["client_secret"]))
    token = {"Authorization": f"Bearer {body['access_token']}"}
    scheme = client.app[HOST].auth_schemes["oauth"]
    assert isinstance(scheme, OAuthScheme)
    issued_at = datetime.now(UTC)
    scheme.now = lambda: issued_at + timedelta(seconds=3599)
    assert (await client.get("/source/scim/demo/v2/Users", headers=token)).status == 200
    scheme.now = lambda: issued_at + timedelta(seconds=3601)
    assert (await client.get("/source/scim/demo/v2/Users", headers=token)).status == 401  # expired
    scheme.now = lambda: datetime.now(UTC)
    assert (await client.get("/source/scim/demo/v2/Users", headers=token)).status == 200
    assert await asyncio.to_thread(main, [*config, "sources", "revoke", "demo"]) == 0
    assert (await client.get("/source/scim/demo/v2/Users", headers=token)).status == 401  # cache_seconds = 0
    # The secret still gets new tokens: revoke ends tokens, not client secrets.
    status, _, _ = await token_request(client, "demo", grant, basic(made["client_id"], made["client_secret"]))
    assert status == 200


async def test_a_token_issued_by_one_process_opens_the_source_in_another(served, capsys, aiohttp_client):
    config, first = served
    second = await aiohttp_client(create_app(config[1]))  # another host on the same store
    made = await secret_for(capsys, config, "hr")
    _, body, _ = await token_request(
        first, "hr", {"grant_type": "client_credentials"}, basic(made["client_id"], made["client_secret"])
    )
    token = {"Authorization": f"Bearer {body['access_token']}"}
    assert (await second.get("/source/scim/hr/v2/Users", headers=token)).status == 200
    assert (await second.get("/source/scim/demo/v2/Users", headers=token)).status == 401


async def test_sources_list_says_what_to_copy_into_the_identity_provider(served, capsys):
    config, _ = served
    code, out, _ = await asyncio.to_thread(cli, capsys, *config, "sources", "list", "--json")
    rows = {row["slug"]: row for row in json.loads(out)}
    assert rows["hr"]["oauth"] == {
        "client_id": "scimhost-source-hr",
        "token_url": "https://scim.example.com/source/scim/hr/v2/oauth/token",
    }
    assert rows["demo"]["auth"] == ["bearer", "oauth"] and "oauth" not in rows["plain"]
    code, out, _ = await asyncio.to_thread(cli, capsys, *config, "sources", "list")
    assert "oauth token url: https://scim.example.com/source/scim/hr/v2/oauth/token" in out
    assert "oauth client id: scimhost-source-hr" in out


def test_the_plugin_is_listed_with_its_distribution(capsys):
    code, out, _ = cli(capsys, "plugins", "--json")
    [plugin] = [p for p in json.loads(out)["plugins"] if p["name"] == "oauth"]
    assert plugin["distribution"] == "scimhost-oauth"
    assert {"register_auth_schemes", "register_routes", "register_commands"} <= set(plugin["hooks"])


async def test_each_oauth_source_publishes_its_authorization_server_metadata(served, capsys):
    config, client = served
    response = await client.get("/.well-known/oauth-authorization-server/source/scim/demo/v2")
    meta = await response.json()
    assert meta["issuer"] == "https://scim.example.com/source/scim/demo/v2"
    assert meta["token_endpoint"] == "https://scim.example.com/source/scim/demo/v2/oauth/token"
    assert meta["grant_types_supported"] == ["client_credentials"] and meta["scopes_supported"] == ["scim"]
    assert meta["token_endpoint_auth_methods_supported"] == ["client_secret_basic", "client_secret_post"]
    assert (await client.get("/.well-known/oauth-authorization-server/source/scim/plain/v2")).status == 404
    assert (await client.get("/.well-known/oauth-authorization-server/source/scim/nosuch/v2")).status == 404
    # ServiceProviderConfig names the scheme among the source's authentication schemes.
    made = await secret_for(capsys, config, "demo")
    _, body, _ = await token_request(
        client, "demo", {"grant_type": "client_credentials"}, basic(made["client_id"], made["client_secret"])
    )
    spc = await (
        await client.get(
            "/source/scim/demo/v2/ServiceProviderConfig", headers={"Authorization": f"Bearer {body['access_token']}"}
        )
    ).json()
    assert [s["type"] for s in spc["authenticationSchemes"]] == ["oauthbearertoken", "oauth2"]
    assert "https://scim.example.com/source/scim/demo/v2/oauth/token" in spc["authenticationSchemes"][1]["description"]


async def test_the_admin_overview_shows_the_schemes_secrets_and_flags_one_about_to_expire(
    served, capsys, aiohttp_client
):
    config, client = served
    host = client.app[HOST]
    made = await secret_for(capsys, config, "demo")
    soon = datetime.now(UTC) + timedelta(days=10)
    await host.storage.add_credential(
        "demo", Credential(SECRET_KIND, "old", digest("x"), soon - timedelta(days=700), expires=soon)
    )
    admin = await aiohttp_client(build_admin_app(host, environ={"OAUTH_TEST_ADMIN": ADMIN_TOKEN}))
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    overview = await (await admin.get("/api/overview", headers=headers)).json()
    sources = {s["slug"]: s for s in overview["sources"]}
    [bearer, oauth] = sources["demo"]["auth"]
    assert (bearer["scheme"], bearer["details"]) == ("bearer", [])
    details = {d["label"]: d for d in oauth["details"]}
    assert details["OAuth client id"]["value"] == "scimhost-source-demo"
    assert details["Token URL"]["value"] == "https://scim.example.com/source/scim/demo/v2/oauth/token"
    assert not details[f"Client secret {made['secret_id']}"]["warning"]
    flagged = details["Client secret old"]
    assert (
        flagged["warning"] and "(expires in 9 days)" in flagged["value"] or "(expires in 10 days)" in flagged["value"]
    )
    assert sources["hr"]["token"] is None  # OAuth only: no bearer token to issue
    assert [d["value"] for d in sources["hr"]["auth"][0]["details"] if d["label"] == "Client secret"] == [
        f"none yet: run scimhost -c {config[1]} oauth secrets create hr"
    ]
    page = await (await admin.get("/", headers=headers)).text()
    assert "Client secret old" in page and 'class="scheme-detail warn"' in page
    assert made["client_secret"] not in page and made["client_secret"] not in json.dumps(overview)
