"""Built-in plugin: the OAuth bearer token scheme (RFC 6750) with per-source tokens."""

from __future__ import annotations

from collections.abc import Mapping

from scimhost.auth import AuthScheme, Principal
from scimhost.hookspecs import hookimpl
from scimhost.sources import Source
from scimhost.tokens import token_matches


class BearerTokenScheme(AuthScheme):
    """A token issued for one source (or read from its `token_env`) opens that source only."""

    name = "bearer"
    challenge = 'Bearer realm="scimhost"'

    async def authenticate(self, source: Source, headers: Mapping[str, str]) -> Principal | None:
        presented = _bearer_credentials(headers.get("Authorization", ""))
        if presented is None:
            return None
        # The stored hash is looked up by the source the URL names, never by the token, so a
        # token can only ever open the source it was issued for.
        if source.env_token_hash is not None:
            expected = source.env_token_hash
        else:
            expected = await self.storage.token_hash(source.slug)
        if token_matches(presented, expected):
            return Principal(source=source.slug, account=source.service_account, scheme=self.name)
        return None

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
