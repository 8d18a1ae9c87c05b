"""A structured (one JSON object per line) access log."""

from __future__ import annotations

import orjson
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from scimhost.config import LoggingSettings
from scimhost.http.keys import SOURCE
from scimhost.scim.filter import filter_attributes

# Probes answered often and unremarkably; logged only with [logging] log_health_and_metrics.
QUIET_PATHS = frozenset({"/healthz", "/readyz"})


class JsonAccessLogger(AbstractAccessLogger):
    """Logs method, path, status, size, duration and source of every request.

    Query strings hold filter values (user names, emails): unless [logging] query_strings is
    on, only the attribute names of a `filter` parameter are logged."""

    settings = LoggingSettings()

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        settings = self.settings
        if request.path in QUIET_PATHS and not settings.log_health_and_metrics:
            return
        source = request.get(SOURCE)
        entry = {
            "event": "access",
            "remote": request.remote,
            "method": request.method,
            "path": request.path,
            "status": response.status,
            "bytes": response.body_length,
            "ms": round(time * 1000, 3),
            "source": source.slug if source else None,
            "user_agent": request.headers.get("User-Agent"),
        }
        if settings.query_strings:
            entry["query"] = request.query_string or None
        elif "filter" in request.query:
            entry["filter_attributes"] = filter_attributes(request.query["filter"])
        self.logger.info(orjson.dumps(entry).decode())


def access_logger_for(settings: LoggingSettings) -> type[JsonAccessLogger]:
    """The access logger class for these settings (aiohttp makes the instance itself)."""
    return type("ConfiguredAccessLogger", (JsonAccessLogger,), {"settings": settings})
