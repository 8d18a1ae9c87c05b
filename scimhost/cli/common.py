"""What the command modules share: exit codes, logging, the config path, and looking up
sources, sinks and times."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path

from scimhost.config import ConfigError, config_path_from
from scimhost.host import Host
from scimhost.storage.backend import StorageError

log = logging.getLogger("scimhost")

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def config_of(args: argparse.Namespace) -> Path | None:
    """The config file of a command: -c, else $SCIMHOST_CONFIG."""
    return config_path_from(args.config)


def source_and_type(host: Host, slug: str, type_name: str):
    source = host.sources.get(slug)
    if source is None:
        raise ConfigError([f"no source {slug!r} is configured (sources: {', '.join(host.sources) or 'none'})"])
    resource_type = source.catalog.resource_types.get(type_name)
    if resource_type is None:
        raise ConfigError([f"no resource type {type_name!r} (known: {', '.join(source.catalog.resource_types)})"])
    return source, resource_type


def sink_names(host: Host, name: str | None = None) -> list[str]:
    names = [s.name for s in host.settings.events.sinks]
    if name is not None and name not in names:
        raise ConfigError([f"no sink {name!r} is configured (sinks: {', '.join(names) or 'none'})"])
    return [name] if name is not None else names


async def open_existing(host: Host) -> None:
    """Open the store of an administrative command: it must exist and be migrated already
    (such a command never creates a database or changes its schema)."""
    await host.storage.open(migrate=False, create=False)
    try:
        pending = await host.storage.pending_migrations()
    except BaseException:
        await host.storage.close()
        raise
    if pending:
        await host.storage.close()
        raise StorageError(f"{host.storage.describe()} needs {len(pending)} migration(s) first: run `scimhost migrate`")


async def with_storage(host: Host, work):
    await open_existing(host)
    try:
        return await work(host.storage)
    finally:
        await host.storage.close()


class JsonFormatter(logging.Formatter):
    """One JSON object per message: time, level, logger, message (and the exception, if any)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def setup_logging(level: str, format: str = "text") -> None:
    """Messages on stderr (a line of text or a JSON object each); access lines on stdout."""
    root = logging.getLogger()
    # Replace only the handler this function added before (a test harness may have its own).
    for old in [h for h in root.handlers if getattr(h, "scimhost", False)]:
        root.removeHandler(old)
    handler = logging.StreamHandler(sys.stderr)
    handler.scimhost = True  # type: ignore[attr-defined]
    if format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Access lines are JSON objects, one per line, on stdout.
    access = logging.getLogger("scimhost.access")
    access.propagate = False
    if not access.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        access.addHandler(handler)
    access.setLevel(logging.INFO)
