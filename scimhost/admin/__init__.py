"""The admin listener: Prometheus metrics, read-only pages for operators, and their JSON API."""

from __future__ import annotations

import os
from collections.abc import Mapping

import aiohttp_jinja2
import jinja2
import orjson
from aiohttp import web

from scimhost.admin.auth import COOKIE, admin_auth, authenticated
from scimhost.admin.keys import ADMIN_TOKEN
from scimhost.admin.routes import setup_routes
from scimhost.config import ConfigError, Settings
from scimhost.host import Host
from scimhost.http.keys import HOST


def admin_token(settings: Settings, environ: Mapping[str, str] | None = None) -> str | None:
    """The token admin requests must present ([admin] token_env), or None; ConfigError when
    the variable is named but not set."""
    name = settings.admin.token_env
    if not name:
        return None
    token = (environ if environ is not None else os.environ).get(name, "").strip()
    if not token:
        raise ConfigError([f"admin.token_env: ${name} is not set"], settings.path)
    return token


def build_admin_app(host: Host, environ: Mapping[str, str] | None = None) -> web.Application:
    """The admin application of a host whose store the SCIM application opens."""
    app = web.Application(middlewares=[admin_auth])
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
    setup_routes(app)
    return app


async def _common_context(request: web.Request) -> dict:
    signed_in = request.app[ADMIN_TOKEN] is not None and COOKIE in request.cookies and authenticated(request)
    return {"signed_in": signed_in, "path": request.path}


def _pretty(value) -> str:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()


def _age(seconds) -> str:
    """A duration in seconds as people read it (42s, 5m, 3h, 2d)."""
    seconds = float(seconds or 0)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"
