"""The source URL layout, written once: every source's SCIM endpoints live under
`/source/scim/<slug>/v2`."""

from __future__ import annotations

import re

SCIM_PREFIX = "/source/scim"
VERSION = "v2"
# The base path as an aiohttp route template (`{slug}` matched by the router).
ROUTE_ROOT = f"{SCIM_PREFIX}/{{slug}}/{VERSION}"

# The source is read from the path itself, not from the matched route, so that unknown slugs
# and unknown endpoints of a known source are told apart (404 vs 401 vs 404/405).
SOURCE_PATH = re.compile(rf"^{re.escape(SCIM_PREFIX)}/(?P<slug>[^/]+)/{VERSION}(?:/|$)")
# A source's path without the version of its base URL (`/source/scim/demo/Users`).
SOURCE_WITHOUT_VERSION = re.compile(rf"^{re.escape(SCIM_PREFIX)}/(?P<slug>[^/]+)(?:/|$)")


def base_path(slug: str) -> str:
    """The path every SCIM endpoint of the source lives under."""
    return f"{SCIM_PREFIX}/{slug}/{VERSION}"


def is_scim_path(path: str) -> bool:
    """Whether errors on this path are answered with SCIM error bodies."""
    return path == SCIM_PREFIX or path.startswith(SCIM_PREFIX + "/")


def path_within(path: str, slug: str) -> str:
    """The part of a request path after the source's base path (`/Users/1`), `/` for the base."""
    return path[len(base_path(slug)) :] or "/"
