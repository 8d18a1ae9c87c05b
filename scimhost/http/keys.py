"""Typed keys for what the application and each request carry."""

from __future__ import annotations

from aiohttp import web

from scimhost.auth import Principal
from scimhost.host import Host
from scimhost.sources import Source

HOST = web.AppKey("host", Host)
SOURCE = web.RequestKey("source", Source)
PRINCIPAL = web.RequestKey("principal", Principal)
