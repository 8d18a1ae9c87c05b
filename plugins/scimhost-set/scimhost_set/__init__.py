"""scimhost-set: SCIM events as signed Security Event Tokens (RFC 9967), pushed to a receiver
(RFC 8935) or polled by one (RFC 8936), with the signing keys published as a JWKS."""

from __future__ import annotations

from scimhost.hookspecs import hookimpl
from scimhost.plugin_routes import PluginRoute
from scimhost_set.commands import COMMAND
from scimhost_set.poll import POLL_PATH, SetPollSink, poll
from scimhost_set.push import SetPushSink
from scimhost_set.routes import JWKS_PATH, sink_jwks
from scimhost_set.settings import SetPollSettings, SetPushSettings

__all__ = ["SetPollSettings", "SetPollSink", "SetPushSettings", "SetPushSink"]


@hookimpl
def register_event_sinks():
    return [SetPushSink, SetPollSink]


@hookimpl
def register_routes():
    # The poll endpoint authenticates its receiver by the feed's own token.
    return [PluginRoute("GET", JWKS_PATH, sink_jwks, scope="host"), PluginRoute("POST", POLL_PATH, poll, scope="host")]


@hookimpl
def register_commands():
    return [COMMAND]
