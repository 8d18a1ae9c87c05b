"""The `set-push` sink's keys of its `[[events.sinks]]` entry."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MODES = ("notice", "full")


@dataclass(frozen=True)
class SetPushSettings:
    """Where the SETs go, for whom, how much they carry and how they are signed."""

    url: str
    # The receiver's identifier, the SETs' `aud`.
    audience: str
    # "notice": the changed attribute paths, the receiver reads the resource back;
    # "full": the resource (create), the PUT body (replace), a PatchOp (patch).
    mode: str = "notice"
    # The SETs' `iss`; empty: the host's public URL.
    issuer: str = ""
    # Environment variables holding PEM private keys (RSA: RS256, P-256: ES256); the first
    # signs, every one is published in the JWKS (rotation: add the new one first, drop the
    # old one once receivers have fetched the keys again).
    key_env: tuple[str, ...] = ()
    # An environment variable holding a bearer token the receiver asks for, if any.
    bearer_env: str | None = None
    timeout_seconds: float = 15.0

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("url: must be an absolute http:// or https:// URL")
        _check_common(self.audience, self.mode, self.key_env)
        if self.bearer_env is not None and not ENV_NAME.match(self.bearer_env):
            raise ValueError("bearer_env: must be an environment variable name")
        if not 0 < self.timeout_seconds <= 300:
            raise ValueError("timeout_seconds: must be more than 0 and at most 300")


@dataclass(frozen=True)
class SetPollSettings:
    """A SET Poll feed (RFC 8936): the receiver fetches the SETs from the host and acknowledges
    them."""

    audience: str
    # The environment variable holding the token the receiver polls with (a bearer token).
    token_env: str
    mode: str = "notice"
    issuer: str = ""
    key_env: tuple[str, ...] = ()
    # A SET handed out and not acknowledged within this is handed out again.
    inflight_seconds: float = 120.0
    # The longest a poll without `returnImmediately` waits for a SET.
    max_wait_seconds: float = 30.0

    def __post_init__(self) -> None:
        _check_common(self.audience, self.mode, self.key_env)
        if not ENV_NAME.match(self.token_env):
            raise ValueError("token_env: must be an environment variable name")
        if not 1 <= self.inflight_seconds <= 86400:
            raise ValueError("inflight_seconds: must be between 1 and 86400")
        if not 0 <= self.max_wait_seconds <= 300:
            raise ValueError("max_wait_seconds: must be between 0 and 300")


def _check_common(audience: str, mode: str, key_env: tuple[str, ...]) -> None:
    if not audience:
        raise ValueError("audience: must not be empty")
    if mode not in MODES:
        raise ValueError(f"mode: must be one of {', '.join(MODES)}")
    if not key_env or not all(ENV_NAME.match(name) for name in key_env):
        raise ValueError("key_env: must list at least one environment variable name")
