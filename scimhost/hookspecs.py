"""Every plugin hook of scimhost, declared and documented in one place.

Plugins implement these with `@scimhost.hookimpl` and are found through the entry-point group
`scimhost`. Capability hooks are named `register_*`, take no request state and return lists; the
host merges their results into registries and the config picks implementations by name.
docs/plugin-hooks.md documents each hook for plugin authors (a test keeps the two in step).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from aiohttp import web

    from scimhost.auth import AuthScheme
    from scimhost.cli.plugin_commands import PluginCommand
    from scimhost.config import SettingsTable
    from scimhost.delivery.sink import EventSink
    from scimhost.events import ResourceEvent
    from scimhost.mapping.runtime import MappingRuntime
    from scimhost.plugin_routes import PluginRoute
    from scimhost.scim.extensions import SchemaExtension
    from scimhost.sources import Source
    from scimhost.storage.backend import Store

PROJECT = "scimhost"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_storage_backends() -> list[type[Store]]:
    """Storage backend classes this plugin provides: each a StorageBackend (every role) or a
    store of some roles (ResourceStore, AccountStore, Outbox).

    Each class has a unique `name` (what `[storage] backend = "..."`, or a role's
    `[storage] resources|accounts|outbox = "..."`, selects) and a `settings_type` dataclass
    that types its `[storage.<name>]` table. The built-in store takes the roles the chosen
    backend does not implement.
    """


@hookspec
def register_auth_schemes() -> list[type[AuthScheme]]:
    """Auth scheme classes this plugin provides.

    Each class has a unique `name` (what a source's `auth = [...]` selects), authenticates a
    request for one source, and describes itself for ServiceProviderConfig
    `authenticationSchemes`.
    """


@hookspec
def register_schemas() -> list[dict[str, Any]]:
    """SCIM Schema resources (RFC 7643 §7) this plugin defines, as JSON-shaped dicts."""


@hookspec
def register_resource_types() -> list[dict[str, Any]]:
    """SCIM ResourceType resources (RFC 7643 §6) this plugin defines, as JSON-shaped dicts."""


@hookspec
def register_schema_extensions() -> list[SchemaExtension]:
    """Schema extensions to attach to a resource type: (resource type, schema, required)."""


@hookspec
def register_mapping_runtimes() -> list[type[MappingRuntime]]:
    """Mapping runtime classes: each compiles and evaluates property-mapping expressions.

    Each class has a unique `name` (what a source's mapping runtime setting selects) and knows
    its language's identifier rules.
    """


@hookspec
def register_event_sinks() -> list[type[EventSink]]:
    """Event sink classes: durable delivery targets of the event log (webhooks, message buses).

    Each class has a unique `name` (what `[[events.sinks]] type = "..."` selects), a
    `settings_type` dataclass typing its own keys of that entry, `start()` / `close()`, and
    `deliver(envelopes) -> list[Outcome]`: one outcome per event (delivered, retry, permanent,
    pause). The dispatcher keeps each resource's events in commit order and delivers each at
    least once.
    """


@hookspec
def register_settings() -> list[SettingsTable]:
    """Top-level TOML tables this plugin owns, each with a dataclass type and its defaults.

    The host validates the table (unknown keys and wrong types are errors naming the key) and
    keeps the result in `Settings.plugin_tables[name]`.
    """


@hookspec
def register_routes() -> list[PluginRoute]:
    """HTTP routes this plugin serves: below every source's base URL (the source's lookup,
    authentication unless the route opts out, body limit and metrics apply as for the SCIM
    endpoints), or at an absolute path on the host.

    A route that clashes with a built-in one or another plugin's is an error naming the plugin.
    """


@hookspec
def register_commands() -> list[PluginCommand]:
    """`scimhost` subcommands this plugin adds, each a name, a help line and a function that
    adds its arguments (or its own subcommands) to the parser it is given and sets `func`.

    A name a built-in command uses is refused (with a warning naming the plugin).
    """


@hookspec
def validate_resource(
    source: Source, resource_type: str, resource: dict[str, Any], previous: dict[str, Any] | None
) -> None:
    """Veto a write by raising `ScimError`; every implementation runs before the write is stored.

    `resource` is the document about to be stored, `previous` the stored one (None on create).
    """


@hookspec
async def resource_event(event: ResourceEvent) -> None:
    """Called after a write committed, in the writing process: best effort, at most once
    (lost if the process dies first). For caches and logs; to keep another system in step,
    register an event sink instead (`register_event_sinks`).

    May be a coroutine function. Failures are logged with the plugin's name and never undo the
    write.
    """


@hookspec(firstresult=True)
def handle_exception(request: web.Request, exc: BaseException) -> web.StreamResponse | None:
    """Turn an exception raised while serving a SCIM path into a response.

    The first non-None result wins; the built-in `errors` plugin answers last with a SCIM error
    body (RFC 7644 §3.12).
    """
