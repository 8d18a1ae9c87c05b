"""`scimhost events list|show|prune|dispatch`: the event log, and its dispatcher alone."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
from datetime import UTC, datetime, timedelta

from scimhost.app import run_dispatcher
from scimhost.cli.common import EXIT_FAILED, EXIT_OK, config_of, configured_source, open_existing
from scimhost.delivery.envelope import event_json
from scimhost.host import Host, load_host
from scimhost.timestamps import shown

log = logging.getLogger("scimhost")


def cmd_events_list(args: argparse.Namespace) -> int:
    host = load_host(config_of(args), strict=False)
    slugs = [args.source] if args.source else list(host.sources)
    if args.source:
        configured_source(host, args.source)
    events = asyncio.run(_list_events(host, slugs, args.resource_id, args.since, args.limit))
    for event in events:
        if args.json:
            print(json.dumps(event_json(event)))
        else:
            changed = ", ".join(event.changed) or "-"
            print(
                f"{event.seq:>8} {shown(event.created)} {event.source:<12} "
                f"{event.action:<8} {event.resource_type} {event.resource_id} v{event.version or '-'} changed: {changed}"
            )
    return EXIT_OK


async def _list_events(host: Host, slugs: list[str], resource_id, since, limit: int):
    """The oldest `limit` events of these sources, in sequence order (each source read scoped)."""
    await open_existing(host)
    try:
        events = []
        for slug in slugs:
            events += await host.storage.list_events(slug, resource_id=resource_id, since=since, limit=limit)
    finally:
        await host.storage.close()
    return sorted(events, key=lambda e: e.seq)[: max(limit, 0)]


def cmd_events_show(args: argparse.Namespace) -> int:
    host = load_host(config_of(args), strict=False)
    wanted: str | int = int(args.event) if args.event.isdigit() else args.event
    found = asyncio.run(_find_event(host, wanted))
    if found is None:
        print(f"error: no event {args.event!r} in any configured source", file=sys.stderr)
        return EXIT_FAILED
    event, deliveries = found
    shown = {
        **event_json(event),
        "deliveries": [{**d, "done_at": d["done_at"].isoformat() if d["done_at"] else None} for d in deliveries],
    }
    print(json.dumps(shown) if args.json else json.dumps(shown, indent=2))
    return EXIT_OK


async def _find_event(host: Host, wanted: str | int):
    """The event (looked up in each source, scoped) and its deliveries."""
    await open_existing(host)
    try:
        for slug in host.sources:
            event = await host.storage.get_event(slug, wanted)
            if event is not None:
                return event, await host.storage.deliveries_of(slug, event.seq)
        return None
    finally:
        await host.storage.close()


def cmd_events_prune(args: argparse.Namespace) -> int:
    host = load_host(config_of(args), strict=False)
    days = host.settings.events.retention_days
    before = datetime.now(UTC) - timedelta(days=days)
    pruned = asyncio.run(_prune_events(host, before))
    if args.json:
        print(json.dumps({"before": before.isoformat(), "pruned": pruned}))
    else:
        for slug, count in pruned.items():
            print(f"source {slug}: {count} events older than {days} days deleted")
    return EXIT_OK


async def _prune_events(host: Host, before: datetime) -> dict[str, int]:
    await open_existing(host)
    try:
        return {slug: await host.storage.prune_events(slug, before=before) for slug in host.sources}
    finally:
        await host.storage.close()


def cmd_events_dispatch(args: argparse.Namespace) -> int:
    host = load_host(config_of(args), strict=False)
    if not host.settings.events.sinks:
        print("error: no [[events.sinks]] are configured: there is nothing to deliver", file=sys.stderr)
        return EXIT_FAILED
    host.require_sink_environment()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_dispatch_until_stopped(host))
    return EXIT_OK


async def _dispatch_until_stopped(host: Host) -> None:
    """The dispatcher alone (in its own process or container), until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await open_existing(host)
    try:
        async with run_dispatcher(host, force=True):
            log.info("dispatching events to %s", ", ".join(s.name for s in host.settings.events.sinks))
            await stop.wait()
    finally:
        await host.storage.close()
