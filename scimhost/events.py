"""What the host tells `resource_event` implementations after a write committed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(frozen=True)
class ResourceEvent:
    """One committed change of a resource, with its directory record."""

    source: str
    resource_type: str
    action: Literal["create", "replace", "patch", "delete"]
    resource_id: str
    version: str | None
    resource: dict[str, Any] | None = None
    record: dict[str, Any] | None = field(default=None)
