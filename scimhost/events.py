"""What the host tells `resource_event` implementations after a write committed."""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass, field
from typing import Any, Literal

log = logging.getLogger("scimhost.events")


@dataclass(frozen=True)
class ResourceEvent:
    """One committed change of a resource, with its directory record."""

    source: str
    resource_type: str
    # "remap": only the record changed, because the source's mappings did.
    action: Literal["create", "replace", "patch", "delete", "remap", "restore"]
    resource_id: str
    version: str | None
    resource: dict[str, Any] | None = None
    record: dict[str, Any] | None = field(default=None)


async def dispatch(plugins, event: ResourceEvent) -> None:
    """Call every `resource_event` implementation; a failure is logged with the plugin's name."""
    for impl in plugins.hook.resource_event.get_hookimpls():
        try:
            result = impl.function(event=event)
            if inspect.isawaitable(result):
                await result
        except Exception:
            log.exception(
                "resource_event of plugin %r failed for %s %s %s (source %s)",
                impl.plugin_name,
                event.action,
                event.resource_type,
                event.resource_id,
                event.source,
            )
