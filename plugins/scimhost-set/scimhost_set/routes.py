"""The signing keys of each SET sink, published as a JWKS for receivers to verify with."""

from __future__ import annotations

from aiohttp import web

from scimhost.http.keys import HOST
from scimhost_set.keys import KeyProblem, jwks, load_keys

JWKS_PATH = "/.well-known/scimhost-set/{sink}/jwks.json"


def jwks_url(public_url: str, sink: str) -> str:
    return public_url + JWKS_PATH.format(sink=sink)


async def sink_jwks(request: web.Request) -> web.Response:
    """The public keys of a configured SET sink (every key of its key_env, the signing one first)."""
    host = request.app[HOST]
    name = request.match_info["sink"]
    found = next((s for s in host.settings.events.sinks if s.name == name and s.type in ("set-push", "set-poll")), None)
    if found is None:
        raise web.HTTPNotFound(text="no SET sink of that name")
    try:
        document = jwks(load_keys(found.options.key_env))
    except KeyProblem:
        raise web.HTTPServiceUnavailable(text="the sink's keys are not available") from None
    return web.json_response(
        document, headers={"Cache-Control": "max-age=300"}, content_type="application/jwk-set+json"
    )
