"""The token endpoint of each source (RFC 6749 §4.4): client credentials for an access token."""

from __future__ import annotations

import base64
import binascii
from urllib.parse import unquote_plus

from aiohttp import web

from scimhost.http.keys import HOST, SOURCE
from scimhost_oauth.credentials import SECRET_KIND, SECRET_PREFIX, check, client_id
from scimhost_oauth.scheme import TOKEN_PATH as PATH
from scimhost_oauth.scheme import OAuthScheme
from scimhost_oauth.settings import OAuthSourceSettings

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
    presented = _client_credentials(request, values, source.settings.auth_options["oauth"])
    expected = client_id(source.service_account)
    host = request.app[HOST]
    scheme = host.auth_schemes["oauth"]
    assert isinstance(scheme, OAuthScheme)  # the source lists it, so the host made it
    now = scheme.now()
    # The same answer for an unknown client, a wrong, revoked or expired secret and another
    # source's secret: nothing tells which part was wrong.
    secret = None
    if presented[0] == expected:
        secret = await check(host.storage, source.slug, SECRET_KIND, SECRET_PREFIX, presented[1], now)
    if secret is None:
        raise OAuthError("invalid_client", "client authentication failed", 401)
    await host.storage.touch_credential(source.slug, SECRET_KIND, secret.id, now)
    return await scheme.issue_access_token(source)


def _client_credentials(request: web.Request, values: dict[str, str], options: OAuthSourceSettings) -> tuple[str, str]:
    """(client_id, client_secret) by exactly one method: HTTP Basic, or the body when allowed."""
    basic = _basic(request.headers.get("Authorization"))
    in_body = values.get("client_secret")
    if "client_assertion" in values or "client_assertion_type" in values:
        raise OAuthError("invalid_client", "client assertions are not accepted here", 401)
    if basic is not None and in_body is not None:
        raise OAuthError("invalid_request", "the client authenticated in more than one way")
    if basic is not None:
        if values.get("client_id") not in (None, basic[0]):
            raise OAuthError("invalid_request", "client_id differs from the one authenticated")
        return basic
    if in_body is not None:
        if not options.secret_in_body:
            raise OAuthError("invalid_client", "the client secret must be sent with HTTP Basic", 401)
        return values.get("client_id", ""), in_body
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
