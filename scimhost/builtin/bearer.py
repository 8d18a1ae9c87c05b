"""Built-in plugin: the OAuth bearer token scheme (RFC 6750) with per-source tokens."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from scimhost.auth import AuthScheme, Principal
from scimhost.config import SettingsTable
from scimhost.hookspecs import hookimpl
from scimhost.sources import Source
from scimhost.tokens import token_matches


@dataclass(frozen=True)
class BearerSettings:
    """The `[bearer]` table."""

    # How long a process keeps a source's stored token hash before reading it again. A token
    # replaced with `scimhost sources token` stops opening the source within this time on every
    # process and host; 0 reads the store on every request.
    cache_seconds: float = 2.0

    # A presented token that does not match the cached hash makes the process read the stored
    # hash again (a token issued a moment ago opens its source at once), at most this often per
    # source, so that wrong tokens cannot turn every request into a read of the store.
    refresh_seconds: float = 0.25

    def __post_init__(self) -> None:
        if not 0 <= self.cache_seconds <= 300:
            raise ValueError("cache_seconds: must be between 0 and 300")
        if not 0 <= self.refresh_seconds <= 60:
            raise ValueError("refresh_seconds: must be between 0 and 60")


class BearerTokenScheme(AuthScheme):
    """A token issued for one source (or read from its `token_env`) opens that source only."""

    name = "bearer"
    challenge = 'Bearer realm="scimhost"'

    def __init__(self, settings, storage) -> None:
        super().__init__(settings, storage)
        self.options: BearerSettings = settings.plugin_tables.get("bearer") or BearerSettings()
        # source slug -> (stored hashes that open it, monotonic time they were read)
        self._hashes: dict[str, tuple[tuple[str, ...], float]] = {}
        # source slug -> monotonic time of the last read forced by a token that did not match
        self._refreshed: dict[str, float] = {}
        # The clock of both (tests move their own).
        self.clock = time.monotonic

    async def authenticate(self, source: Source, headers: Mapping[str, str]) -> Principal | None:
        presented = _bearer_credentials(headers.get("Authorization", ""))
        if presented is None:
            return None
        # The stored hash is looked up by the source the URL names, never by the token, so a
        # token can only ever open the source it was issued for.
        if source.env_token_hash is not None:
            matches = token_matches(presented, source.env_token_hash)
        else:
            matches = _any_matches(presented, await self._stored_hashes(source.slug))
            if not matches and self._may_refresh(source.slug):
                # Perhaps the token was replaced from another process since the hash was read.
                matches = _any_matches(presented, await self._stored_hashes(source.slug, fresh=True))
        if matches:
            return Principal(source=source.slug, account=source.service_account, scheme=self.name)
        return None

    async def _stored_hashes(self, slug: str, *, fresh: bool = False) -> tuple[str, ...]:
        # A replaced token's grace period ends within cache_seconds of its expiry.
        now = self.clock()
        cached = self._hashes.get(slug)
        if not fresh and cached is not None and now - cached[1] < self.options.cache_seconds:
            return cached[0]
        stored = await self.storage.token_hashes(slug, now=datetime.now(UTC))
        self._hashes[slug] = (stored, now)
        return stored

    def _may_refresh(self, slug: str) -> bool:
        """Whether a mismatch may read the stored hash again now (rate-limited per source)."""
        if self.options.cache_seconds == 0:
            return False  # every request reads the store already
        now = self.clock()
        if now - self._refreshed.get(slug, float("-inf")) < self.options.refresh_seconds:
            return False
        self._refreshed[slug] = now
        return True

    def credentials_changed(self, source: str) -> None:
        self._hashes.pop(source, None)

    def describe(self) -> dict:
        return {
            "type": "oauthbearertoken",
            "name": "OAuth Bearer Token",
            "description": "Authentication with a bearer token issued for this source",
            "specUri": "https://www.rfc-editor.org/info/rfc6750",
            "primary": True,
        }


def _any_matches(presented: str, hashes: tuple[str, ...]) -> bool:
    # Every hash is compared (in constant time each), so timing does not tell which matched.
    results = [token_matches(presented, stored) for stored in hashes]
    return any(results)


def _bearer_credentials(header: str) -> str | None:
    scheme, _, credentials = header.strip().partition(" ")
    credentials = credentials.strip()
    if scheme.lower() != "bearer" or not credentials or len(credentials) > 4096:
        return None
    return credentials


@hookimpl
def register_auth_schemes():
    return [BearerTokenScheme]


@hookimpl
def register_settings():
    return [SettingsTable("bearer", BearerSettings, "The bearer token scheme")]
