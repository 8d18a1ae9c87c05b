"""The `[storage.tortoise]` table, and the tortoise connection settings it becomes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tortoise.backends.base.config_generator import expand_db_url

from scimhost.builtin.tortoise_storage.postgres_database import release_connection
from scimhost.builtin.tortoise_storage.postgres_tls import apply_tls_options, check_tls_options


@dataclass(frozen=True)
class TortoiseSettings:
    """The `[storage.tortoise]` table."""

    # sqlite://PATH (relative paths resolve against the config file's folder) or
    # postgres://user:password@host:5432/database, with libpq's TLS options if wanted:
    # ?sslmode=verify-full&sslrootcert=ca.pem (and sslcert, sslkey for a client certificate)
    url: str = "sqlite://./scimhost.sqlite3"
    # PostgreSQL connection pool bounds, per host process.
    min_connections: int = 1
    max_connections: int = 10
    # SQLite: how long a writer waits for the lock held by another process.
    busy_timeout_ms: int = 5000

    def __post_init__(self) -> None:
        scheme = urlsplit(self.url).scheme
        if scheme not in ("sqlite", "postgres", "postgresql", "asyncpg"):
            raise ValueError("url: must start with sqlite:// or postgres://")
        if not 1 <= self.min_connections <= self.max_connections:
            raise ValueError("max_connections: must be at least min_connections (and both at least 1)")
        if self.busy_timeout_ms < 0:
            raise ValueError("busy_timeout_ms: must not be negative")
        if scheme == "sqlite" and self.url[len("sqlite://") :].split("?", 1)[0] == ":memory:":
            raise ValueError("url: an in-memory SQLite database is not supported (the memory backend is one)")
        if scheme != "sqlite":
            check_tls_options(dict(parse_qsl(urlsplit(self.url).query)))


def tortoise_config(options: TortoiseSettings, base_dir: Path) -> dict[str, Any]:
    """Tortoise's connection settings (`engine`, `credentials`) for the table."""
    url = options.url
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        path = Path(url[len("sqlite://") :].split("?", 1)[0]).expanduser()
        if not path.is_absolute():
            path = (base_dir / path).resolve()
        # Pragmas, applied in this order: the busy timeout first, so that a second process
        # waits for the write lock (switching to WAL takes it) instead of failing at once;
        # WAL lets readers run beside the writer.
        credentials: dict[str, Any] = {"file_path": str(path), "busy_timeout": str(options.busy_timeout_ms)}
        credentials.update(dict(parse_qsl(parts.query)))
        credentials.setdefault("journal_mode", "WAL")
        credentials.setdefault("synchronous", "NORMAL")
        credentials.setdefault("foreign_keys", "ON")
        return {"engine": "tortoise.backends.sqlite", "credentials": credentials}
    if parts.scheme in ("postgresql", "asyncpg"):
        url = "postgres" + url[len(parts.scheme) :]
    config = expand_db_url(url)
    config["credentials"].setdefault("minsize", options.min_connections)
    config["credentials"].setdefault("maxsize", options.max_connections)
    config["credentials"]["reset"] = release_connection
    apply_tls_options(config["credentials"], base_dir)
    return config


def describe(config: dict[str, Any]) -> str:
    """Where the store is, for operators (never with the password)."""
    credentials = config["credentials"]
    if config["engine"].endswith("sqlite"):
        return f"SQLite {credentials['file_path']}"
    host = credentials.get("host") or "localhost"
    port = credentials.get("port") or 5432
    schema = f" (schema {credentials['schema']})" if credentials.get("schema") else ""
    return f"PostgreSQL {credentials.get('user') or ''}@{host}:{port}/{credentials.get('database')}{schema}"
