"""A structured (one JSON object per line) access log."""

from __future__ import annotations

import orjson
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from scimhost.http.keys import SOURCE


class JsonAccessLogger(AbstractAccessLogger):
    """Logs method, path, status, size, duration and source of every request."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        source = request.get(SOURCE)
        entry = {
            "event": "access",
            "remote": request.remote,
            "method": request.method,
            "path": request.path,
            "query": request.query_string or None,
            "status": response.status,
            "bytes": response.body_length,
            "ms": round(time * 1000, 3),
            "source": source.slug if source else None,
            "user_agent": request.headers.get("User-Agent"),
        }
        self.logger.info(orjson.dumps(entry).decode())
