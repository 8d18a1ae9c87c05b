"""The plugin's settings: a source's `[sources.oauth]` table and the host's `[oauth]` table."""

from __future__ import annotations

from dataclasses import dataclass

# Access token lifetimes Microsoft Entra's gallery validator accepts (60 minutes to 6 hours).
ENTRA_LIFETIMES = range(3600, 21601)


@dataclass(frozen=True)
class TrustedIssuer:
    """An issuer whose assertions authenticate the source's client (`[[sources.oauth.trusted_issuers]]`)."""

    issuer: str
    jwks_url: str
    # The `sub` and `aud` its assertions must carry, exactly.
    subject: str
    audience: str

    def __post_init__(self) -> None:
        if not self.jwks_url.startswith("https://") and not self.jwks_url.startswith("http://127.0.0.1"):
            raise ValueError("jwks_url: must be an https:// URL")
        for name in ("issuer", "subject", "audience"):
            if not getattr(self, name):
                raise ValueError(f"{name}: must not be empty")


@dataclass(frozen=True)
class OAuthSourceSettings:
    """A source's `[sources.oauth]` table."""

    # How long an access token from the token endpoint opens the source.
    access_token_seconds: int = 3600
    # Whether a client secret may come in the request body (client_secret_post, which Entra
    # uses); false allows only HTTP Basic (client_secret_basic), as the IPSIE profile asks.
    secret_in_body: bool = True
    # Issuers whose RFC 7523 assertions authenticate the client instead of a secret (Entra's
    # Workload Identity Federation): `[[sources.oauth.trusted_issuers]]`.
    trusted_issuers: tuple[TrustedIssuer, ...] = ()

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
    # A trusted issuer's JWKS: how long a fetch may take, how often the keys are fetched again,
    # and how soon after the last fetch an assertion naming an unknown key id may fetch again.
    jwks_timeout_seconds: float = 5.0
    jwks_refresh_seconds: float = 3600.0
    jwks_min_refresh_seconds: float = 30.0

    def __post_init__(self) -> None:
        if not 0 <= self.cache_seconds <= 300:
            raise ValueError("cache_seconds: must be between 0 and 300")
        if not 0 < self.jwks_timeout_seconds <= 60:
            raise ValueError("jwks_timeout_seconds: must be more than 0 and at most 60")
        if not 0 <= self.jwks_min_refresh_seconds <= self.jwks_refresh_seconds:
            raise ValueError("jwks_min_refresh_seconds: must be between 0 and jwks_refresh_seconds")
