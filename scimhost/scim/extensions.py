"""Schema extensions: an extra schema attached to a resource type (RFC 7643 §3.3)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SchemaExtension:
    """One extension schema a resource type accepts; `required` is ResourceType `required`."""

    resource_type: str
    schema: dict[str, Any]
    required: bool = False

    @property
    def urn(self) -> str:
        """The extension schema's id, its URN."""
        return str(self.schema["id"])
