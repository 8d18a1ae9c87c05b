"""The interface a mapping runtime plugin implements (`register_mapping_runtimes`)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar


class MappingError(Exception):
    """An expression failed to compile or evaluate; the message is safe to show an operator."""


@dataclass(frozen=True)
class EvaluationLimits:
    """What one evaluation may use inside a worker."""

    max_iterations: int = 100_000
    max_result_bytes: int = 65_536


class MappingRuntime(ABC):
    """Compiles property-mapping expressions and evaluates them against variables.

    `compile` runs in the host (at config load, so broken expressions stop `check` and
    `serve`); `evaluate` runs in a worker process, which builds the runtime by its class path,
    so a runtime class must be importable and take no constructor arguments.
    """

    name: ClassVar[str]

    @abstractmethod
    def compile(self, expression: str, *, label: str) -> None:
        """Check one expression; raise MappingError naming `label` if it is broken."""

    @abstractmethod
    def is_valid_name(self, name: str) -> bool:
        """Whether `name` can be a variable of an expression in this runtime's language."""

    def variable_names(self, expression: str) -> frozenset[str] | None:
        """The names an expression reads from its variables (not the runtime's builtins, not
        names it binds itself), for `scimhost check` to warn about likely typos; None if the
        runtime cannot tell. A name the variables lack must evaluate to None (null), so a
        mapping of an optional attribute never fails a write because a client left it out."""
        return None

    @abstractmethod
    def evaluate(self, expression: str, variables: dict[str, Any], limits: EvaluationLimits) -> Any:
        """The value of one expression (compiled again or from a cache) for these variables.

        Raise MappingError with a message fit for an operator; never let the expression reach
        anything but `variables` and the runtime's vetted builtins."""
