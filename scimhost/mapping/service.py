"""Property mappings of every source: compiled at load, evaluated per write, merged into the
directory record the host keeps beside each resource."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from scimhost.config import MappingPoolSettings, Settings
from scimhost.mapping.pool import EvaluationTimeout, PoolSaturated, WorkerPool, evaluate_batch, limits_of
from scimhost.mapping.runtime import MappingError, MappingRuntime
from scimhost.mapping.variables import HOST_VARIABLES, Variable, bind, variable_table
from scimhost.scim.errors import ScimError
from scimhost.scim.resource_types import ResourceType

log = logging.getLogger("scimhost.mapping")


@dataclass(frozen=True)
class CompiledMapping:
    name: str
    resource_type: str
    expression: str
    # Top-level attributes no schema declares that the operator says the client sends.
    undeclared_attributes: tuple[str, ...] = ()


class MappingFailed(Exception):
    """A mapping raised, timed out, hit a limit or returned a non-dict."""

    def __init__(self, source: str, mapping: str, reason: str) -> None:
        super().__init__(f"property mapping {mapping!r} of source {source!r} failed: {reason}")
        self.source = source
        self.mapping = mapping
        self.reason = reason


def schema_keys(resource_type: ResourceType) -> list[str]:
    """The top-level keys a document of this resource type can have."""
    keys = ["schemas", "id", "externalId", *(a.name for a in resource_type.schema.attributes.values())]
    return keys + [schema.id for schema, _ in resource_type.extensions]


def default_record(resource_type: str, document: dict[str, Any]) -> dict[str, Any]:
    """The record before any mapping: what downstream consumers get with no configuration."""
    if resource_type == "Group":
        return {"name": document.get("displayName"), "attributes": document}
    name = document.get("name") or {}
    full = " ".join(p for p in (name.get("givenName"), name.get("familyName")) if p)
    emails = [e for e in document.get("emails") or [] if isinstance(e, dict)]
    primary = next((e for e in emails if e.get("primary") is True), emails[0] if emails else None)
    return {
        "username": document.get("userName"),
        "name": document.get("displayName") or name.get("formatted") or full or document.get("userName"),
        "email": primary.get("value") if primary else None,
        "is_active": document.get("active", True),
        "attributes": document,
    }


def merge(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """`update` onto `base`: later keys win, nested dicts merge."""
    result = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merge(result[key], value)
        else:
            result[key] = value
    return result


class MappingService:
    """Evaluates each source's mappings with its runtime, in the worker pool (or inline)."""

    def __init__(
        self,
        settings: Settings,
        runtimes: Mapping[str, type[MappingRuntime]],
        outcome: Callable[[str, str], None] = lambda source, outcome: None,
    ) -> None:
        """`outcome(source, "ok" | "error" | "timeout" | "saturated")` is told of each evaluation."""
        self._outcome = outcome
        self.pool_settings: MappingPoolSettings = settings.mappings
        self.limits = limits_of(settings.mappings)
        self._runtime_classes = dict(runtimes)
        self._runtimes: dict[str, MappingRuntime] = {}
        self._source_runtime: dict[str, str] = {}
        self._mappings: dict[str, list[CompiledMapping]] = {}
        self._pools: dict[str, WorkerPool] = {}
        self._tables: dict[tuple[str, tuple[str, ...]], list[Variable]] = {}
        # The config named only registered runtimes and compiling expressions (config.py).
        for source in settings.sources:
            self._source_runtime[source.slug] = source.mapping_runtime
            self._mappings[source.slug] = [
                CompiledMapping(mapping.name, mapping.resource_type, mapping.expression, mapping.undeclared_attributes)
                for mapping in source.mappings
            ]

    def runtime(self, name: str) -> MappingRuntime:
        if name not in self._runtimes:
            self._runtimes[name] = self._runtime_classes[name]()
        return self._runtimes[name]

    def runtime_of(self, slug: str) -> MappingRuntime:
        return self.runtime(self._source_runtime[slug])

    async def start(self) -> None:
        """Start a worker pool for each runtime a source with mappings uses (process mode)."""
        used = {name for slug, name in self._source_runtime.items() if self._mappings.get(slug)}
        await self._start(used)

    async def start_for(self, slug: str) -> None:
        """Start the pool of one source's runtime, mappings or not (`mappings test`)."""
        await self._start({self._source_runtime[slug]})

    async def _start(self, runtime_names: set[str]) -> None:
        if self.pool_settings.mode != "process":
            return
        for name in sorted(runtime_names - set(self._pools)):
            pool = WorkerPool(self._runtime_classes[name], self.pool_settings)
            await pool.start()
            self._pools[name] = pool

    def pool_stats(self) -> dict[str, tuple[int, int, int]]:
        """Per runtime with a worker pool: workers, busy workers, evaluations waiting."""
        return {name: pool.stats() for name, pool in self._pools.items()}

    async def close(self) -> None:
        pools, self._pools = self._pools, {}
        for pool in pools.values():
            await pool.close()

    def _variable_table(self, runtime_name: str, runtime: MappingRuntime, keys: tuple[str, ...]) -> list[Variable]:
        """`variable_table` of these keys, remembered: clients send the same few key sets."""
        cache_key = (runtime_name, keys)
        table = self._tables.get(cache_key)
        if table is None:
            table = variable_table(keys, runtime.is_valid_name)
            if len(self._tables) < 1024:  # documents with ever new keys are not worth remembering
                self._tables[cache_key] = table
        return table

    def variables(
        self, slug: str, resource_type: ResourceType, document: Mapping[str, Any] | None = None
    ) -> list[Variable]:
        """The variables an expression of this source sees for this resource type: the declared
        schemas' keys, and with a document the keys it brings (undeclared ones included)."""
        keys = (*schema_keys(resource_type), *(document or {}))
        return variable_table(keys, self.runtime_of(slug).is_valid_name)

    def ambiguous_name_warnings(self, sources: Iterable[Any]) -> list[str]:
        """One line per declared top-level key that has no variable because another key (or a
        host variable) sanitizes to the same name; a document's undeclared keys are judged the
        same way when it arrives, and `scimhost mappings variables` shows them."""
        warnings = []
        for source in sources:
            for resource_type in source.catalog.resource_types.values():
                for variable in self.variables(source.slug, resource_type):
                    if not variable.bound:
                        warnings.append(
                            f"source {source.slug!r} {resource_type.name} attribute {variable.key!r} is no "
                            f"expression variable: {variable.unbound_because}"
                        )
        return warnings

    def unknown_name_warnings(self, sources: Iterable[Any]) -> list[str]:
        """One line per name a mapping reads that is neither a builtin nor a variable of any
        declared schema: usually a typo (an undeclared attribute the client sends works, and
        is None when it does not send it)."""
        warnings = []
        for source in sources:
            runtime = self.runtime_of(source.slug)
            for mapping in self._mappings.get(source.slug, []):
                names = runtime.variable_names(mapping.expression)
                resource_type = source.catalog.resource_types.get(mapping.resource_type)
                if not names or resource_type is None:
                    continue
                sent = dict.fromkeys(mapping.undeclared_attributes)
                known = {v.name for v in self.variables(source.slug, resource_type, sent) if v.bound}
                known |= set(HOST_VARIABLES)
                for name in sorted(names - known):
                    warnings.append(
                        f"source {source.slug!r} mapping {mapping.name!r} reads {name!r}, which no declared "
                        f"{mapping.resource_type} schema defines (a typo? if the client sends it, list it in "
                        "the mapping's undeclared_attributes)"
                    )
        return warnings

    async def record(
        self,
        source: Any,
        resource_type: str,
        document: dict[str, Any],
        *,
        expressions: list[tuple[str, str]] | None = None,
    ) -> dict[str, Any]:
        """The directory record for a document: defaults, then each mapping's dict merged in order.

        `expressions` replaces the source's mappings (the `mappings test --expression` CLI)."""
        # The document as JSON again: expressions get copies, never the caller's objects, and
        # the record's `attributes` is not the caller's document either.
        document = orjson.loads(orjson.dumps(document))
        record = default_record(resource_type, document)
        if expressions is None:
            batch = [
                (m.name, m.expression) for m in self._mappings.get(source.slug, []) if m.resource_type == resource_type
            ]
        else:
            batch = expressions
        if not batch:
            return record
        runtime_name = self._source_runtime[source.slug]
        runtime = self.runtime(runtime_name)
        types = source.catalog.resource_types
        known = schema_keys(types[resource_type]) if resource_type in types else []
        variables = bind(
            document,
            self._variable_table(runtime_name, runtime, (*known, *document)),
            data=document,
            source={"slug": source.slug, "name": source.name},
            resource_type=resource_type,
        )
        variables = _used(variables, runtime, batch)
        pool = self._pools.get(runtime_name)
        try:
            if pool is not None:
                results = await pool.evaluate(batch, variables)
            else:
                results = evaluate_batch(runtime, batch, variables, self.limits)
        except PoolSaturated:
            self._outcome(source.slug, "saturated")
            raise ScimError(
                503, "The mapping workers are saturated; retry shortly", headers={"Retry-After": "1"}
            ) from None
        except MappingError as exc:
            self._outcome(source.slug, "timeout" if isinstance(exc, EvaluationTimeout) else "error")
            raise MappingFailed(source.slug, batch[0][0] if len(batch) == 1 else "(batch)", str(exc)) from None
        for (name, _), result in zip(batch, results, strict=False):
            if result[0] == "error":
                self._outcome(source.slug, "error")
                raise MappingFailed(source.slug, name, result[2])
            value = result[1]
            if not isinstance(value, dict):
                self._outcome(source.slug, "error")
                raise MappingFailed(source.slug, name, f"it returned {type(value).__name__}, not a dict")
            record = merge(record, value)
        self._outcome(source.slug, "ok")
        return record


def _used(variables: dict[str, Any], runtime: MappingRuntime, batch: list[tuple[str, str]]) -> dict[str, Any]:
    """Only the variables the batch's expressions read, when the runtime can tell which: the
    rest would be copied to the worker for nothing (`data` alone is the whole document)."""
    used: set[str] = set()
    for _, expression in batch:
        names = runtime.variable_names(expression)
        if names is None:
            return variables
        used |= names
    return {name: value for name, value in variables.items() if name in used}
