"""The admin listener's routes: pages for people, the same data as JSON under /api, /metrics."""

from __future__ import annotations

from datetime import UTC, datetime
from importlib import resources

import aiohttp_jinja2
import orjson
from aiohttp import web

from scimhost.admin import views
from scimhost.admin.auth import login, logout
from scimhost.http.keys import HOST
from scimhost.metrics import SinkGauges
from scimhost.storage.backend import StorageError


def _json(data) -> web.Response:
    return web.Response(
        body=orjson.dumps(views.as_json(data), option=orjson.OPT_INDENT_2), content_type="application/json"
    )


def _int(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() and len(value) < 19 else None


# --- data shared by a page and its JSON twin ---------------------------------------------------


async def _overview(request: web.Request):
    return await views.overview(request.app[HOST])


async def _resources(request: web.Request):
    q = request.query
    source = views.source_of(request.app[HOST], request.match_info["slug"])
    type_name = q.get("type") or next(iter(source.catalog.resource_types))
    return await views.resources(request.app[HOST], source.slug, type_name, q.get("filter", ""), q.get("cursor", ""))


async def _resource(request: web.Request):
    m = request.match_info
    page = _int(request.query.get("members_page")) or 1
    return await views.resource(request.app[HOST], m["slug"], m["type"], m["id"], page)


async def _changes(request: web.Request):
    return await views.changes(request.app[HOST], _int(request.query.get("before")))


async def _event(request: web.Request):
    seq = _int(request.match_info["seq"])
    if seq is None:
        raise views.NotFound("an event is named by its sequence number")
    return await views.event(request.app[HOST], request.match_info["slug"], seq)


async def _failures(request: web.Request):
    return await views.failures(request.app[HOST], request.match_info["slug"])


PAGES = [
    ("/", "overview.html", _overview),
    ("/sources/{slug}/failures", "failures.html", _failures),
    ("/sources/{slug}", "source.html", _resources),
    ("/sources/{slug}/events/{seq}", "event.html", _event),
    ("/sources/{slug}/{type}/{id}", "resource.html", _resource),
    ("/changes", "changes.html", _changes),
]


def _page(template: str, load):
    async def page(request: web.Request) -> web.Response:
        try:
            data = await load(request)
        except views.NotFound as exc:
            return aiohttp_jinja2.render_template("error.html", request, {"message": str(exc)}, status=404)
        except StorageError as exc:
            return aiohttp_jinja2.render_template("error.html", request, {"message": f"storage: {exc}"}, status=503)
        return aiohttp_jinja2.render_template(template, request, {"data": data})

    return page


def _api(load):
    async def api(request: web.Request) -> web.Response:
        try:
            return _json(await load(request))
        except views.NotFound as exc:
            return web.json_response({"error": str(exc)}, status=404)
        except StorageError as exc:
            return web.json_response({"error": f"storage: {exc}"}, status=503)

    return api


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text format: every process's metrics, and each sink's backlog from the store."""
    host = request.app[HOST]
    gauges = []
    try:
        for sink in await views.sinks(host, datetime.now(UTC)):
            gauges.append(
                SinkGauges(sink["name"], sink["pending"], sink["dead"], sink["oldest_pending_seconds"] or 0.0)
            )
    except StorageError:
        pass  # the request and write metrics are still worth reading
    body, content_type = host.metrics.exposition(gauges)
    return web.Response(body=body, headers={"Content-Type": content_type})


# The pages' stylesheet and script, read once: files of the package, not of the working directory.
STATIC = {
    name: (resources.files("scimhost.admin") / "static" / name).read_bytes() for name in ("admin.css", "admin.js")
}
STATIC_TYPES = {"admin.css": "text/css", "admin.js": "text/javascript"}


async def static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in STATIC:
        raise web.HTTPNotFound()
    return web.Response(body=STATIC[name], content_type=STATIC_TYPES[name])


def setup_routes(app: web.Application) -> None:
    router = app.router
    router.add_get("/static/{name}", static)
    for path, template, load in PAGES:
        router.add_get(path, _page(template, load))
        router.add_get("/api" + (path if path != "/" else "/overview"), _api(load))
    router.add_get("/metrics", metrics)
    router.add_post("/login", login)
    router.add_post("/logout", logout)
