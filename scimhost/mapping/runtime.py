"""The interface a mapping runtime plugin implements (`register_mapping_runtimes`)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar


class MappingError(Exception):
    """An expression failed to compile or evaluate; the message is safe to show an operator."""


class MappingRuntime(ABC):
    """Compiles property-mapping expressions and evaluates them against variables."""

    name: ClassVar[str]

    @abstractmethod
    def compile(self, expression: str, *, label: str) -> Any:
        """Check and compile one expression; raise MappingError naming `label` if it is broken."""

    @abstractmethod
    def is_valid_name(self, name: str) -> bool:
        """Whether `name` can be a variable of an expression in this runtime's language."""
