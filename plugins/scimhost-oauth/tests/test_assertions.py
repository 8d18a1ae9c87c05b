"""RFC 7523 client assertions at the token endpoint, signed with PyJWT (not the joserfc the plugin
verifies with) by keys from `cryptography`, against a JWKS server on loopback."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
import uuid

import jwt as pyjwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from scimhost.app import create_app
from scimhost.cli import main
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

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ISSUER = "https://login.microsoftonline.com/tenant-1/v2.0"
SUBJECT = "workload-identity-object-id"
AUDIENCE = "api://workload-app-id"


class SigningKey:
    """A key pair with its kid and its public JWK."""

    def __init__(self, kind: str, kid: str) -> None:
        self.kid = kid
        if kind == "EC":
            self.private = ec.generate_private_key(ec.SECP256R1())
            self.jwk = json.loads(ECAlgorithm.to_jwk(self.private.public_key()))
        else:
            self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            self.jwk = json.loads(RSAAlgorithm.to_jwk(self.private.public_key()))
        self.jwk["kid"] = kid

    def sign(self, claims: dict, algorithm: str = "RS256", kid: str | None = None) -> str:
        return pyjwt.encode(claims, self.private, algorithm=algorithm, headers={"kid": kid or self.kid})


class JwksServer:
    """The tenant's key endpoint: the keys it publishes, how often it was asked, and whether it
    answers at all."""

    def __init__(self) -> None:
        self.keys: list[SigningKey] = []
        self.fetches = 0
        self.mode = "up"

    async def handle(self, request: web.Request) -> web.Response:
        self.fetches += 1
        if self.mode == "down":
            return web.Response(status=500)
        if self.mode == "slow":
            await asyncio.sleep(3)
        return web.json_response({"keys": [key.jwk for key in self.keys]})


def claims(**changes) -> dict:
    now = int(time.time())
    base = {
        "iss": ISSUER,
        "sub": SUBJECT,
        "aud": AUDIENCE,
        "exp": now + 300,
        "iat": now,
        "nbf": now,
        "jti": uuid.uuid4().hex,
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


@pytest.fixture
async def tenant(aiohttp_server):
    server = JwksServer()
    server.keys = [SigningKey("RSA", "rsa-1"), SigningKey("EC", "ec-1")]
    app = web.Application()
    app.router.add_get("/discovery/v2.0/keys", server.handle)
    running = await aiohttp_server(app)
    server.url = str(running.make_url("/discovery/v2.0/keys"))
    return server


async def served(tmp_path, storage_url, aiohttp_client, tenant, min_refresh: float = 0):  # noqa: F811
    path = tmp_path / "scimhost.toml"
    path.write_text(
        f"[oauth]\ncache_seconds = 0\njwks_timeout_seconds = 0.5\njwks_min_refresh_seconds = {min_refresh}\n"
        f'[storage.tortoise]\nurl = "{storage_url}"\n'
        '[[sources]]\nslug = "entra"\nname = "Entra"\nauth = ["oauth"]\n'
        f'[[sources.oauth.trusted_issuers]]\nissuer = "{ISSUER}"\njwks_url = "{tenant.url}"\n'
        f'subject = "{SUBJECT}"\naudience = "{AUDIENCE}"\n'
        '[[sources]]\nslug = "plain"\nname = "Plain"\nauth = ["oauth"]\n'
        '[[sources]]\nslug = "bearer"\nname = "Bearer"\n'
    )
    assert await asyncio.to_thread(main, ["-c", str(path), "migrate"]) == 0
    return await aiohttp_client(create_app(path))


async def exchange(client, assertion: str, slug: str = "entra", **extra):
    data = {"grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion}
    data.update(extra)
    response = await client.post(f"/source/scim/{slug}/v2/oauth/token", data=data, headers=FORM)
    assert response.headers["Cache-Control"] == "no-store"
    return response.status, await response.json()


async def test_a_trusted_issuers_assertion_gets_a_token_with_each_accepted_algorithm(
    tmp_path,
    storage_url,
    aiohttp_client,
    tenant,  # noqa: F811
):
    client = await served(tmp_path, storage_url, aiohttp_client, tenant)
    rsa_key, ec_key = tenant.keys
    for assertion in (
        rsa_key.sign(claims()),
        rsa_key.sign(claims(), algorithm="PS256"),
        ec_key.sign(claims(), algorithm="ES256"),
        rsa_key.sign(claims(aud=["other", AUDIENCE]), algorithm="RS256"),
    ):
        status, body = await exchange(client, assertion, client_id="scimhost-source-entra")
        assert status == 200, body
        token = {"Authorization": f"Bearer {body['access_token']}"}
        assert (await client.get("/source/scim/entra/v2/Users", headers=token)).status == 200
        assert (await client.get("/source/scim/plain/v2/Users", headers=token)).status == 401
    assert tenant.fetches == 1  # the keys were kept


def _hs256_with_the_public_key(key: SigningKey) -> str:
    """The classic confusion attack: an HMAC whose secret is the published public key."""
    pem = key.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = (
        b64(json.dumps({"alg": "HS256", "kid": key.kid}).encode()) + "." + b64(json.dumps(claims()).encode())
    )
    signature = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64(signature)


async def test_assertions_that_must_not_authenticate_are_invalid_client(tmp_path, storage_url, aiohttp_client, tenant):  # noqa: F811
    client = await served(tmp_path, storage_url, aiohttp_client, tenant)
    rsa_key = tenant.keys[0]
    stranger = SigningKey("RSA", "rsa-1")  # the same kid, another key
    now = int(time.time())
    refused = {
        "bad signature": stranger.sign(claims()),
        "alg none": pyjwt.encode(claims(), None, algorithm="none", headers={"kid": "rsa-1"}),
        "HS256 with the public key": _hs256_with_the_public_key(rsa_key),
        "untrusted issuer": rsa_key.sign(claims(iss="https://login.microsoftonline.com/other/v2.0")),
        "wrong subject": rsa_key.sign(claims(sub="someone-else")),
        "wrong audience": rsa_key.sign(claims(aud="api://other")),
        "expired": rsa_key.sign(claims(exp=now - 120, iat=now - 400, nbf=now - 400)),
        "no exp": rsa_key.sign(claims(exp=None)),
        "exp far ahead": rsa_key.sign(claims(exp=now + 86400)),
        "nbf in the future": rsa_key.sign(claims(nbf=now + 600)),
        "not a JWT": "not.a.jwt",
    }
    for reason, assertion in refused.items():
        status, body = await exchange(client, assertion)
        assert (status, body["error"]) == (401, "invalid_client"), reason
    # Accepted once; the same jti again is a replay.
    once = rsa_key.sign(claims(jti="only-once"))
    assert (await exchange(client, once))[0] == 200
    assert (await exchange(client, once)) == (
        401,
        {"error": "invalid_client", "error_description": "client authentication failed"},
    )
    # Another client id, another source, or no trusted issuer there.
    assert (await exchange(client, rsa_key.sign(claims()), client_id="scimhost-source-plain"))[0] == 401
    assert (await exchange(client, rsa_key.sign(claims()), slug="plain"))[0] == 401


async def test_malformed_assertion_requests_are_invalid_request(tmp_path, storage_url, aiohttp_client, tenant):  # noqa: F811
    client = await served(tmp_path, storage_url, aiohttp_client, tenant)
    good = tenant.keys[0].sign(claims())
    status, body = await exchange(client, good, client_assertion_type="urn:other")
    assert (status, body["error"]) == (400, "invalid_request")
    status, body = await exchange(client, good, client_secret="scs_x.y")  # two ways at once
    assert (status, body["error"]) == (400, "invalid_request")


async def test_an_unknown_kid_fetches_the_rotated_keys_but_junk_kids_do_not_hammer_the_issuer(
    tmp_path,
    storage_url,
    aiohttp_client,
    tenant,  # noqa: F811
):
    client = await served(tmp_path, storage_url, aiohttp_client, tenant, min_refresh=0)
    assert (await exchange(client, tenant.keys[0].sign(claims())))[0] == 200
    rotated = SigningKey("RSA", "rsa-2")
    tenant.keys.append(rotated)  # the tenant rotates: the new key is published
    assert (await exchange(client, rotated.sign(claims())))[0] == 200
    assert tenant.fetches == 2

    (tmp_path / "b").mkdir()
    limited = await served(tmp_path / "b", storage_url, aiohttp_client, tenant, min_refresh=300)
    fetched = tenant.fetches
    assert (await exchange(limited, tenant.keys[0].sign(claims())))[0] == 200
    for n in range(5):
        assert (await exchange(limited, tenant.keys[0].sign(claims(), kid=f"junk-{n}")))[0] == 401
    assert tenant.fetches == fetched + 1  # one fetch for the first assertion, none for the junk


async def test_an_issuer_whose_keys_are_down_or_slow_is_a_clear_error_and_hangs_nothing(
    tmp_path,
    storage_url,
    aiohttp_client,
    tenant,  # noqa: F811
):
    client = await served(tmp_path, storage_url, aiohttp_client, tenant)
    tenant.mode = "down"
    status, body = await exchange(client, tenant.keys[0].sign(claims()))
    assert (status, body["error"]) == (503, "temporarily_unavailable")
    tenant.mode = "slow"
    started = time.monotonic()
    slow = asyncio.create_task(exchange(client, tenant.keys[0].sign(claims())))
    # Meanwhile another source answers at once.
    assert (await client.get("/source/scim/bearer/v2/ServiceProviderConfig")).status == 401
    assert time.monotonic() - started < 0.4
    status, body = await slow
    assert (status, body["error"]) == (503, "temporarily_unavailable")
    assert time.monotonic() - started < 2.5  # the 0.5 s timeout, not the issuer's 3 s
    tenant.mode = "up"
    assert (await exchange(client, tenant.keys[0].sign(claims())))[0] == 200


async def test_the_metadata_names_private_key_jwt_when_issuers_are_trusted(
    tmp_path, storage_url, aiohttp_client, tenant
):  # noqa: F811
    client = await served(tmp_path, storage_url, aiohttp_client, tenant)
    meta = await (await client.get("/.well-known/oauth-authorization-server/source/scim/entra/v2")).json()
    assert "private_key_jwt" in meta["token_endpoint_auth_methods_supported"]
    assert meta["token_endpoint_auth_signing_alg_values_supported"] == ["RS256", "PS256", "ES256"]
    host = client.app[HOST]
    details = await host.auth_schemes["oauth"].details(host.sources["entra"])
    assert [d.value for d in details if d.label == "Trusted issuer"] == [f"{ISSUER} (sub {SUBJECT}, aud {AUDIENCE})"]
    assert not any(d.warning for d in details)  # a trusted issuer needs no secret
