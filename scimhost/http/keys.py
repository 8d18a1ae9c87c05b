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
SOURCE = web.RequestKey("source", Source)
PRINCIPAL = web.RequestKey("principal", Principal)
