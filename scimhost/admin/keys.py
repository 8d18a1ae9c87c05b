"""Typed keys of the admin application."""

from __future__ import annotations

from aiohttp import web

# The token admin requests must present, or None when [admin] token_env is not set.
ADMIN_TOKEN = web.AppKey[str | None]("admin_token")
