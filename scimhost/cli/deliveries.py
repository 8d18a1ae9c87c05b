"""`scimhost deliveries ...` and `scimhost webhooks ...`: the state of each sink's deliveries."""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import secrets
import sys
from datetime import UTC, datetime

from scimhost.cli.common import EXIT_FAILED, EXIT_OK, config_of, sink_names, with_storage
from scimhost.delivery.status import sink_status
from scimhost.host import load_host
from scimhost.timestamps import shown


def cmd_deliveries_status(args: argparse.Namespace) -> int:
    host = load_host(config_of(args), strict=False)
    names = sink_names(host)
    types = {s.name: s.type for s in host.settings.events.sinks}

    async def read(storage):
        now = datetime.now(UTC)
        rows = []
        for name in names:
            rows.append(sink_status(name, types[name], await storage.sink_stats(name), now))
        return rows, await storage.lease_holder("dispatcher", now=now)

    rows, holder = asyncio.run(with_storage(host, read))
    if args.json:
        print(json.dumps({"sinks": rows, "dispatcher": holder}, indent=2))
        return EXIT_OK
    print(f"dispatcher: {holder or 'none running'}")
    for row in rows:
        age = (
            f", oldest pending {row['oldest_pending_seconds']:.0f}s"
            if row["oldest_pending_seconds"] is not None
            else ""
        )
        state = row["state"].upper() + (f" ({row['paused_reason']})" if row["paused"] else "")
        print(
            f"{row['name']:<16} {row['type']:<10} {state}: pending {row['pending']} ({row['inflight']} in flight), "
            f"dead {row['dead']}, done {row['done']}{age}"
        )
        if row["retrying"]:
            print(
                f"{'':<16} {row['retrying']} waiting to retry (up to {row['most_attempts']} attempts so far), "
                f"next attempt {shown(row['next_attempt'])}; `deliveries retry {row['name']} --now` sends them now"
            )
        if row["last_error"]:
            print(f"{'':<16} last error: {row['last_error']}")
    return EXIT_OK


def cmd_deliveries_retry(args: argparse.Namespace) -> int:
    """Send deliveries now: the dead ones (--dead), every one waiting for its next attempt
    (--now: the sink's backoff ends), or these events' whether dead or waiting (--seq)."""
    host = load_host(config_of(args), strict=False)
    [name] = sink_names(host, args.sink)
    states: tuple[str, ...]
    if args.dead:
        states, what = ("dead",), "dead"
    elif args.now:
        states, what = ("pending",), "waiting for a retry"
    else:
        states, what = ("dead", "pending"), "dead or waiting"
    count = asyncio.run(
        with_storage(
            host,
            lambda storage: storage.requeue_deliveries(name, now=datetime.now(UTC), states=states, seqs=args.seq),
        )
    )
    if args.dead or args.seq:
        print(f"{count} {what} {'delivery' if count == 1 else 'deliveries'} of {name} will be sent now")
    else:
        print(f"{count} {'delivery' if count == 1 else 'deliveries'} {what} of {name} will be sent now")
    return EXIT_OK


def cmd_deliveries_replay(args: argparse.Namespace) -> int:
    host = load_host(config_of(args), strict=False)
    [name] = sink_names(host, args.sink)
    count = asyncio.run(
        with_storage(
            host,
            lambda storage: storage.requeue_deliveries(
                name, now=datetime.now(UTC), states=("done", "dead"), since=args.since
            ),
        )
    )
    print(
        f"{count} event{'' if count == 1 else 's'} since {shown(args.since)} will be sent to {name} again (with the same event ids)"
    )
    return EXIT_OK


def cmd_deliveries_pause(args: argparse.Namespace) -> int:
    host = load_host(config_of(args), strict=False)
    [name] = sink_names(host, args.sink)
    reason = "paused by an operator" if args.paused else None
    asyncio.run(
        with_storage(
            host,
            lambda storage: storage.set_sink_paused(name, args.paused, reason=reason, now=datetime.now(UTC)),
        )
    )
    print(f"{name}: {'paused' if args.paused else 'resumed'}")
    return EXIT_OK


def cmd_webhooks_secret(args: argparse.Namespace) -> int:
    print("whsec_" + base64.b64encode(secrets.token_bytes(32)).decode())
    print("Give it to the receiver and put it in the sink's secret_env variable; it is not stored.", file=sys.stderr)
    return EXIT_OK


def cmd_webhooks_test(args: argparse.Namespace) -> int:
    """Send one `scimhost.ping` envelope through the sink, outside the event log, and say what
    the receiver answered."""
    host = load_host(config_of(args), strict=False)
    [name] = sink_names(host, args.sink)
    host.require_sink_environment([name])
    settings = next(s for s in host.settings.events.sinks if s.name == name)
    sink = host.registry.event_sinks[settings.type](settings.options, sink_name=name)
    ping = {
        "type": "scimhost.ping",
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "data": {
            "id": f"evt_{secrets.token_hex(16)}",
            "seq": None,
            "source": None,
            "resourceType": None,
            "resourceId": None,
            "action": "ping",
            "version": None,
        },
    }

    async def send():
        await sink.start()
        try:
            return (await sink.deliver([ping]))[0]
        finally:
            await sink.close()

    outcome = asyncio.run(send())
    status = f" ({outcome.status})" if outcome.status else ""
    print(f"{name}: {outcome.kind}{status}{': ' + outcome.detail if outcome.detail else ''}")
    return EXIT_OK if outcome.kind == "delivered" else EXIT_FAILED
