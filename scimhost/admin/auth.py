"""The admin listener's own token: a bearer header, or a session cookie set by the login form."""

from __future__ import annotations

import hashlib
import hmac
import time

import aiohttp_jinja2
from aiohttp import web

from scimhost.admin.keys import ADMIN_TOKEN

COOKIE = "scimhost_admin"
SESSION_SECONDS = 12 * 3600
# Requests that may arrive without credentials: the login form's own submission, and the
# stylesheet and script the form's page loads (the same for everyone, holding no data).
OPEN_PATHS = frozenset({"/login", "/static/admin.css", "/static/admin.js"})


def _session_key(token: str) -> bytes:
    # Derived from the admin token: every worker and host checks sessions without shared state,
    # and changing the token ends every session.
    return hashlib.sha256(b"scimhost-admin-session\0" + token.encode()).digest()


def session_cookie(token: str, now: float | None = None) -> str:
    """A session value: its expiry and a MAC of it under the token-derived key."""
    expires = str(int((now or time.time()) + SESSION_SECONDS))
    mac = hmac.new(_session_key(token), expires.encode(), hashlib.sha256).hexdigest()
    return f"{expires}.{mac}"


def session_valid(token: str, value: str, now: float | None = None) -> bool:
    expires, _, mac = value.partition(".")
    if not expires.isdigit() or int(expires) < (now or time.time()):
        return False
    expected = hmac.new(_session_key(token), expires.encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), mac.encode())


def token_valid(token: str, presented: str) -> bool:
    return hmac.compare_digest(hashlib.sha256(token.encode()).digest(), hashlib.sha256(presented.encode()).digest())


def authenticated(request: web.Request) -> bool:
    token = request.app[ADMIN_TOKEN]
    if token is None:
        return True
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and presented.strip():
        return token_valid(token, presented.strip())
    cookie = request.cookies.get(COOKIE)
    return cookie is not None and bool(cookie) and session_valid(token, cookie)


@web.middleware
async def admin_auth(request: web.Request, handler) -> web.StreamResponse:
    """Every path but the login form's needs the admin token (never a source's token)."""
    if request.path in OPEN_PATHS or authenticated(request):
        return await handler(request)
    if request.path.startswith("/api/") or request.path == "/metrics" or "Authorization" in request.headers:
        return web.json_response(
            {"error": "the admin token is required"},
            status=401,
            headers={"WWW-Authenticate": 'Bearer realm="scimhost-admin"'},
        )
    return await login_form(request, status=401)


async def login_form(
    request: web.Request, *, status: int = 200, message: str | None = None, target: str | None = None
) -> web.Response:
    """The form asking for the admin token (the answer to any page without credentials), which
    goes on to `target`: the page asked for."""
    target = target or request.query.get("next") or request.path_qs
    return aiohttp_jinja2.render_template(
        "login.html", request, {"next": _local(target), "message": message}, status=status
    )


async def login(request: web.Request) -> web.StreamResponse:
    """POST /login: a right token sets the session cookie and goes on to the page asked for."""
    token = request.app[ADMIN_TOKEN]
    form = await request.post()
    presented = form.get("token")
    target = _local(str(form.get("next") or "/"))
    if token is None:
        raise web.HTTPSeeOther(target)
    if not isinstance(presented, str) or not token_valid(token, presented):
        # The form again, still going on to the page asked for.
        return await login_form(request, status=401, message="That is not the admin token.", target=target)
    response = web.HTTPSeeOther(target)
    response.set_cookie(
        COOKIE,
        session_cookie(token),
        max_age=SESSION_SECONDS,
        httponly=True,
        samesite="Strict",
        secure=request.secure,
        path="/",
    )
    raise response


async def logout(request: web.Request) -> web.StreamResponse:
    response = web.HTTPSeeOther("/")
    response.del_cookie(COOKIE, path="/")
    raise response


def _local(target: str) -> str:
    """Only a path on this listener (never another site: no open redirect)."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target or target.startswith("/login"):
        return "/"
    return target
