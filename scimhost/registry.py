"""Registries merged from the `register_*` hooks; a name registered twice names both plugins."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pluggy

from scimhost.auth import AuthScheme
from scimhost.config import CORE_TABLES, SettingsTable
from scimhost.delivery.sink import EventSink
from scimhost.mapping.runtime import MappingRuntime
from scimhost.plugin_routes import PluginRoute
from scimhost.scim.extensions import SchemaExtension
from scimhost.storage.backend import Store


class RegistryError(Exception):
    """Plugins registered something inconsistent; `problems` holds one line each."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass(frozen=True)
class Registry:
    """What the loaded plugins provide, by name, and which plugin provided each name."""

    storage_backends: dict[str, type[Store]] = field(default_factory=dict)
    auth_schemes: dict[str, type[AuthScheme]] = field(default_factory=dict)
    mapping_runtimes: dict[str, type[MappingRuntime]] = field(default_factory=dict)
    event_sinks: dict[str, type[EventSink]] = field(default_factory=dict)
    settings_tables: dict[str, SettingsTable] = field(default_factory=dict)
    schemas: dict[str, dict[str, Any]] = field(default_factory=dict)
    resource_types: dict[str, dict[str, Any]] = field(default_factory=dict)
    schema_extensions: list[SchemaExtension] = field(default_factory=list)
    # (plugin name, route), in the order the plugins registered them.
    routes: list[tuple[str, PluginRoute]] = field(default_factory=list)
    # (kind, name) -> plugin name
    providers: dict[tuple[str, str], str] = field(default_factory=dict)


def build_registry(pm: pluggy.PluginManager) -> Registry:
    """Call every `register_*` hook and merge the results."""
    problems: list[str] = []
    providers: dict[tuple[str, str], str] = {}

    def by_name(kind: str, hook: str, key: Callable[[Any], str]) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for plugin, item in _collect(pm, hook, problems):
            try:
                name = key(item)
            except (AttributeError, KeyError, TypeError):
                problems.append(f"plugin {plugin!r}: {hook} returned {item!r}, which has no name")
                continue
            if (kind, name) in providers:
                problems.append(f"{kind} {name!r} is registered by plugins {providers[(kind, name)]!r} and {plugin!r}")
                continue
            providers[(kind, name)] = plugin
            merged[name] = item
        return merged

    registry = Registry(
        storage_backends=by_name("storage backend", "register_storage_backends", lambda c: c.name),
        auth_schemes=by_name("auth scheme", "register_auth_schemes", lambda c: c.name),
        mapping_runtimes=by_name("mapping runtime", "register_mapping_runtimes", lambda c: c.name),
        event_sinks=by_name("event sink", "register_event_sinks", lambda c: c.name),
        settings_tables=by_name("settings table", "register_settings", lambda t: t.name),
        schemas=by_name("schema", "register_schemas", lambda s: s["id"]),
        resource_types=by_name("resource type", "register_resource_types", lambda r: r["name"]),
        schema_extensions=[item for _, item in _collect(pm, "register_schema_extensions", problems)],
        routes=_routes(pm, problems),
        providers=providers,
    )
    for name in registry.settings_tables:
        if name in CORE_TABLES:
            problems.append(
                f"settings table {name!r} of plugin {providers[('settings table', name)]!r} clashes with a core table"
            )
    if problems:
        raise RegistryError(problems)
    return registry


def _routes(pm: pluggy.PluginManager, problems: list[str]) -> list[tuple[str, PluginRoute]]:
    routes = []
    for plugin, route in _collect(pm, "register_routes", problems):
        problem = route.problem() if isinstance(route, PluginRoute) else "it is not a PluginRoute"
        if problem:
            problems.append(f"plugin {plugin!r}: register_routes returned {route!r}: {problem}")
        else:
            routes.append((plugin, route))
    return routes


def collect(pm: pluggy.PluginManager, hook: str, problems: list[str]) -> Iterable[tuple[str, Any]]:
    """(plugin name, item) for every item every implementation of `hook` returned; what went
    wrong is added to `problems`."""
    return _collect(pm, hook, problems)


def _collect(pm: pluggy.PluginManager, hook: str, problems: list[str]) -> Iterable[tuple[str, Any]]:
    """(plugin name, item) for every item every implementation of `hook` returned."""
    pairs: list[tuple[str, Any]] = []
    for impl in getattr(pm.hook, hook).get_hookimpls():
        try:
            result = impl.function()
        except Exception as exc:
            problems.append(f"plugin {impl.plugin_name!r}: {hook} raised {type(exc).__name__}: {exc}")
            continue
        if result is None:
            continue
        if not isinstance(result, (list, tuple)):
            problems.append(f"plugin {impl.plugin_name!r}: {hook} must return a list, not {type(result).__name__}")
            continue
        pairs.extend((impl.plugin_name, item) for item in result)
    return pairs
