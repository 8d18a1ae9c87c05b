"""Limits on client values that every store can hold: no NUL characters anywhere, and indexed
strings short enough for a database index entry."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from scimhost.scim.errors import ScimError
from scimhost.scim.index import IndexEntry

# UTF-8 bytes of one indexed string (after case folding for case-insensitive attributes).
# PostgreSQL refuses a B-tree entry over about 2 700 bytes, and the index's entries also hold
# the source, the resource type and the attribute path; SQLite has no such limit, but both
# stores must accept and refuse the same documents.
MAX_INDEXED_BYTES = 2000
# The longest resource id any request may name; a longer one names no resource.
MAX_ID_LENGTH = 255


def nul_path(value: Any, where: str = "") -> str | None:
    """Where in a JSON value (object keys included) a NUL character is, or None."""
    if isinstance(value, str):
        return where or "value" if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            here = f"{where}.{key}" if where else str(key)
            if "\x00" in key:
                return here
            found = nul_path(item, here)
            if found:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = nul_path(item, f"{where}[{index}]")
            if found:
                return found
    return None


def refuse_nul(value: Any, what: str) -> None:
    """400 invalidValue when the value holds a NUL character (no SQL text column can store one)."""
    found = nul_path(value)
    if found is not None:
        path = found.replace("\x00", "\\u0000")
        raise ScimError(400, f"{what}: NUL characters are not accepted (at '{path}')", "invalidValue")


def check_index_entries(entries: Iterable[IndexEntry], unique_values: dict[str, str]) -> None:
    """400 invalidValue naming the attribute when an indexed string is too long to index."""
    for path, text in [(e.path, e.text) for e in entries] + list(unique_values.items()):
        if text is not None and len(text) * 4 > MAX_INDEXED_BYTES and len(text.encode()) > MAX_INDEXED_BYTES:
            raise ScimError(
                400,
                f"'{path}' is longer than {MAX_INDEXED_BYTES} bytes (UTF-8), the limit of a searchable value",
                "invalidValue",
            )


def plausible_id(resource_id: str) -> bool:
    """Whether a resource id from a URL could name a resource at all (else: 404 at once)."""
    return 0 < len(resource_id) <= MAX_ID_LENGTH and resource_id.isprintable()
