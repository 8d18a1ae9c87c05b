"""Bearer tokens: generated from `secrets`, kept only as a hash, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets

# A recognisable prefix lets secret scanners and operators tell a scimhost token at a glance.
TOKEN_PREFIX = "scimhost_"
TOKEN_BYTES = 32  # 256 bits


def generate_token() -> str:
    """A new random token of 256 bits."""
    return TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)


def hash_token(token: str) -> str:
    """The stored form of a token.

    A fast hash is enough: issued tokens carry 256 random bits, so there is nothing to
    brute-force, and a slow KDF would cost every request.
    """
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def token_matches(presented: str, stored_hash: str | None) -> bool:
    """Whether `presented` is the token whose hash is `stored_hash`, in constant time."""
    if not stored_hash:
        return False
    return hmac.compare_digest(hash_token(presented), stored_hash)
