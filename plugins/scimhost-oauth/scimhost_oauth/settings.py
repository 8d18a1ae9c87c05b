"""The plugin's settings: a source's `[sources.oauth]` table and the host's `[oauth]` table."""

from __future__ import annotations

from dataclasses import dataclass

# Access token lifetimes Microsoft Entra's gallery validator accepts (60 minutes to 6 hours).
ENTRA_LIFETIMES = range(3600, 21601)


@dataclass(frozen=True)
class OAuthSourceSettings:
    """A source's `[sources.oauth]` table."""

    # How long an access token from the token endpoint opens the source.
    access_token_seconds: int = 3600
    # Whether a client secret may come in the request body (client_secret_post, which Entra
    # uses); false allows only HTTP Basic (client_secret_basic), as the IPSIE profile asks.
    secret_in_body: bool = True

    def __post_init__(self) -> None:
        if not 60 <= self.access_token_seconds <= 86400:
            raise ValueError("access_token_seconds: must be between 60 and 86400")


@dataclass(frozen=True)
class OAuthSettings:
    """The host's `[oauth]` table."""

    # How long a process trusts an access token it checked before reading the store again: a
    # token ended by `scimhost sources revoke` stops opening its source within this time on
    # every process and host.
    cache_seconds: float = 5.0

    def __post_init__(self) -> None:
        if not 0 <= self.cache_seconds <= 300:
            raise ValueError("cache_seconds: must be between 0 and 300")
