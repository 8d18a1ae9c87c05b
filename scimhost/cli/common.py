"""What the command modules share: exit codes, logging, the config path, and looking up
sources, sinks and times."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path

from scimhost.config import NO_CONFIG_FILE, ConfigError, config_path_from
from scimhost.host import Host
from scimhost.sources import Source
from scimhost.storage.backend import StorageError, StoreMissing

log = logging.getLogger("scimhost")

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def config_of(args: argparse.Namespace) -> Path | None:
    """The config file of a command: -c, else $SCIMHOST_CONFIG (said once when there is none:
    the defaults then apply, with no sources, and a store in the current folder)."""
    path = config_path_from(args.config)
    if path is None:
        print(f"warning: {NO_CONFIG_FILE}; the defaults apply, with no sources", file=sys.stderr)
    return path


def unknown(host: Host, what: str, name: str, known: list[str]) -> ConfigError:
    """The error for a source or sink a command names that the config lacks (or for every
    one, when the command was given no config file at all)."""
    if host.settings.path is None:
        return ConfigError([f"{NO_CONFIG_FILE} (without one no {what} is configured)"])
    return ConfigError([f"no {what} {name!r} is configured ({what}s: {', '.join(known) or 'none'})"])


def configured_source(host: Host, slug: str) -> Source:
    source = host.sources.get(slug)
    if source is None:
        raise unknown(host, "source", slug, list(host.sources))
    return source


def source_and_type(host: Host, slug: str, type_name: str):
    source = configured_source(host, slug)
    resource_type = source.catalog.resource_types.get(type_name)
    if resource_type is None:
        raise ConfigError([f"no resource type {type_name!r} (known: {', '.join(source.catalog.resource_types)})"])
    return source, resource_type


def sink_names(host: Host, name: str | None = None) -> list[str]:
    names = [s.name for s in host.settings.events.sinks]
    if name is not None and name not in names:
        raise unknown(host, "sink", name, names)
    return [name] if name is not None else names


def storage_problem(host: Host, exc: StorageError) -> str:
    """The line an operator reads for a store that failed: for one that does not exist yet,
    with the command that makes (or after creating it, fills) it."""
    if not isinstance(exc, StoreMissing):
        return str(exc)
    migrate = host.settings.command("migrate")
    return f"{exc}: `{migrate}` creates it" if exc.creatable else f"{exc}, then run `{migrate}`"


async def open_existing(host: Host) -> None:
    """Open the store of an administrative command: it must exist and be migrated already
    (such a command never creates a database or changes its schema)."""
    try:
        await host.storage.open(migrate=False, create=False)
    except StoreMissing as exc:
        raise StorageError(storage_problem(host, exc)) from exc
    try:
        pending = await host.storage.pending_migrations()
    except BaseException:
        await host.storage.close()
        raise
    if pending:
        await host.storage.close()
        raise StorageError(
            f"{host.storage.describe()} needs {len(pending)} migration(s) first: run `{host.settings.command('migrate')}`"
        )


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
