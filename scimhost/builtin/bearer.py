"""Built-in plugin: the OAuth bearer token scheme (RFC 6750) with per-source tokens."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

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

    def __post_init__(self) -> None:
        if not 0 <= self.cache_seconds <= 300:
            raise ValueError("cache_seconds: must be between 0 and 300")


class BearerTokenScheme(AuthScheme):
    """A token issued for one source (or read from its `token_env`) opens that source only."""

    name = "bearer"
    challenge = 'Bearer realm="scimhost"'

    def __init__(self, settings, storage) -> None:
        super().__init__(settings, storage)
        self.options: BearerSettings = settings.plugin_tables.get("bearer") or BearerSettings()
        # source slug -> (stored hash, monotonic time it was read)
        self._hashes: dict[str, tuple[str | None, float]] = {}

    async def authenticate(self, source: Source, headers: Mapping[str, str]) -> Principal | None:
        presented = _bearer_credentials(headers.get("Authorization", ""))
        if presented is None:
            return None
        # The stored hash is looked up by the source the URL names, never by the token, so a
        # token can only ever open the source it was issued for.
        if source.env_token_hash is not None:
            expected = source.env_token_hash
        else:
            expected = await self._stored_hash(source.slug)
        if token_matches(presented, expected):
            return Principal(source=source.slug, account=source.service_account, scheme=self.name)
        return None

    async def _stored_hash(self, slug: str) -> str | None:
        now = time.monotonic()
        cached = self._hashes.get(slug)
        if cached is not None and now - cached[1] < self.options.cache_seconds:
            return cached[0]
        stored = await self.storage.token_hash(slug)
        self._hashes[slug] = (stored, now)
        return stored

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
