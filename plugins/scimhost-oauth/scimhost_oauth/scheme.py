"""The `oauth` auth scheme: access tokens from the source's token endpoint open that source."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from scimhost.auth import AuthScheme, Principal, SchemeDetail
from scimhost.sources import Source
from scimhost.storage.backend import Credential
from scimhost.timestamps import shown
from scimhost_oauth.assertions import Jwks
from scimhost_oauth.credentials import SECRET_KIND, TOKEN_KIND, TOKEN_PREFIX, Issued, client_id, issue, matches, split
from scimhost_oauth.settings import ENTRA_LIFETIMES, OAuthSettings, OAuthSourceSettings

# A client secret this close to its expiry is flagged (`secrets list`, the admin overview).
EXPIRES_SOON = timedelta(days=30)
# Below each source's base URL.
TOKEN_PATH = "/oauth/token"
# Expired access tokens are deleted from the store at most this often, by a process issuing one.
PRUNE_EVERY = timedelta(hours=1)
# Checked tokens a process remembers at most; past it, those read longest ago are forgotten.
MAX_REMEMBERED = 10_000


class OAuthScheme(AuthScheme):
    """Short-lived access tokens issued for one source by its token endpoint open that source."""

    name = "oauth"
    challenge = 'Bearer realm="scimhost"'
    source_settings_type = OAuthSourceSettings

    def __init__(self, settings, storage) -> None:
        super().__init__(settings, storage)
        self.options: OAuthSettings = settings.plugin_tables.get("oauth") or OAuthSettings()
        # (source slug, token id) -> (the stored credential, monotonic time it was read)
        self._checked: dict[tuple[str, str], tuple[Credential, float]] = {}
        self._pruned: datetime | None = None
        # The clock tokens and assertions are judged by (tests move it).
        self.now = lambda: datetime.now(UTC)
        # The trusted issuers' keys, shared by the host's sources.
        self.jwks = Jwks(
            timeout=self.options.jwks_timeout_seconds,
            refresh=self.options.jwks_refresh_seconds,
            min_refresh=self.options.jwks_min_refresh_seconds,
        )

    async def authenticate(self, source: Source, headers: Mapping[str, str]) -> Principal | None:
        scheme, _, presented = headers.get("Authorization", "").partition(" ")
        parts = split(presented.strip(), TOKEN_PREFIX) if scheme.lower() == "bearer" else None
        if parts is None:
            return None
        # Looked up by the source the URL names: a token only ever opens the source it was issued for.
        credential = await self._stored(source.slug, parts[0])
        if credential is None or not matches(parts[1], credential, self.now()):
            return None
        return Principal(source=source.slug, account=source.service_account, scheme=self.name)

    async def _stored(self, slug: str, token_id: str) -> Credential | None:
        key, now = (slug, token_id), time.monotonic()
        cached = self._checked.get(key)
        if cached is not None and now - cached[1] < self.options.cache_seconds:
            return cached[0]
        found = await self.storage.get_credential(slug, TOKEN_KIND, token_id)
        if found is None:
            self._checked.pop(key, None)
            return None
        if len(self._checked) >= MAX_REMEMBERED:
            for old in sorted(self._checked, key=lambda k: self._checked[k][1])[: MAX_REMEMBERED // 10]:
                del self._checked[old]
        self._checked[key] = (found, now)
        return found

    async def issue_access_token(self, source: Source) -> tuple[str, int]:
        """A new access token for the source, kept hashed; its value and lifetime in seconds."""
        options: OAuthSourceSettings = source.settings.auth_options[self.name]
        now = self.now()
        issued: Issued = issue(
            TOKEN_KIND, TOKEN_PREFIX, now, timedelta(seconds=options.access_token_seconds), session=True
        )
        await self.storage.add_credential(source.slug, issued.credential)
        if self._pruned is None or now - self._pruned > PRUNE_EVERY:
            self._pruned = now
            await self.storage.prune_credentials(before=now)
        return issued.value, options.access_token_seconds

    def credentials_changed(self, source: str) -> None:
        for key in [k for k in self._checked if k[0] == source]:
            del self._checked[key]

    async def details(self, source: Source) -> list[SchemeDetail]:
        """The client id and token URL, each client secret (flagged within 30 days of its
        expiry) and each trusted issuer."""
        now = self.now()
        found = [
            SchemeDetail("OAuth client id", client_id(source.service_account)),
            SchemeDetail("Token URL", source.base_url + TOKEN_PATH),
        ]
        options: OAuthSourceSettings = source.settings.auth_options[self.name]
        secrets = [c for c in await self.storage.list_credentials(source.slug, SECRET_KIND)]
        for secret in secrets:
            left = secret.expires - now if secret.expires else None
            state = ""
            if left is not None and left <= timedelta(0):
                state = " (expired)"
            elif left is not None and left <= EXPIRES_SOON:
                state = f" (expires in {max(1, left.days)} day{'' if left.days == 1 else 's'})"
            used = shown(secret.last_used) or "never"
            found.append(
                SchemeDetail(
                    f"Client secret {secret.id}",
                    f"created {shown(secret.created)}, expires {shown(secret.expires)}{state}, last used {used}",
                    warning=bool(state),
                )
            )
        for issuer in options.trusted_issuers:
            found.append(
                SchemeDetail("Trusted issuer", f"{issuer.issuer} (sub {issuer.subject}, aud {issuer.audience})")
            )
        if not secrets and not options.trusted_issuers:
            command = self.settings.command(f"oauth secrets create {source.slug}")
            found.append(SchemeDetail("Client secret", f"none yet: run {command}", warning=True))
        return found

    def warnings(self, sources: list[Source]) -> list[str]:
        found = []
        for source in sources:
            seconds = source.settings.auth_options[self.name].access_token_seconds
            if seconds not in ENTRA_LIFETIMES:
                found.append(
                    f"source {source.slug!r}: oauth access_token_seconds = {seconds} is outside the 3600 to 21600 "
                    "that Microsoft Entra's gallery validator accepts"
                )
        return found

    def describe_source(self, source: Source) -> dict[str, Any]:
        return {"client_id": client_id(source.service_account), "token_url": source.base_url + TOKEN_PATH}

    def describe_for(self, source: Source) -> dict[str, Any]:
        return {
            **self.describe(),
            "description": f"OAuth 2.0 client credentials: access tokens from {source.base_url}{TOKEN_PATH} "
            "for a client secret or a trusted issuer's assertion",
        }

    def describe(self) -> dict[str, Any]:
        return {
            "type": "oauth2",
            "name": "OAuth 2.0 client credentials",
            "description": "Access tokens from the source's token endpoint (<base URL>/oauth/token), "
            "for a client secret",
            "specUri": "https://www.rfc-editor.org/info/rfc6749",
            "primary": False,
        }
