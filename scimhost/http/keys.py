"""Typed keys for what the application and each request carry."""

from __future__ import annotations

import asyncio

from aiohttp import web

from scimhost.auth import Principal
from scimhost.host import Host
from scimhost.sources import Source

HOST = web.AppKey("host", Host)
# Set when the server starts shutting down (before it waits for in-flight requests).
STOPPING = web.AppKey("stopping", asyncio.Event)
# Each SCIM route's endpoint name, for metric labels (http/observe.py).
ROUTE_LABELS = web.AppKey("route_labels", dict)
# The plugin routes below a source that its clients reach without authenticating (a token endpoint).
OPEN_ROUTES = web.AppKey("open_routes", frozenset)
SOURCE = web.RequestKey("source", Source)
# The configured slug the path names, set before authentication (so a 401 is logged with it).
SOURCE_SLUG = web.RequestKey("source_slug", str)
# The request's id: the client's X-Request-Id when it looks like one, else a new one.
REQUEST_ID = web.RequestKey("request_id", str)
PRINCIPAL = web.RequestKey("principal", Principal)
