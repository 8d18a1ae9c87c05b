"""Bearer tokens: issued, rotated, rejected, and confined to their own source."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from helpers import bearer, make_config

from scimhost.app import create_app
from scimhost.http.keys import HOST
from scimhost.tokens import hash_token

SPC = "/source/scim/{}/v2/ServiceProviderConfig"
ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"


async def assert_scim_error(response, status: int) -> dict:
    assert response.status == status
    assert response.headers["Content-Type"].startswith("application/scim+json")
    body = await response.json(content_type=None)
    assert body["schemas"] == [ERROR_SCHEMA]
    assert body["status"] == str(status)
    return body


async def test_issued_token_opens_its_source(client, issue_token):
    token = await issue_token("demo")
    response = await client.get(SPC.format("demo"), headers=bearer(token))
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("application/scim+json")
    body = await response.json(content_type=None)
    assert body["meta"]["location"] == "https://scim.example.test/source/scim/demo/v2/ServiceProviderConfig"
    assert [s["type"] for s in body["authenticationSchemes"]] == ["oauthbearertoken"]


async def test_missing_token_is_401_with_challenge(client, issue_token):
    await issue_token("demo")
    response = await client.get(SPC.format("demo"))
    await assert_scim_error(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "header",
    ["Bearer wrong", "Bearer ", "Basic dXNlcjpwYXNz", "bearer", "Bearer " + "x" * 5000, "Token abc"],
)
async def test_wrong_credentials_are_401(client, issue_token, header):
    await issue_token("demo")
    response = await client.get(SPC.format("demo"), headers={"Authorization": header})
    await assert_scim_error(response, 401)
    assert "Bearer" in response.headers["WWW-Authenticate"]


async def test_source_without_token_rejects_everything(client):
    response = await client.get(SPC.format("demo"), headers=bearer("anything-at-all"))
    await assert_scim_error(response, 401)


async def test_token_of_one_source_does_not_open_another(client, issue_token):
    demo_token = await issue_token("demo")
    other_token = await issue_token("other")
    assert (await client.get(SPC.format("other"), headers=bearer(demo_token))).status == 401
    assert (await client.get(SPC.format("demo"), headers=bearer(other_token))).status == 401
    assert (await client.get(SPC.format("other"), headers=bearer(other_token))).status == 200


async def test_rotation_replaces_the_old_token(client, issue_token):
    old = await issue_token("demo")
    new = await issue_token("demo")
    assert old != new
    await assert_scim_error(await client.get(SPC.format("demo"), headers=bearer(old)), 401)
    assert (await client.get(SPC.format("demo"), headers=bearer(new))).status == 200


async def test_rotation_in_this_process_takes_effect_at_once(client, issue_token):
    old = await issue_token("demo")
    assert (await client.get(SPC.format("demo"), headers=bearer(old))).status == 200  # now cached
    new = await issue_token("demo")
    await assert_scim_error(await client.get(SPC.format("demo"), headers=bearer(old)), 401)
    assert (await client.get(SPC.format("demo"), headers=bearer(new))).status == 200


async def rotate_behind_the_app(client, token: str) -> None:
    """What `scimhost sources token` in another process does: only the store changes."""
    await client.app[HOST].storage.set_token_hash("demo", hash_token(token))


async def test_rotation_elsewhere_takes_effect_within_the_cache_time(aiohttp_client, storage_url):
    client = await aiohttp_client(create_app({**make_config(storage_url), "bearer": {"cache_seconds": 30}}))
    scheme = client.app[HOST].auth_schemes["bearer"]
    now = [0.0]
    scheme.clock = lambda: now[0]  # moves only when the test says
    old = await client.app[HOST].issue_token("demo")
    assert (await client.get(SPC.format("demo"), headers=bearer(old))).status == 200
    await rotate_behind_the_app(client, "the-new-token")
    now[0] = 29.9
    # Until the cached hash expires the old token still opens the source ...
    assert (await client.get(SPC.format("demo"), headers=bearer(old))).status == 200
    now[0] = 30.1
    # ... and after that only the new one does.
    await assert_scim_error(await client.get(SPC.format("demo"), headers=bearer(old)), 401)
    assert (await client.get(SPC.format("demo"), headers=bearer("the-new-token"))).status == 200


async def test_a_token_issued_elsewhere_opens_the_source_at_once(aiohttp_client, storage_url):
    """The identity provider's admin pastes the new token and tests the connection at once: a
    token that does not match the cached hash makes the process read the stored one again."""
    client = await aiohttp_client(create_app({**make_config(storage_url), "bearer": {"cache_seconds": 60}}))
    old = await client.app[HOST].issue_token("demo")
    assert (await client.get(SPC.format("demo"), headers=bearer(old))).status == 200
    await rotate_behind_the_app(client, "the-new-token")
    assert (await client.get(SPC.format("demo"), headers=bearer("the-new-token"))).status == 200
    # Having read the new hash, the process no longer takes the old token.
    await assert_scim_error(await client.get(SPC.format("demo"), headers=bearer(old)), 401)


async def test_wrong_tokens_read_the_store_at_most_once_per_refresh_interval(aiohttp_client, storage_url):
    client = await aiohttp_client(
        create_app({**make_config(storage_url), "bearer": {"cache_seconds": 60, "refresh_seconds": 30}})
    )
    token = await client.app[HOST].issue_token("demo")
    storage = client.app[HOST].storage
    reads = 0
    original = storage.token_hashes

    async def counted(slug: str, *, now):
        nonlocal reads
        reads += 1
        return await original(slug, now=now)

    storage.token_hashes = counted
    assert (await client.get(SPC.format("demo"), headers=bearer(token))).status == 200
    for i in range(50):
        await assert_scim_error(await client.get(SPC.format("demo"), headers=bearer(f"garbage-{i}")), 401)
    assert reads <= 2  # the first read of the hash, and one refresh for all fifty wrong tokens
    assert (await client.get(SPC.format("demo"), headers=bearer(token))).status == 200


async def test_without_a_cache_rotation_elsewhere_takes_effect_at_once(aiohttp_client, storage_url):
    client = await aiohttp_client(create_app({**make_config(storage_url), "bearer": {"cache_seconds": 0}}))
    old = await client.app[HOST].issue_token("demo")
    assert (await client.get(SPC.format("demo"), headers=bearer(old))).status == 200
    await rotate_behind_the_app(client, "the-new-token")
    await assert_scim_error(await client.get(SPC.format("demo"), headers=bearer(old)), 401)
    assert (await client.get(SPC.format("demo"), headers=bearer("the-new-token"))).status == 200


async def test_bearer_scheme_name_is_case_insensitive(client, issue_token):
    token = await issue_token("demo")
    response = await client.get(SPC.format("demo"), headers={"Authorization": f"bearer {token}"})
    assert response.status == 200


async def test_tokens_are_long_random_and_stored_only_as_hash(client, issue_token, database, tmp_path):
    tokens = {await issue_token("demo") for _ in range(3)}
    assert len(tokens) == 3
    token = await issue_token("demo")
    assert len(token) >= 43  # 256 bits in URL-safe base64, plus the prefix
    [stored] = await client.app[HOST].storage.token_hashes("demo", now=datetime.now(UTC))
    assert stored == hashlib.sha256(token.encode()).hexdigest()
    if database == "sqlite":
        await client.app[HOST].storage.close()
        raw = b"".join(p.read_bytes() for p in Path(tmp_path).glob("scimhost.sqlite3*"))
        assert token.encode() not in raw
        assert stored.encode() in raw


async def test_unknown_source_is_404_even_with_a_valid_token(client, issue_token):
    token = await issue_token("demo")
    body = await assert_scim_error(await client.get(SPC.format("nosuch"), headers=bearer(token)), 404)
    assert "source" in body["detail"].lower()


async def test_unknown_endpoint_is_scim_404_after_auth(client, issue_token):
    token = await issue_token("demo")
    await assert_scim_error(await client.get("/source/scim/demo/v2/Nothing"), 401)
    await assert_scim_error(await client.get("/source/scim/demo/v2/Nothing", headers=bearer(token)), 404)
    await assert_scim_error(await client.get("/source/scim/demo", headers=bearer(token)), 404)


async def test_unsupported_method_is_scim_405_with_allow(client, issue_token):
    token = await issue_token("demo")
    response = await client.delete(SPC.format("demo"), headers=bearer(token))
    await assert_scim_error(response, 405)
    assert "GET" in response.headers["Allow"]


async def test_token_from_environment(aiohttp_client, storage_url):
    env_token = "t" * 40
    config = make_config(storage_url, [{"slug": "envsrc", "name": "Env", "token_env": "SRC_TOKEN"}])
    client = await aiohttp_client(create_app(config, environ={"SRC_TOKEN": env_token}))
    assert (await client.get(SPC.format("envsrc"), headers=bearer(env_token))).status == 200
    assert (await client.get(SPC.format("envsrc"), headers=bearer("t" * 39))).status == 401
    with pytest.raises(ValueError):
        await client.app[HOST].issue_token("envsrc")
