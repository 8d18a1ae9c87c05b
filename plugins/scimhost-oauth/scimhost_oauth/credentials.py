"""Client secrets and access tokens: made, kept hashed in the store, checked in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from scimhost.storage.backend import Credential, StorageBackend

SECRET_KIND = "oauth_client_secret"
TOKEN_KIND = "oauth_access_token"
# Prefixes that say what a value is when it turns up in a log or a ticket.
SECRET_PREFIX = "scs_"
TOKEN_PREFIX = "sat_"


def client_id(service_account: str) -> str:
    """A source's OAuth client id: its service account's name."""
    return service_account


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class Issued:
    """A value shown once (`<prefix><id>.<secret>`) and the credential kept for it."""

    value: str
    credential: Credential


def issue(kind: str, prefix: str, now: datetime, lifetime: timedelta, *, session: bool) -> Issued:
    """A new value: a public id that finds it and 256 random bits that prove it."""
    credential_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    credential = Credential(kind, credential_id, digest(secret), now, expires=now + lifetime, session=session)
    return Issued(f"{prefix}{credential_id}.{secret}", credential)


def split(value: str, prefix: str) -> tuple[str, str] | None:
    """The (id, secret) of a presented value, or None when it is not one of ours."""
    if not value.startswith(prefix):
        return None
    credential_id, dot, secret = value[len(prefix) :].partition(".")
    if not dot or not credential_id or not secret or len(value) > 200:
        return None
    return credential_id, secret


async def check(
    storage: StorageBackend, source: str, kind: str, prefix: str, presented: str, now: datetime
) -> Credential | None:
    """The source's unexpired credential the value proves, or None (compared in constant time)."""
    parts = split(presented, prefix)
    if parts is None:
        return None
    found = await storage.get_credential(source, kind, parts[0])
    if found is None or not matches(parts[1], found, now):
        return None
    return found


def matches(secret: str, credential: Credential, now: datetime) -> bool:
    alive = credential.expires is None or credential.expires > now
    return hmac.compare_digest(digest(secret), credential.secret_hash) and alive
