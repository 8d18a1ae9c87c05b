"""RFC 7523 JWT client assertions (Entra's Workload Identity Federation): signed by a trusted
issuer whose keys come from its JWKS, checked by joserfc, accepted once."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from datetime import datetime, timedelta

import aiohttp
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from scimhost.storage.backend import Credential, StorageBackend, StorageError
from scimhost_oauth.settings import TrustedIssuer

log = logging.getLogger(__name__)

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# Asymmetric only: never `none`, never an HMAC that a public key could be used as the secret of.
ALGORITHMS = ("RS256", "PS256", "ES256")
# Clocks disagree by this much at most (`nbf`, `iat`, `exp`).
SKEW = 60
# An assertion may be valid this long at most: a longer-lived one is not a client assertion.
MAX_LIFETIME = 3600
REPLAY_KIND = "oauth_assertion_seen"


class AssertionRefused(Exception):
    """The assertion does not authenticate the client; the message is for the log only."""


class KeysUnavailable(Exception):
    """The issuer's JWKS could not be fetched (down, slow, not a JWKS)."""


class Jwks:
    """Each issuer's keys by URL: fetched with a timeout, kept, fetched again on a schedule and
    when an assertion names a key id they lack (at most every `min_refresh` seconds per URL, so
    junk assertions cannot make the host fetch on every request)."""

    def __init__(self, timeout: float = 5.0, refresh: float = 3600.0, min_refresh: float = 30.0) -> None:
        self.timeout, self.refresh, self.min_refresh = timeout, refresh, min_refresh
        self._sets: dict[str, tuple[KeySet, float]] = {}
        self._attempted: dict[str, float] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def keys(self, url: str, kid: str | None) -> KeySet:
        now = time.monotonic()
        cached = self._sets.get(url)
        fresh = cached is not None and now - cached[1] < self.refresh
        if cached is not None and fresh and _has(cached[0], kid):
            return cached[0]
        lock = self._locks.setdefault(url, asyncio.Lock())
        async with lock:
            cached = self._sets.get(url)
            recently = now - self._attempted.get(url, -1e9) < self.min_refresh
            if cached is not None and (recently or (fresh and _has(cached[0], kid))):
                return cached[0]
            if cached is None and recently:
                raise KeysUnavailable(f"{url} failed moments ago")
            self._attempted[url] = now
            keys = await self._fetch(url)
            self._sets[url] = (keys, time.monotonic())
            return keys

    async def _fetch(self, url: str) -> KeySet:
        try:
            timeout = aiohttp.ClientTimeout(total=self.timeout)
            async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as response:
                if response.status != 200:
                    raise KeysUnavailable(f"{url} answered {response.status}")
                document = json.loads(await response.read())
            return KeySet.import_key_set(document)
        except KeysUnavailable:
            raise
        except (aiohttp.ClientError, TimeoutError, ValueError, KeyError, TypeError, JoseError) as exc:
            raise KeysUnavailable(f"{url}: {type(exc).__name__}: {exc}") from None


def _has(keys: KeySet, kid: str | None) -> bool:
    return kid is None or any(key.kid == kid for key in keys)


async def verify(
    assertion: str,
    issuers: tuple[TrustedIssuer, ...],
    jwks: Jwks,
    storage: StorageBackend,
    source: str,
    now: datetime,
) -> TrustedIssuer:
    """The trusted issuer whose valid, unused assertion this is; AssertionRefused otherwise
    (KeysUnavailable when its keys cannot be had)."""
    try:
        unverified = jws.extract_compact(assertion.encode())
        header, claims = unverified.headers(), json.loads(unverified.payload)
    except (JoseError, ValueError, TypeError) as exc:
        raise AssertionRefused(f"not a compact JWS: {exc}") from None
    if not isinstance(claims, dict):
        raise AssertionRefused("the payload is not a JSON object")
    trusted = next((i for i in issuers if i.issuer == claims.get("iss")), None)
    if trusted is None:
        raise AssertionRefused(f"issuer {str(claims.get('iss'))[:200]!r} is not trusted")
    if header.get("alg") not in ALGORITHMS:
        raise AssertionRefused(f"algorithm {str(header.get('alg'))[:20]!r} is not accepted")
    kid = header.get("kid") if isinstance(header.get("kid"), str) else None
    keys = await jwks.keys(trusted.jwks_url, kid)
    try:
        token = jwt.decode(assertion, keys, algorithms=list(ALGORITHMS))
    except JoseError as exc:
        raise AssertionRefused(f"signature: {type(exc).__name__}") from None
    _check_claims(token.claims, trusted, now)
    await _first_use(storage, source, trusted, token.claims, assertion, now)
    return trusted


def _check_claims(claims: dict, trusted: TrustedIssuer, now: datetime) -> None:
    at = now.timestamp()
    if claims.get("sub") != trusted.subject:
        raise AssertionRefused("sub is not the configured subject")
    audience = claims.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    if trusted.audience not in audiences:
        raise AssertionRefused("aud does not name the configured audience")
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        raise AssertionRefused("exp is missing")
    if exp <= at - SKEW:
        raise AssertionRefused("expired")
    if exp > at + MAX_LIFETIME + SKEW:
        raise AssertionRefused("exp is too far ahead")
    for name in ("nbf", "iat"):
        value = claims.get(name)
        if value is not None and (not isinstance(value, int | float) or value > at + SKEW):
            raise AssertionRefused(f"{name} is in the future")


async def _first_use(
    storage: StorageBackend, source: str, trusted: TrustedIssuer, claims: dict, assertion: str, now: datetime
) -> None:
    """Remember the assertion until it expires (in the store: every host refuses its replay)."""
    jti = claims.get("jti")
    seen = f"jti:{jti}" if isinstance(jti, str) and jti else f"jwt:{assertion}"
    fingerprint = hashlib.sha256(f"{trusted.issuer}\0{seen}".encode()).hexdigest()
    expires = datetime.fromtimestamp(float(claims["exp"]), now.tzinfo) + timedelta(seconds=SKEW)
    try:
        await storage.add_credential(source, Credential(REPLAY_KIND, fingerprint, "", now, expires=expires))
    except StorageError:
        raise AssertionRefused("replayed") from None
