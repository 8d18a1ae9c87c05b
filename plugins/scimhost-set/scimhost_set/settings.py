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
        if not self.audience:
            raise ValueError("audience: must not be empty")
        if self.mode not in MODES:
            raise ValueError(f"mode: must be one of {', '.join(MODES)}")
        if not self.key_env or not all(ENV_NAME.match(name) for name in self.key_env):
            raise ValueError("key_env: must list at least one environment variable name")
        if self.bearer_env is not None and not ENV_NAME.match(self.bearer_env):
            raise ValueError("bearer_env: must be an environment variable name")
        if not 0 < self.timeout_seconds <= 300:
            raise ValueError("timeout_seconds: must be more than 0 and at most 300")
