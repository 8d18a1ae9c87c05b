"""The assembled host: settings, plugins, registries, sources, storage and auth schemes.

Everything here belongs to one Host object (the aiohttp app and the CLI each own one); nothing
is kept at module level.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pluggy

from scimhost.activity import ActivityRecorder
from scimhost.auth import AuthScheme
from scimhost.config import (
    ConfigError,
    Settings,
    SourceSettings,
    build_settings,
    read_config_file,
    read_plugin_settings,
)
from scimhost.delivery.dispatcher import Dispatcher
from scimhost.faults import armed_points, fault_point
from scimhost.mapping.service import MappingService
from scimhost.metrics import Metrics
from scimhost.plugins import PluginReport, load_plugins, require_healthy
from scimhost.profiles import SourceFacts, profile_gaps
from scimhost.rate_limits import SourceLimiter
from scimhost.registry import Registry, RegistryError, build_registry
from scimhost.scim.catalog import Catalog, build_catalog, with_indexes
from scimhost.scim.extensions import SchemaExtension
from scimhost.scim.schema import SchemaDefinitionError, schema_from_json
from scimhost.sources import Source, build_sources
from scimhost.storage.backend import AccountStore, Outbox, ResourceStore, StorageBackend, roles_of
from scimhost.storage.composed import ComposedStorage
from scimhost.tokens import generate_token, hash_token


@dataclass
class Host:
    """One configured scimhost, ready to serve or to be administered."""

    settings: Settings
    plugins: pluggy.PluginManager
    plugin_report: PluginReport
    registry: Registry
    sources: dict[str, Source]
    storage: StorageBackend
    auth_schemes: dict[str, AuthScheme]
    mappings: MappingService
    # The dispatcher running in this process, if any (woken after each local commit).
    dispatcher: Dispatcher | None = None
    # Test-only fault points armed by SCIMHOST_FAULT (scimhost/faults.py).
    faults: frozenset[str] = frozenset()
    metrics: Metrics = field(default_factory=Metrics)
    activity: ActivityRecorder = field(default_factory=ActivityRecorder)
    # Admits each source's requests by its limits; `serve_share` gives it this process's part.
    limiter: SourceLimiter = field(default_factory=lambda: SourceLimiter({}))

    def serve_share(self, workers: int) -> None:
        """This process is one of `workers` serving the host: take its share of each source's
        limits (the kernel spreads connections over the workers)."""
        self.limiter = SourceLimiter({slug: s.limits for slug, s in self.sources.items()}, share=1 / workers)

    def committed(self, source: str, resource_type: str, action: str) -> None:
        """A write committed in this process: its deliveries can go out now."""
        fault_point(self.faults, "after_commit")
        self.metrics.resource_writes.labels(source, resource_type, action).inc()
        if self.dispatcher is not None:
            self.dispatcher.wake()

    async def ensure_service_accounts(self) -> None:
        """Create the service account of every configured source that has none yet."""
        for source in self.sources.values():
            await self.storage.ensure_service_account(source.slug, source.service_account)

    async def issue_token(self, slug: str, *, grace_until: datetime | None = None) -> str:
        """A new token for the source, replacing its old one (which keeps working until
        `grace_until`, if given); only its hash is stored."""
        source = self.sources[slug]
        if source.token_from_env:
            raise ValueError(f"source {slug!r} reads its token from ${source.settings.token_env}")
        await self.storage.ensure_service_account(slug, source.service_account)
        token = generate_token()
        await self.storage.set_token_hash(slug, hash_token(token), grace_until=grace_until)
        self._credentials_changed(slug)
        return token

    async def revoke_tokens(self, slug: str) -> None:
        """End every stored token of the source at once."""
        await self.storage.revoke_tokens(slug)
        self._credentials_changed(slug)

    def config_warnings(self) -> list[str]:
        """Likely mistakes that do not stop the host, which `check` prints and `serve` logs:
        the mappings' and each auth scheme's of the sources that use it."""
        sources = list(self.sources.values())
        warnings = self.mappings.ambiguous_name_warnings(sources) + self.mappings.unknown_name_warnings(sources)
        for name, scheme in self.auth_schemes.items():
            warnings += scheme.warnings([s for s in sources if name in s.settings.auth])
        for source in sources:
            warnings += profile_gaps(
                SourceFacts(
                    source.slug,
                    source.settings.profile,
                    source.settings.passwords,
                    source.settings.auth,
                    source.limits.rate_per_second,
                    source.limits.max_concurrent,
                    self.storage.features,
                )
            )
        return warnings

    def require_sink_environment(self, names: Iterable[str] | None = None) -> None:
        """Raise ConfigError when the environment lacks what a sink needs to deliver (its
        secrets): checked by the commands that deliver, never by the ones that administer."""
        wanted = set(names) if names is not None else None
        problems = []
        for index, sink in enumerate(self.settings.events.sinks):
            if wanted is None or sink.name in wanted:
                sink_cls = self.registry.event_sinks[sink.type]
                problems += [f"events.sinks[{index}].{p}" for p in sink_cls.environment_problems(sink.options)]
        if problems:
            raise ConfigError(problems, self.settings.path)

    def _credentials_changed(self, slug: str) -> None:
        for scheme in self.auth_schemes.values():
            scheme.credentials_changed(slug)


def load_host(
    config: Path | Mapping[str, Any] | None = None,
    *,
    plugins: Iterable[tuple[str, object]] = (),
    environ: Mapping[str, str] | None = None,
    strict: bool = True,
    listen: tuple[str, int] | None = None,
) -> Host:
    """Read the config (a TOML file or an already parsed document), load plugins, build the host.

    `listen` is the address actually served when it is not the config's (`serve --host/--port`):
    it replaces `[server]` host and port, so the URLs the host prints and returns name it.

    `plugins` adds (name, plugin) pairs beside the entry points. With `strict`, sources whose
    `token_env` is unusable and sinks whose secrets are not in the environment are errors
    (serving needs them; administering does not).
    Raises ConfigError, PluginLoadError or RegistryError.
    """
    if isinstance(config, Mapping):
        path, raw = None, dict(config)
    else:
        path = Path(config) if config is not None else None
        raw = read_config_file(path)
    plugin_settings = read_plugin_settings(raw, path)
    pm, report = load_plugins(plugin_settings.disable, plugins)
    require_healthy(report)
    registry = build_registry(pm)
    settings = build_settings(
        raw,
        path=path,
        storage_backends={name: cls.settings_type for name, cls in registry.storage_backends.items()},
        storage_roles={name: roles_of(cls) for name, cls in registry.storage_backends.items()},
        auth_schemes=registry.auth_schemes,
        plugin_tables=registry.settings_tables,
        event_sinks={name: cls.settings_type for name, cls in registry.event_sinks.items()},
        mapping_runtimes=registry.mapping_runtimes,
        resource_types=list(registry.resource_types),
    )
    if listen is not None:
        settings = dataclasses.replace(
            settings, server=dataclasses.replace(settings.server, host=listen[0], port=listen[1])
        )
    if settings.storage is None:  # pragma: no cover - build_settings reports why
        raise ConfigError(["storage: no usable storage backend"], path)
    sources = build_sources(settings, catalogs(registry, settings), environ, strict=strict)
    resources_cls = registry.storage_backends[settings.storage.roles["resources"]]
    soft = [f"sources[{i}].on_delete" for i, s in enumerate(settings.sources) if s.on_delete == "soft"]
    if soft and "soft_delete" not in getattr(resources_cls, "features", frozenset()):
        raise ConfigError(
            [
                f"{where}: storage backend {settings.storage.roles['resources']!r} does not support soft delete"
                for where in soft
            ],
            path,
        )
    faults = _faults(environ if environ is not None else os.environ, path)
    storage = _storage(settings, registry, faults)
    used_schemes = {name for source in settings.sources for name in source.auth}
    auth_schemes = {name: registry.auth_schemes[name](settings, storage) for name in sorted(used_schemes)}
    metrics = Metrics()
    metrics.start_series(
        [(source.slug, list(source.catalog.resource_types)) for source in sources.values()],
        [sink.name for sink in settings.events.sinks],
    )
    mappings = MappingService(
        settings,
        registry.mapping_runtimes,
        outcome=lambda source, outcome: metrics.mapping_evaluations.labels(source, outcome).inc(),
    )
    host = Host(
        metrics=metrics,
        settings=settings,
        plugins=pm,
        plugin_report=report,
        registry=registry,
        sources=sources,
        storage=storage,
        auth_schemes=auth_schemes,
        mappings=mappings,
        faults=faults,
    )
    host.serve_share(1)
    if strict:
        host.require_sink_environment()
    return host


def _storage(settings: Settings, registry: Registry, faults: frozenset[str]) -> StorageBackend:
    """One instance per backend the roles name; composed when that is more than one."""
    assert settings.storage is not None
    instances = {
        name: registry.storage_backends[name](options, base_dir=settings.base_dir)
        for name, options in settings.storage.tables.items()
        if name in settings.storage.roles.values()
    }
    roles = settings.storage.roles
    if len(instances) == 1:
        [only] = instances.values()
        assert isinstance(only, StorageBackend)
        return only
    resources, accounts, outbox = (instances[roles[role]] for role in ("resources", "accounts", "outbox"))
    assert isinstance(resources, ResourceStore) and isinstance(accounts, AccountStore) and isinstance(outbox, Outbox)
    return ComposedStorage(
        resources,
        accounts,
        outbox,
        fault=lambda point: fault_point(faults, point),
        write_timeout=settings.storage.intent_timeout_seconds / 3,
        intent_timeout=timedelta(seconds=settings.storage.intent_timeout_seconds),
    )


def _faults(environ: Mapping[str, str], path: Path | None) -> frozenset[str]:
    try:
        return armed_points(environ)
    except ValueError as exc:
        raise ConfigError([str(exc)], path) from None


def catalogs(registry: Registry, settings: Settings) -> Callable[[int, SourceSettings], Catalog]:
    """A function giving each source its catalog: registered schemas and extensions, plus the
    config's `[[schema_extensions]]`, limited to the source's `extensions` if it lists them,
    with the `[[indexes]]` it sets."""
    extensions = list(registry.schema_extensions) + config_extensions(settings)
    schemas = list(registry.schemas.values())
    resource_types = list(registry.resource_types.values())
    indexed = {entry.resource_type: entry.attributes for entry in settings.indexes}
    try:
        shared = build_catalog(schemas, resource_types, extensions)
    except SchemaDefinitionError as exc:
        raise RegistryError([str(exc)]) from None
    try:
        shared = with_indexes(shared, indexed)
    except SchemaDefinitionError as exc:
        raise ConfigError([f"indexes: {exc}"], settings.path) from None

    def catalog_for(index: int, source: SourceSettings) -> Catalog:
        if source.extensions is None:
            return shared
        try:
            catalog = build_catalog(schemas, resource_types, extensions, accepted_extensions=source.extensions)
            return with_indexes(catalog, indexed, strict=False)
        except SchemaDefinitionError as exc:
            raise ConfigError([f"sources[{index}].extensions: {exc}"], settings.path) from None

    return catalog_for


def config_extensions(settings: Settings) -> list[SchemaExtension]:
    """The `[[schema_extensions]]` of the config, read and checked."""
    result = []
    problems = []
    for index, item in enumerate(settings.schema_extensions):
        where = f"schema_extensions[{index}]"
        doc = item.schema
        if item.file is not None:
            path = settings.base_dir / item.file
            try:
                doc = json.loads(path.read_text())
            except OSError as exc:
                problems.append(f"{where}.file: cannot read {path}: {exc.strerror}")
                continue
            except ValueError as exc:
                problems.append(f"{where}.file: {path} is not valid JSON: {exc}")
                continue
        if doc is None:
            problems.append(f"{where}: needs `file` or `schema`")
            continue
        try:
            schema_from_json(doc, f"{where}.{'file' if item.file else 'schema'}")
        except SchemaDefinitionError as exc:
            problems.append(str(exc))
            continue
        result.append(SchemaExtension(resource_type=item.resource_type, schema=doc, required=item.required))
    if problems:
        raise ConfigError(problems, settings.path)
    return result
