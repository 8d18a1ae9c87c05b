"""The signing keys of a SET sink: PEM private keys read from the environment, the first
signing, all of them published as a JWKS."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey


@dataclass(frozen=True)
class SigningKey:
    """One key: its joserfc key, its algorithm and its key id (the RFC 7638 thumbprint)."""

    key: RSAKey | ECKey
    algorithm: str
    kid: str

    def public_jwk(self) -> dict[str, Any]:
        return {**self.key.as_dict(private=False), "kid": self.kid, "alg": self.algorithm, "use": "sig"}


class KeyProblem(ValueError):
    """A key variable that is unset or holds no usable private key."""


def load_key(name: str, environ: Mapping[str, str]) -> SigningKey:
    pem = environ.get(name, "")
    if not pem.strip():
        raise KeyProblem(f"the environment variable {name} is not set")
    for kind, algorithm in ((RSAKey, "RS256"), (ECKey, "ES256")):
        try:
            key = kind.import_key(pem.encode())
        except (JoseError, ValueError, TypeError):
            continue
        if not key.is_private:
            raise KeyProblem(f"{name} holds a public key; a SET sink signs with a private one")
        if isinstance(key, ECKey) and key.curve_name != "P-256":
            raise KeyProblem(f"{name}: only P-256 EC keys (ES256) are supported")
        if isinstance(key, RSAKey) and key.raw_value.key_size < 2048:
            raise KeyProblem(f"{name}: an RSA key must have at least 2048 bits")
        return SigningKey(key, algorithm, key.thumbprint())
    raise KeyProblem(f"{name} holds no PEM RSA or P-256 EC private key")


def load_keys(names: tuple[str, ...], environ: Mapping[str, str] | None = None) -> list[SigningKey]:
    environ = os.environ if environ is None else environ
    return [load_key(name, environ) for name in names]


def jwks(keys: list[SigningKey]) -> dict[str, Any]:
    return {"keys": [key.public_jwk() for key in keys]}


def key_problems(names: tuple[str, ...], token_env: tuple[str, str] | None = None) -> list[str]:
    """What the environment lacks for a SET sink: its keys, and the variable `token_env` names
    (setting name, variable) if it has one; one line each."""
    problems = []
    try:
        load_keys(names)
    except KeyProblem as exc:
        problems.append(f"key_env: {exc}")
    if token_env is not None and not os.environ.get(token_env[1]):
        problems.append(f"{token_env[0]}: the environment variable {token_env[1]} is not set")
    return problems
