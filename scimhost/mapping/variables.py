"""Expression variables from SCIM attribute names, sanitized (docs/mappings.md, "Variables").

Rule, in this order:
1. every character outside [A-Za-z0-9_] becomes `_`, case kept
   (`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User` becomes
   `urn_ietf_params_scim_schemas_extension_enterprise_2_0_User`);
2. a name the runtime cannot accept (RestrictedPython: a leading `_` or digit, a keyword such
   as `class` or `None`) gets the prefix `v_` (`class` becomes `v_class`, `2fa` becomes `v_2fa`);
3. a name that two keys produce, or that is one of the host's own variables (`data`, `source`,
   `resource_type`), is bound to neither key: no key silently shadows another. Such keys stay
   reachable through `data["..."]`, and `scimhost mappings variables` shows them.

Names are only ever keys of the evaluation's variable dict; no code text is built from them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

HOST_VARIABLES = ("data", "source", "resource_type")
_OUTSIDE = re.compile(r"[^A-Za-z0-9_]")
LEGALIZING_PREFIX = "v_"


@dataclass(frozen=True)
class Variable:
    """One expression variable: its name, the document key it holds, and why it is unbound."""

    name: str
    key: str
    unbound_because: str | None = None

    @property
    def bound(self) -> bool:
        return self.unbound_because is None


def sanitize(key: str, is_valid_name: Callable[[str], bool]) -> str:
    """The variable name of a document key (rules 1 and 2 above)."""
    name = _OUTSIDE.sub("_", key)
    if not is_valid_name(name):
        name = LEGALIZING_PREFIX + name
    return name


def variable_table(keys: Iterable[str], is_valid_name: Callable[[str], bool]) -> list[Variable]:
    """The variables a set of top-level keys produces, with collisions (rule 3) marked."""
    keys = list(dict.fromkeys(keys))
    by_name: dict[str, list[str]] = {}
    for key in keys:
        by_name.setdefault(sanitize(key, is_valid_name), []).append(key)
    table = []
    for name, owners in by_name.items():
        for key in owners:
            if name in HOST_VARIABLES:
                reason = f"'{name}' is a host variable; use data[{key!r}]"
            elif len(owners) > 1:
                others = ", ".join(repr(o) for o in owners if o != key)
                reason = f"{others} also becomes '{name}'; use data[{key!r}]"
            else:
                reason = None
            table.append(Variable(name, key, reason))
    return table


def bind(document: dict[str, Any], table: Iterable[Variable], **host: Any) -> dict[str, Any]:
    """The variables of one evaluation: the host's own, then one per bound entry of `table`
    (the `variable_table` of the schema's keys and the document's; None when the document
    lacks the key)."""
    variables = dict(host)
    for variable in table:
        if variable.bound:
            variables[variable.name] = document.get(variable.key)
    return variables
