"""libpq's TLS options in a PostgreSQL URL (`sslmode`, `sslrootcert`, `sslcert`, `sslkey`), as
the `ssl` argument asyncpg takes: the form every managed PostgreSQL documents."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

from scimhost.storage.backend import StorageError

# libpq's modes, weakest first (https://www.postgresql.org/docs/current/libpq-ssl.html).
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
FILE_OPTIONS = ("sslrootcert", "sslcert", "sslkey")
TLS_OPTIONS = ("sslmode", *FILE_OPTIONS)


def check_tls_options(query: dict[str, str]) -> None:
    """Raise ValueError for a mode libpq does not know, or certificate options without TLS."""
    mode = query.get("sslmode")
    if mode is not None and mode not in SSL_MODES:
        raise ValueError(f"url: sslmode must be one of {', '.join(SSL_MODES)} (got {mode!r})")
    if mode == "disable" and any(name in query for name in FILE_OPTIONS):
        raise ValueError("url: sslrootcert, sslcert and sslkey need an sslmode other than disable")
    if ("sslcert" in query) != ("sslkey" in query):
        raise ValueError("url: sslcert and sslkey go together (a client certificate and its key)")


def apply_tls_options(credentials: dict[str, Any], base_dir: Path) -> None:
    """Replace the URL's libpq TLS options in tortoise's credentials by asyncpg's `ssl`."""
    options = {name: credentials.pop(name) for name in TLS_OPTIONS if name in credentials}
    if not options:
        return
    mode = options.get("sslmode", "prefer")
    files = {name: _resolved(options[name], base_dir) for name in FILE_OPTIONS if name in options}
    if mode == "disable":
        credentials["ssl"] = False
        return
    if mode in ("allow", "prefer") and not files:
        credentials["ssl"] = mode  # asyncpg's own fallback to a plain connection
        return
    # As libpq: require with a root certificate verifies the chain like verify-ca.
    verify = mode in ("verify-ca", "verify-full") or "sslrootcert" in files
    try:
        context = ssl.create_default_context(cafile=files.get("sslrootcert")) if verify else _unverified()
        context.check_hostname = mode == "verify-full"
        if "sslcert" in files:
            context.load_cert_chain(files["sslcert"], files["sslkey"])
    except (OSError, ssl.SSLError) as exc:
        raise StorageError(f"storage.tortoise.url: the TLS certificate files cannot be used: {exc}") from None
    credentials["ssl"] = context


def _unverified() -> ssl.SSLContext:
    # sslmode=require: encrypted, the server's certificate not checked (libpq's meaning).
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _resolved(value: str, base_dir: Path) -> str:
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else (base_dir / path).resolve())
