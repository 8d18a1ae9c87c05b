"""SCIM filters and sort keys as LDAP filters and sort keys, only where the directory's answer
is exactly SCIM's; anything else is refused (UnsupportedFilter: 400 invalidFilter).

What is exact: eq, ne, sw, ew, co and pr on a mapped attribute whose matching rules fold case
as SCIM does (values in ASCII, without leading, trailing or repeated spaces, which RFC 4518's
preparation would treat as insignificant); meta.created and meta.lastModified, kept to the
millisecond; id; a group's members. What is refused: ordering comparisons on strings (core
schema attributes have no ORDERING rule, or one that prepares strings unlike SCIM), numbers,
booleans, dates and binaries (not mapped), value filters that would correlate two
comparisons on one value, and anything on an attribute not mapped.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime

from ldap.filter import escape_filter_chars

from scimhost.scim.query import (
    Field,
    QAnd,
    QCompare,
    QConstant,
    QNode,
    QNot,
    QOr,
    QPresent,
    QValuePath,
    SortKey,
    millisecond_range,
)
from scimhost.storage.backend import UnsupportedFilter
from scimhost_ldap.entries import CREATED, EXTERNAL_ID, MODIFIED, generalized_time
from scimhost_ldap.settings import BOOLEAN_ATTRIBUTES

TRUE, FALSE = "(objectClass=*)", "(!(objectClass=*))"
# Case-ignoring ordering (RFC 4517), named in sort keys: core string attributes have none.
CASE_IGNORE_ORDERING = "2.5.13.3"
CASE_EXACT_ORDERING = "2.5.13.5"
# Beyond this many members, `groups.value eq` is refused rather than sent as a huge filter.
MAX_GROUP_MEMBERS_IN_FILTER = 500

Resolve = Callable[[str], Awaitable[str | None]]
MemberDns = Callable[[str], Awaitable[list[str] | None]]


class FilterTranslator:
    """Translates one query's filter for one resource type of one source."""

    def __init__(
        self,
        attributes: dict[str, str],
        *,
        placeholder: str,
        resolve: Resolve,
        member_dns: MemberDns,
        multi_valued: frozenset[str] = frozenset({"emails.value"}),
        always_present: frozenset[str] = frozenset({"username", "displayname"}),
    ) -> None:
        # SCIM index path -> LDAP attribute; `externalid` is caseExact, the rest fold case.
        self.attributes = attributes
        self.placeholder = placeholder
        self.resolve = resolve
        self.member_dns = member_dns
        self.multi_valued = multi_valued
        # Attributes every entry has, never empty (the naming attribute): `pr` is exact there.
        self.always_present = always_present

    async def filter(self, node: QNode | None) -> str:
        if node is None:
            return TRUE
        if isinstance(node, QConstant):
            return TRUE if node.value else FALSE
        if isinstance(node, (QAnd, QOr)):
            op = "&" if isinstance(node, QAnd) else "|"
            return f"({op}{''.join([await self.filter(term) for term in node.terms])})"
        if isinstance(node, QNot):
            return f"(!{await self.filter(node.expr)})"
        if isinstance(node, QValuePath):
            return await self._value_path(node)
        return await self._comparison(node)

    async def _value_path(self, node: QValuePath) -> str:
        terms = node.filter.terms if isinstance(node.filter, QOr) else (node.filter,)
        # "Some one value matches" is what LDAP answers for one comparison (or several joined
        # by or); `and` or `not` inside would need all of them on the same value.
        if not all(isinstance(t, (QCompare, QPresent)) for t in terms):
            raise UnsupportedFilter(f"{node.attribute}[...] with and/not inside is not supported by the LDAP store")
        return await self.filter(node.filter)

    async def _comparison(self, node: QCompare | QPresent) -> str:
        field = node.field
        if field.kind == "attr":
            return self._attribute(field, node)
        if field.kind == "id":
            return self._id(node)
        if field.kind in ("created", "lastModified"):
            return self._moment(CREATED if field.kind == "created" else MODIFIED, node)
        if field.kind == "member":
            return await self._member(node)
        if field.kind == "group":
            return await self._group(node)
        raise UnsupportedFilter(f"filters on {field.kind} are not supported by the LDAP store")

    def _attribute(self, field: Field, node: QCompare | QPresent) -> str:
        name = self.attributes.get(field.key)
        if name is None or field.numeric:
            raise UnsupportedFilter(f"{field.key} is not mapped to a directory attribute the LDAP store can filter")
        if name in BOOLEAN_ATTRIBUTES:
            if isinstance(node, QPresent):
                return f"({name}=*)"  # a boolean is never empty
            if node.op != "eq" or node.value not in ("true", "false"):
                raise UnsupportedFilter(f"{node.op} on {field.key} is not supported")
            return f"({name}={str(node.value).upper()})"
        if isinstance(node, QPresent):
            if field.key not in self.always_present:
                # A directory keeps no empty strings, which SCIM's pr counts here.
                raise UnsupportedFilter(f"pr on {field.key} is not supported by the LDAP store")
            return f"({name}=*)"
        value = _exact_text(field.key, node.value)
        pattern = {"eq": "{}", "ne": "{}", "sw": "{}*", "ew": "*{}", "co": "*{}*"}.get(node.op)
        if pattern is None:
            raise UnsupportedFilter(f"{node.op} on {field.key}: the directory cannot order it as SCIM does")
        term = f"({name}={pattern.format(escape_filter_chars(value))})"
        return f"(!{term})" if node.op == "ne" else term

    def _id(self, node: QCompare | QPresent) -> str:
        if isinstance(node, QPresent):
            return TRUE
        if node.op not in ("eq", "ne"):
            raise UnsupportedFilter(f"{node.op} on id is not supported by the LDAP store")
        try:
            canonical = str(uuid.UUID(str(node.value)))
        except ValueError:
            return FALSE if node.op == "eq" else TRUE  # no entry has that id
        if canonical != node.value:
            return FALSE if node.op == "eq" else TRUE  # ids are rendered canonical, so none equals it
        term = f"(entryUUID={canonical})"
        return term if node.op == "eq" else f"(!{term})"

    def _moment(self, name: str, node: QCompare | QPresent) -> str:
        if isinstance(node, QPresent):
            return TRUE
        start, end = millisecond_range(datetime.fromisoformat(node.value))
        # Kept to the millisecond: "in the millisecond" is "equal to its start".
        at, after = generalized_time(start), generalized_time(end)
        terms = {
            "eq": f"({name}={at})",
            "ne": f"(!({name}={at}))",
            "gt": f"({name}>={after})",
            "ge": f"({name}>={at})",
            "lt": f"(!({name}>={at}))",
            "le": f"(!({name}>={after}))",
        }
        if node.op not in terms:
            raise UnsupportedFilter(f"{node.op} on a timestamp is not supported")
        return terms[node.op]

    async def _member(self, node: QCompare | QPresent) -> str:
        if isinstance(node, QPresent):
            return f"(!(member={escape_filter_chars(self.placeholder)}))"
        if node.op not in ("eq", "ne"):
            raise UnsupportedFilter(f"{node.op} on members.value is not supported by the LDAP store")
        dn = await self.resolve(str(node.value))
        term = f"(member={escape_filter_chars(dn)})" if dn is not None else FALSE
        return term if node.op == "eq" else f"(!{term})"

    async def _group(self, node: QCompare | QPresent) -> str:
        if isinstance(node, QPresent) or node.op not in ("eq", "ne"):
            raise UnsupportedFilter("only groups.value eq and ne are supported by the LDAP store")
        dns = await self.member_dns(str(node.value))
        if dns is not None and len(dns) > MAX_GROUP_MEMBERS_IN_FILTER:
            raise UnsupportedFilter(
                f"groups.value eq a group of more than {MAX_GROUP_MEMBERS_IN_FILTER} members is not supported"
            )
        terms = "".join(f"(entryDN={escape_filter_chars(dn)})" for dn in dns or [])
        term = f"(|{terms})" if terms else FALSE
        return term if node.op == "eq" else f"(!{term})"

    def sort_keys(self, key: SortKey | None) -> list[str]:
        """The server-side sort keys: the asked one, then creation order (ties broken by id)."""
        keys = [CREATED, "entryUUID"]
        if key is None:
            return keys
        field = key.field
        if field.kind in ("created", "lastModified", "id"):
            name = {"created": CREATED, "lastModified": MODIFIED, "id": "entryUUID"}[field.kind]
        elif (
            field.kind == "attr"
            and field.key in self.attributes
            and field.key not in self.multi_valued
            and self.attributes[field.key] not in BOOLEAN_ATTRIBUTES
        ):
            ldap_name = self.attributes[field.key]
            rule = CASE_EXACT_ORDERING if ldap_name == EXTERNAL_ID else CASE_IGNORE_ORDERING
            name = f"{ldap_name}:{rule}"
        else:
            raise UnsupportedFilter(f"sortBy {field.key or field.kind} is not supported by the LDAP store")
        return [("-" if key.descending else "") + name, *keys]


def _exact_text(key: str, value: object) -> str:
    """The value, if the directory compares it as SCIM does (see the module docstring)."""
    text = str(value)
    if not text:
        raise UnsupportedFilter(f"comparing {key} with an empty string is not supported by the LDAP store")
    if not text.isascii() or text != text.strip() or "  " in text:
        raise UnsupportedFilter(
            f"{key}: the directory compares non-ASCII text and repeated or outer spaces unlike SCIM"
        )
    return text


__all__ = ["FALSE", "TRUE", "FilterTranslator"]
