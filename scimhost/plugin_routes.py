"""The HTTP routes plugins add (`register_routes`): below every source's base URL, or on the host."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True)
class PluginRoute:
    """One route a plugin adds."""

    method: str
    # "source": relative to each source's base URL ("/oauth/token" is served at
    # /source/scim/<slug>/v2/oauth/token, with the source in `request[SOURCE]`); "host": an
    # absolute path outside the SCIM paths ("/.well-known/...").
    path: str
    handler: Handler
    scope: Literal["source", "host"] = "source"
    # Source routes: whether the source's auth schemes must authenticate the request first, as
    # for every SCIM endpoint. False for an endpoint whose clients have no token yet (a token
    # endpoint), which authenticates them itself.
    authenticated: bool = True

    def problem(self) -> str | None:
        """What is wrong with the route, for the registry's error; None when nothing."""
        if self.method not in METHODS:
            return f"method {self.method!r} is not one of {', '.join(sorted(METHODS))}"
        if self.scope not in ("source", "host"):
            return f"scope {self.scope!r} is not 'source' or 'host'"
        if not self.path.startswith("/"):
            return f"path {self.path!r} must start with '/'"
        if self.scope == "source" and "{slug}" in self.path:
            return f"path {self.path!r}: a source route is below the source's base URL already"
        if self.scope == "host" and not self.authenticated:
            return "a host route has no source to authenticate for: leave authenticated at its default"
        return None
