"""What the command modules share: exit codes, logging, the config path, and looking up
sources, sinks and times."""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import datetime, timezone
from pathlib import Path

from scimhost.config import ConfigError, config_path_from
from scimhost.host import Host

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


async def with_storage(host: Host, work):
    await host.storage.open(migrate=True)
    try:
        return await work(host.storage)
    finally:
        await host.storage.close()


def moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    # Access lines are JSON objects, one per line, on stdout.
    access = logging.getLogger("scimhost.access")
    access.propagate = False
    if not access.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        access.addHandler(handler)
    access.setLevel(logging.INFO)
