"""The names RFC 7643 gives attributes and schemas, which a key no schema declares must have to
be kept: an attribute name (§2.1 ATTRNAME) or a schema URN (§3)."""

from __future__ import annotations

import re

# RFC 7643 §2.1: ATTRNAME = ALPHA *(nameChar), nameChar = "-" / "_" / DIGIT / ALPHA.
_ATTRIBUTE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
# `urn:` NID (RFC 8141: letters, digits, hyphens, at most 32) then `:`-separated parts of
# letters, digits and `._-` (`2.0`, `enterprise`, `User`), none empty or made of dots alone, so
# the URN does not end in `:`. Stricter than RFC 8141's NSS, as wide as SCIM schema URNs go.
_SCHEMA_URN = re.compile(r"urn:[A-Za-z0-9][A-Za-z0-9-]{0,31}(?::[A-Za-z0-9_-][A-Za-z0-9._-]*)+", re.IGNORECASE)
# The one sub-attribute name outside ATTRNAME (RFC 7643 §2.4: a reference's URI).
REF = "$ref"


def is_attribute_name(text: str) -> bool:
    """Whether `text` is an ATTRNAME."""
    return _ATTRIBUTE_NAME.fullmatch(text) is not None


def is_schema_urn(text: str) -> bool:
    """Whether `text` is a URN as schema ids (and URN-qualified attribute names) are written. A
    last part that starts with a letter is an attribute path there (`...:User:name.givenName`),
    so it holds at most one dot; a version (`...:1.0`) as many as it likes."""
    if _SCHEMA_URN.fullmatch(text) is None:
        return False
    last = text.rsplit(":", 1)[1]
    return not last[0].isalpha() or last.count(".") <= 1


def is_kept_key(key: str) -> bool:
    """Whether a top-level key no schema declares may be kept: an attribute name, or a URN (an
    extension object, or one attribute of it qualified by the URN)."""
    return is_attribute_name(key) or is_schema_urn(key)


def is_sub_attribute_name(key: str) -> bool:
    """Whether a key inside a kept object may be kept: an attribute name, or `$ref`."""
    return key == REF or is_attribute_name(key)
