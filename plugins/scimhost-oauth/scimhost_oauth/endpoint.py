"""The token endpoint of each source (RFC 6749 §4.4): client credentials for an access token."""

from __future__ import annotations

import base64
import binascii
import logging
from urllib.parse import unquote_plus

from aiohttp import web

from scimhost.http.keys import HOST, SOURCE
from scimhost.source_paths import ROUTE_ROOT
from scimhost_oauth.assertions import ALGORITHMS, ASSERTION_TYPE, AssertionRefused, KeysUnavailable, verify
from scimhost_oauth.credentials import SECRET_KIND, SECRET_PREFIX, check, client_id
from scimhost_oauth.scheme import TOKEN_PATH as PATH
from scimhost_oauth.scheme import OAuthScheme
from scimhost_oauth.settings import OAuthSourceSettings

log = logging.getLogger(__name__)

SCOPE = "scim"
# RFC 6749 §5.1: token responses, errors included, are never cached.
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class OAuthError(Exception):
    """An RFC 6749 §5.2 error: its code and a description that tells an attacker nothing."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error, self.description, self.status = error, description, status


def token_url(source) -> str:
    return source.base_url + PATH


# RFC 8414 §3: the metadata of issuer https://host/source/scim/<slug>/v2 is at
# https://host/.well-known/oauth-authorization-server/source/scim/<slug>/v2.
METADATA_PATH = "/.well-known/oauth-authorization-server" + ROUTE_ROOT


async def metadata(request: web.Request) -> web.Response:
    """Each OAuth source's authorization-server metadata (RFC 8414), for anyone to read."""
    source = request.app[HOST].sources.get(request.match_info["slug"])
    if source is None or "oauth" not in source.settings.auth:
        return web.json_response({"error": "no such OAuth source"}, status=404)
    options: OAuthSourceSettings = source.settings.auth_options["oauth"]
    methods = ["client_secret_basic"] + (["client_secret_post"] if options.secret_in_body else [])
    body = {
        "issuer": source.base_url,
        "token_endpoint": token_url(source),
        "grant_types_supported": ["client_credentials"],
        "response_types_supported": [],
        "scopes_supported": [SCOPE],
        "token_endpoint_auth_methods_supported": methods + (["private_key_jwt"] if options.trusted_issuers else []),
    }
    if options.trusted_issuers:
        body["token_endpoint_auth_signing_alg_values_supported"] = list(ALGORITHMS)
    return web.json_response(body)


async def token_endpoint(request: web.Request) -> web.Response:
    """POST <base URL>/oauth/token."""
    source = request[SOURCE]
    if "oauth" not in source.settings.auth:
        return _answer({"error": "invalid_request", "error_description": "this source does not use OAuth"}, 404)
    try:
        token, seconds = await _grant(request, source)
    except OAuthError as exc:
        headers = {"WWW-Authenticate": 'Basic realm="scimhost"'} if exc.status == 401 else {}
        return _answer({"error": exc.error, "error_description": exc.description}, exc.status, headers)
    return _answer({"access_token": token, "token_type": "Bearer", "expires_in": seconds, "scope": SCOPE}, 200)


async def _grant(request: web.Request, source) -> tuple[str, int]:
    if request.content_type != "application/x-www-form-urlencoded":
        raise OAuthError("invalid_request", "the body must be application/x-www-form-urlencoded")
    form = await request.post()
    if any(len(form.getall(key)) > 1 for key in form):
        raise OAuthError("invalid_request", "a parameter is given more than once")
    values = {key: value for key, value in form.items() if isinstance(value, str)}
    grant = values.get("grant_type")
    if not grant:
        raise OAuthError("invalid_request", "grant_type is missing")
    if grant != "client_credentials":
        raise OAuthError("unsupported_grant_type", "only client_credentials is supported")
    if set(values.get("scope", SCOPE).split()) - {SCOPE}:
        raise OAuthError("invalid_scope", f"the only scope is {SCOPE!r}")
    options: OAuthSourceSettings = source.settings.auth_options["oauth"]
    method, presented_id, proof = _client_authentication(request, values, options)
    expected = client_id(source.service_account)
    host = request.app[HOST]
    scheme = host.auth_schemes["oauth"]
    assert isinstance(scheme, OAuthScheme)  # the source lists it, so the host made it
    now = scheme.now()
    if method == "assertion":
        if presented_id not in (None, expected):
            raise OAuthError("invalid_client", "client authentication failed", 401)
        try:
            trusted = await verify(proof, options.trusted_issuers, scheme.jwks, host.storage, source.slug, now)
        except AssertionRefused as exc:
            log.info("source %s: a client assertion was refused: %s", source.slug, exc)
            raise OAuthError("invalid_client", "client authentication failed", 401) from None
        except KeysUnavailable as exc:
            log.warning("source %s: the trusted issuer's keys could not be fetched: %s", source.slug, exc)
            raise OAuthError(
                "temporarily_unavailable", "the issuer's keys could not be fetched; try again", 503
            ) from None
        log.debug("source %s: client assertion of %s accepted", source.slug, trusted.issuer)
        return await scheme.issue_access_token(source)
    # The same answer for an unknown client, a wrong, revoked or expired secret and another
    # source's secret: nothing tells which part was wrong.
    secret = None
    if presented_id == expected:
        secret = await check(host.storage, source.slug, SECRET_KIND, SECRET_PREFIX, proof, now)
    if secret is None:
        raise OAuthError("invalid_client", "client authentication failed", 401)
    await host.storage.touch_credential(source.slug, SECRET_KIND, secret.id, now)
    return await scheme.issue_access_token(source)


def _client_authentication(
    request: web.Request, values: dict[str, str], options: OAuthSourceSettings
) -> tuple[str, str | None, str]:
    """How the client authenticates, by exactly one method (RFC 6749 §2.3): ("secret",
    client_id, secret) by HTTP Basic or, when allowed, the body; or ("assertion", client_id or
    None, the JWT) by RFC 7523 §2.2."""
    basic = _basic(request.headers.get("Authorization"))
    in_body = values.get("client_secret")
    assertion, assertion_type = values.get("client_assertion"), values.get("client_assertion_type")
    used = [m for m in (basic, in_body, assertion or assertion_type) if m is not None]
    if len(used) > 1:
        raise OAuthError("invalid_request", "the client authenticated in more than one way")
    if assertion is not None or assertion_type is not None:
        if not assertion or assertion_type != ASSERTION_TYPE:
            raise OAuthError("invalid_request", f"client_assertion_type must be {ASSERTION_TYPE}")
        if not options.trusted_issuers:
            raise OAuthError("invalid_client", "client authentication failed", 401)
        return "assertion", values.get("client_id"), assertion
    if basic is not None:
        if values.get("client_id") not in (None, basic[0]):
            raise OAuthError("invalid_request", "client_id differs from the one authenticated")
        return "secret", basic[0], basic[1]
    if in_body is not None:
        if not options.secret_in_body:
            raise OAuthError("invalid_client", "the client secret must be sent with HTTP Basic", 401)
        return "secret", values.get("client_id", ""), in_body
    raise OAuthError("invalid_client", "client authentication is missing", 401)


def _basic(header: str | None) -> tuple[str, str] | None:
    """RFC 6749 §2.3.1: Basic with the form-urlencoded id and secret; None without Basic."""
    if not header:
        return None
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise OAuthError("invalid_client", "client authentication failed", 401) from None
    user, colon, password = decoded.partition(":")
    if not colon:
        raise OAuthError("invalid_client", "client authentication failed", 401)
    return unquote_plus(user), unquote_plus(password)


def _answer(body: dict, status: int, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(body, status=status, headers={**NO_STORE, **(headers or {})})
