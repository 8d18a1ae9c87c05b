"""Plugin loading: one plugin manager per application, entry points loaded one by one.

A plugin that fails to import or to register is reported with its entry-point name,
distribution and version, and the host refuses to start: a missing auth or storage plugin must
never degrade silently.
"""

from __future__ import annotations

import importlib.metadata
import traceback
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pluggy

from scimhost import hookspecs

ENTRY_POINT_GROUP = hookspecs.PROJECT


@dataclass(frozen=True)
class PluginInfo:
    """A plugin that loaded."""

    name: str
    distribution: str | None
    version: str | None
    module: str
    hooks: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "module": self.module,
            "hooks": list(self.hooks),
        }


@dataclass(frozen=True)
class PluginFailure:
    """A plugin that could not be loaded, with what went wrong."""

    name: str
    distribution: str | None
    version: str | None
    entry_point: str
    error: str
    traceback: str = ""

    def describe(self) -> str:
        dist = f"{self.distribution} {self.version}" if self.distribution else "no distribution"
        return f"plugin {self.name!r} ({dist}, entry point {self.entry_point!r}) failed to load: {self.error}"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "entry_point": self.entry_point,
            "error": self.error,
        }


@dataclass
class PluginReport:
    """What loading found: plugins loaded, failures, and names blocked by `[plugins] disable`."""

    loaded: list[PluginInfo] = field(default_factory=list)
    failures: list[PluginFailure] = field(default_factory=list)
    disabled: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "plugins": [p.to_json() for p in self.loaded],
            "failures": [f.to_json() for f in self.failures],
            "disabled": list(self.disabled),
        }


class PluginLoadError(Exception):
    """One or more plugins failed to load; the host must not start."""

    def __init__(self, failures: Sequence[PluginFailure]) -> None:
        self.failures = list(failures)
        super().__init__("\n".join(f.describe() for f in self.failures))


def load_plugins(
    disable: Iterable[str] = (),
    extra: Iterable[tuple[str, object]] = (),
    *,
    group: str = ENTRY_POINT_GROUP,
) -> tuple[pluggy.PluginManager, PluginReport]:
    """A new plugin manager holding every entry point of `group` not disabled, plus `extra`.

    `extra` is (name, plugin object) pairs registered after the entry points, for embedding and
    tests. Failures are collected in the report rather than raised; see `require_healthy`.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    report = PluginReport()
    disabled = set(disable)
    for name in sorted(disabled):
        pm.set_blocked(name)

    providers: dict[str, importlib.metadata.EntryPoint] = {}
    for ep in sorted(importlib.metadata.entry_points(group=group), key=lambda e: e.name):
        dist, version = _dist_of(ep)
        if ep.name in disabled:
            report.disabled.append(ep.name)
            continue
        if ep.name in providers:
            other_dist, other_version = _dist_of(providers[ep.name])
            report.failures.append(
                PluginFailure(
                    ep.name,
                    dist,
                    version,
                    ep.value,
                    f"the plugin name is also used by {other_dist} {other_version} "
                    f"(entry point {providers[ep.name].value!r})",
                )
            )
            continue
        providers[ep.name] = ep
        try:
            plugin = ep.load()
        except (Exception, SystemExit) as exc:  # a plugin may raise anything at import
            report.failures.append(
                PluginFailure(ep.name, dist, version, ep.value, _one_line(exc), traceback.format_exc())
            )
            continue
        _register(pm, report, plugin, ep.name, dist, version, ep.value)

    for name, plugin in extra:
        if name in disabled:
            report.disabled.append(name)
            continue
        _register(pm, report, plugin, name, None, None, getattr(plugin, "__name__", repr(plugin)))
    return pm, report


def require_healthy(report: PluginReport) -> None:
    """Raise PluginLoadError if any plugin failed."""
    if report.failures:
        raise PluginLoadError(report.failures)


def _register(
    pm: pluggy.PluginManager,
    report: PluginReport,
    plugin: object,
    name: str,
    dist: str | None,
    version: str | None,
    value: str,
) -> None:
    try:
        pm.register(plugin, name=name)
        _check_known_hooks(pm, plugin)
    except Exception as exc:  # pluggy.PluginValidationError, ValueError on duplicate names
        if pm.is_registered(plugin):
            pm.unregister(plugin)
        report.failures.append(PluginFailure(name, dist, version, value, _one_line(exc)))
        return
    hooks = tuple(sorted(caller.name for caller in pm.get_hookcallers(plugin) or ()))
    module = getattr(plugin, "__name__", type(plugin).__module__)
    report.loaded.append(PluginInfo(name, dist, version, module, hooks))


def _check_known_hooks(pm: pluggy.PluginManager, plugin: object) -> None:
    """A hook implementation without a spec is a typo; refuse it rather than ignore it."""
    for caller in pm.get_hookcallers(plugin) or ():
        if not caller.has_spec():
            raise pluggy.PluginValidationError(plugin, f"unknown hook {caller.name!r}")


def _dist_of(ep: importlib.metadata.EntryPoint) -> tuple[str | None, str | None]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return None, None
    return dist.metadata["Name"], dist.version


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
