"""scimhost-set: SCIM events as signed Security Event Tokens (RFC 9967), pushed to a receiver
(RFC 8935), with the signing keys published as a JWKS."""

from __future__ import annotations

from scimhost.hookspecs import hookimpl
from scimhost.plugin_routes import PluginRoute
from scimhost_set.commands import COMMAND
from scimhost_set.push import SetPushSink
from scimhost_set.routes import JWKS_PATH, sink_jwks
from scimhost_set.settings import SetPushSettings

__all__ = ["SetPushSettings", "SetPushSink"]


@hookimpl
def register_event_sinks():
    return [SetPushSink]


@hookimpl
def register_routes():
    return [PluginRoute("GET", JWKS_PATH, sink_jwks, scope="host")]


@hookimpl
def register_commands():
    return [COMMAND]
