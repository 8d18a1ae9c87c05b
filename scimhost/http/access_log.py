"""A structured (one JSON object per line) access log."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from scimhost.config import LoggingSettings
from scimhost.http.keys import REQUEST_ID, SOURCE_SLUG
from scimhost.scim.filter import filter_attributes

# Probes answered often and unremarkably; logged only with [logging] log_health_and_metrics.
QUIET_PATHS = frozenset({"/healthz", "/readyz"})


class JsonAccessLogger(AbstractAccessLogger):
    """Logs the time, request id, method, path, status, size, duration and source (the one the
    path names, authenticated or not) of every request.

    Query strings hold filter values (user names, emails): unless [logging] query_strings is
    on, only the attribute names of a `filter` parameter are logged."""

    settings = LoggingSettings()

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        settings = self.settings
        if request.path in QUIET_PATHS and not settings.log_health_and_metrics:
            return
        entry = {
            "event": "access",
            "time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "request_id": request.get(REQUEST_ID),
            "remote": request.remote,
            "method": request.method,
            "path": request.path,
            "status": response.status,
            "bytes": response.body_length,
            "ms": round(time * 1000, 3),
            "source": request.get(SOURCE_SLUG),
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
