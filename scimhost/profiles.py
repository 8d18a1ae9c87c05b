"""Provisioning profiles a source may follow (`profile = "ipsie-al1"`): the defaults they
choose for its settings, and the rules of theirs its configuration does not meet."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

IPSIE_AL1 = "ipsie-al1"
PROFILES = (IPSIE_AL1,)


def profile_defaults(profile: str, auth_schemes: Collection[str]) -> dict[str, Any]:
    """The source settings the profile chooses where the source's table does not say."""
    if profile != IPSIE_AL1:
        return {}
    # OpenID IPSIE SCIM profile, AL1: the User schema MUST NOT support passwords; clients
    # authenticate with OAuth 2.0 (client credentials) where the OAuth plugin is installed.
    defaults: dict[str, Any] = {"passwords": "refuse"}
    if "oauth" in auth_schemes:
        defaults["auth"] = ("oauth",)
    return defaults


@dataclass(frozen=True)
class SourceFacts:
    """What the rules look at of one source as the host runs it."""

    slug: str
    profile: str | None
    passwords: str
    auth: tuple[str, ...]
    rate_per_second: float
    max_concurrent: int
    storage_features: frozenset[str]


def profile_gaps(source: SourceFacts) -> list[str]:
    """One line per rule of the source's profile its configuration does not meet."""
    if source.profile != IPSIE_AL1:
        return []
    where = f"source {source.slug} (profile {IPSIE_AL1})"
    gaps = []
    if source.passwords != "refuse":
        gaps.append(
            f'{where}: passwords = {source.passwords!r}; the profile\'s User schema must not support passwords (set passwords = "refuse")'
        )
    if not source.rate_per_second or not source.max_concurrent:
        gaps.append(f"{where}: a rate limit is off; the profile requires rate limits answered with 429 and Retry-After")
    others = [name for name in source.auth if name != "oauth"]
    if others:
        gaps.append(
            f"{where}: auth lists {', '.join(others)}; the profile asks for OAuth 2.0 client credentials "
            '(install scimhost-oauth and set auth = ["oauth"])'
        )
    if "cursor_paging" not in source.storage_features:
        gaps.append(
            f"{where}: the storage backend does not offer cursor paging (RFC 9865), which the profile advertises"
        )
    return gaps
