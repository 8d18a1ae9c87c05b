"""scimhost plugin: OAuth 2.0 client credentials per source (RFC 6749 §4.4), with client secrets
kept hashed in the store and short-lived access tokens that open only their source."""

from __future__ import annotations

from scimhost.config import SettingsTable
from scimhost.hookspecs import hookimpl
from scimhost.plugin_routes import PluginRoute
from scimhost_oauth.commands import COMMAND
from scimhost_oauth.endpoint import METADATA_PATH, PATH, metadata, token_endpoint
from scimhost_oauth.scheme import OAuthScheme
from scimhost_oauth.settings import OAuthSettings, OAuthSourceSettings

__all__ = ["OAuthScheme", "OAuthSettings", "OAuthSourceSettings"]


@hookimpl
def register_auth_schemes():
    return [OAuthScheme]


@hookimpl
def register_settings():
    return [SettingsTable("oauth", OAuthSettings, "How long a process trusts an access token it checked.")]


@hookimpl
def register_routes():
    # Its clients have no token yet: the endpoint authenticates them by their client secret.
    return [
        PluginRoute("POST", PATH, token_endpoint, authenticated=False),
        PluginRoute("GET", METADATA_PATH, metadata, scope="host"),
    ]


@hookimpl
def register_commands():
    return [COMMAND]
