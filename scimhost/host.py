"""The assembled host: settings, plugins, registries, sources, storage and auth schemes.

Everything here belongs to one Host object (the aiohttp app and the CLI each own one); nothing
is kept at module level.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pluggy

from scimhost.auth import AuthScheme
from scimhost.config import ConfigError, Settings, build_settings, read_config_file, read_plugin_settings
from scimhost.plugins import PluginReport, load_plugins, require_healthy
from scimhost.registry import Registry, build_registry
from scimhost.sources import Source, build_sources
from scimhost.storage.backend import StorageBackend
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

    async def ensure_service_accounts(self) -> None:
        """Create the service account of every configured source that has none yet."""
        for source in self.sources.values():
            await self.storage.ensure_service_account(source.slug, source.service_account)

    async def issue_token(self, slug: str) -> str:
        """A new token for the source, replacing its old one; only its hash is stored."""
        source = self.sources[slug]
        if source.token_from_env:
            raise ValueError(f"source {slug!r} reads its token from ${source.settings.token_env}")
        await self.storage.ensure_service_account(slug, source.service_account)
        token = generate_token()
        await self.storage.set_token_hash(slug, hash_token(token))
        return token


def load_host(
    config: Path | Mapping[str, Any] | None = None,
    *,
    plugins: Iterable[tuple[str, object]] = (),
    environ: Mapping[str, str] | None = None,
    strict: bool = True,
) -> Host:
    """Read the config (a TOML file or an already parsed document), load plugins, build the host.

    `plugins` adds (name, plugin) pairs beside the entry points. With `strict`, sources whose
    `token_env` is unusable are errors (serving needs them; administering does not).
    Raises ConfigError, PluginLoadError or RegistryError.
    """
    path = Path(config) if isinstance(config, (str, Path)) else None
    raw = read_config_file(path) if config is None or path is not None else dict(config)
    plugin_settings = read_plugin_settings(raw, path)
    pm, report = load_plugins(plugin_settings.disable, plugins)
    require_healthy(report)
    registry = build_registry(pm)
    settings = build_settings(
        raw,
        path=path,
        storage_backends={name: cls.settings_type for name, cls in registry.storage_backends.items()},
        auth_schemes=registry.auth_schemes,
        plugin_tables=registry.settings_tables,
    )
    if settings.storage is None:  # pragma: no cover - build_settings reports why
        raise ConfigError(["storage: no usable storage backend"], path)
    sources = build_sources(settings, environ, strict=strict)
    backend_cls = registry.storage_backends[settings.storage.backend]
    storage = backend_cls(settings.storage.options, base_dir=settings.base_dir)
    used_schemes = {name for source in settings.sources for name in source.auth}
    auth_schemes = {name: registry.auth_schemes[name](settings, storage) for name in sorted(used_schemes)}
    return Host(
        settings=settings,
        plugins=pm,
        plugin_report=report,
        registry=registry,
        sources=sources,
        storage=storage,
        auth_schemes=auth_schemes,
    )
