"""The admin listener: Prometheus metrics, read-only pages for operators, and their JSON API."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping

import aiohttp_jinja2
import jinja2
import orjson
from aiohttp import web

from scimhost.admin.auth import COOKIE, admin_auth, authenticated
from scimhost.admin.headers import security_headers
from scimhost.admin.keys import ADMIN_TOKEN
from scimhost.admin.routes import setup_routes
from scimhost.config import ConfigError, Settings
from scimhost.host import Host
from scimhost.http.keys import HOST
from scimhost.timestamps import shown

MIN_ADMIN_TOKEN_LENGTH = 32


def admin_token(settings: Settings, environ: Mapping[str, str] | None = None) -> str | None:
    """The token admin requests must present ([admin] token_env), or None; ConfigError when
    the variable is named but not set, or holds fewer than 32 characters."""
    name = settings.admin.token_env
    if not name:
        return None
    token = (environ if environ is not None else os.environ).get(name, "").strip()
    if not token:
        raise ConfigError([f"admin.token_env: ${name} is not set"], settings.path)
    if len(token) < MIN_ADMIN_TOKEN_LENGTH:
        # The token opens every source's data; a short one can be guessed (`openssl rand -hex 32`).
        raise ConfigError(
            [
                f"admin.token_env: ${name} is shorter than {MIN_ADMIN_TOKEN_LENGTH} characters (try: openssl rand -hex 32)"
            ],
            settings.path,
        )
    return token


def anonymous_admin_warning(settings: Settings) -> str | None:
    """What to warn of an admin listener without a token, or None when it has one; ConfigError
    when it would be open on an address other hosts reach without `[admin] allow_anonymous`."""
    admin = settings.admin
    if not admin.enabled or admin.token_env:
        return None
    host = admin.address[0]
    if _loopback(host):
        if admin.allow_anonymous:
            return None
        return (
            f"the admin listener on {admin.listen} has no token: its pages and metrics are open to every "
            "local user (set [admin] token_env)"
        )
    if not admin.allow_anonymous:
        raise ConfigError(
            [
                f"admin: the listener on {admin.listen} would show every source's data to anyone who reaches it: "
                "set [admin] token_env, listen on loopback, or set [admin] allow_anonymous = true"
            ],
            settings.path,
        )
    return f"the admin listener on {admin.listen} has no token: it is open to anyone who reaches it (allow_anonymous)"


def _loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name other than localhost: it may resolve to anything


def build_admin_app(host: Host, environ: Mapping[str, str] | None = None) -> web.Application:
    """The admin application of a host whose store the SCIM application opens."""
    app = web.Application(middlewares=[admin_auth])
    app.on_response_prepare.append(security_headers)
    app[HOST] = host
    app[ADMIN_TOKEN] = admin_token(host.settings, environ)
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.PackageLoader("scimhost.admin", "templates"),
        autoescape=True,
        context_processors=[_common_context],
    )
    env.filters["pretty"] = _pretty
    env.filters["age"] = _age
    env.filters["when"] = _when
    setup_routes(app)
    return app


async def _common_context(request: web.Request) -> dict:
    signed_in = request.app[ADMIN_TOKEN] is not None and COOKIE in request.cookies and authenticated(request)
    return {"signed_in": signed_in, "path": request.path}


def _pretty(value) -> str:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()


def _when(value) -> str:
    """A moment (an ISO 8601 text or a datetime) in the one form every page shows."""
    return shown(value)


def _age(seconds) -> str:
    """A duration in seconds as people read it (42s, 5m, 3h, 2d)."""
    seconds = float(seconds or 0)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"
