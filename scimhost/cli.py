"""The `scimhost` command: serve, check, plugins, sources."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import multiprocessing
import base64
import secrets
import signal
import sys
from datetime import datetime, timedelta, timezone
from collections.abc import Sequence
from pathlib import Path

from aiohttp import web

from scimhost import __version__
from scimhost.app import build_app, run_dispatcher
from scimhost.config import ConfigError, config_path_from, read_config_file, read_plugin_settings
from scimhost.host import Host, load_host
from scimhost.http.access_log import JsonAccessLogger
from scimhost.http.protocol_log import protocol_logger
from scimhost.mapping.runtime import MappingError
from scimhost.mapping.service import MappingFailed
from scimhost.resources import ResourceService
from scimhost.scim.errors import ScimError
from scimhost.scim.listing import ListParams, encode_cursor
from scimhost.scim.validation import validate_resource
from scimhost.plugins import PluginLoadError, load_plugins
from scimhost.registry import RegistryError, build_registry
from scimhost.storage.backend import StorageError, StoredEvent

log = logging.getLogger("scimhost")

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    _setup_logging(args.log_level)
    try:
        return args.func(args)
    except (ConfigError, PluginLoadError, RegistryError) as exc:
        for line in str(exc).splitlines():
            print(f"error: {line}", file=sys.stderr)
        return EXIT_FAILED
    except StorageError as exc:
        print(f"error: storage: {exc}", file=sys.stderr)
        return EXIT_FAILED


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    # Accepted before or after the subcommand; SUPPRESS keeps a later default from erasing it.
    common.add_argument("-c", "--config", default=argparse.SUPPRESS, help="TOML config file (or $SCIMHOST_CONFIG)")
    common.add_argument("--log-level", default=argparse.SUPPRESS, help="DEBUG, INFO, WARNING or ERROR")

    parser = argparse.ArgumentParser(prog="scimhost", description="A SCIM 2.0 service provider.")
    parser.add_argument("-c", "--config", default=None, help="TOML config file (or $SCIMHOST_CONFIG)")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR")
    parser.add_argument("--version", action="version", version=f"scimhost {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", parents=[common], help="run the server")
    serve.add_argument("--host", help="address to listen on (default: [server] host)")
    serve.add_argument("--port", type=int, help="port to listen on (default: [server] port)")
    serve.add_argument("--workers", type=int, help="worker processes sharing the port (default: [server] workers)")
    serve.set_defaults(func=cmd_serve)

    check = commands.add_parser("check", parents=[common], help="validate config, plugins and storage")
    check.set_defaults(func=cmd_check)

    plugins = commands.add_parser("plugins", parents=[common], help="list plugins and load failures")
    plugins.add_argument("--json", action="store_true", help="print JSON")
    plugins.set_defaults(func=cmd_plugins)

    sources = commands.add_parser("sources", parents=[common], help="list sources, issue tokens")
    source_commands = sources.add_subparsers(dest="sources_command", required=True, metavar="COMMAND")
    listing = source_commands.add_parser("list", parents=[common], help="list configured sources")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(func=cmd_sources_list)
    token = source_commands.add_parser("token", parents=[common], help="issue a new token (replaces the old one)")
    token.add_argument("slug")
    token.add_argument("--json", action="store_true", help="print JSON")
    token.set_defaults(func=cmd_sources_token)
    mappings = commands.add_parser("mappings", parents=[common], help="test property mappings, list variables")
    mapping_commands = mappings.add_subparsers(dest="mappings_command", required=True, metavar="COMMAND")
    test = mapping_commands.add_parser("test", parents=[common], help="evaluate a source's mappings on a document")
    test.add_argument("slug")
    test.add_argument("--resource-type", default="User")
    test.add_argument("--expression", help="evaluate only this expression")
    test.add_argument("--input", default="-", help="the SCIM document (a file, or - for stdin)")
    test.add_argument("--json", action="store_true", help="print the record on one line")
    test.set_defaults(func=cmd_mappings_test)
    variables = mapping_commands.add_parser("variables", parents=[common], help="the variables expressions see")
    variables.add_argument("slug")
    variables.add_argument("--resource-type", default="User")
    variables.add_argument("--input", help="a SCIM document (a file, or - for stdin): list the variables it produces")
    variables.set_defaults(func=cmd_mappings_variables)

    records = commands.add_parser("records", parents=[common], help="read the directory records of a source")
    record_commands = records.add_subparsers(dest="records_command", required=True, metavar="COMMAND")
    show = record_commands.add_parser("show", parents=[common], help="the record stored with one resource")
    show.add_argument("slug")
    show.add_argument("resource_type", metavar="TYPE", help="User or Group")
    show.add_argument("id")
    show.add_argument("--json", action="store_true", help="print the record on one line")
    show.set_defaults(func=cmd_records_show)
    listing = record_commands.add_parser("list", parents=[common], help="records of the resources a filter matches")
    listing.add_argument("slug")
    listing.add_argument("resource_type", metavar="TYPE", help="User or Group")
    listing.add_argument("--filter", help="a SCIM filter (default: every resource)")
    listing.add_argument("--json", action="store_true", help="one JSON object per line: id and record")
    listing.set_defaults(func=cmd_records_list)

    events = commands.add_parser("events", parents=[common], help="read and prune the event log")
    event_commands = events.add_subparsers(dest="events_command", required=True, metavar="COMMAND")
    listing = event_commands.add_parser("list", parents=[common], help="events in the order they were committed")
    listing.add_argument("--source", help="only this source's events (default: every source)")
    listing.add_argument("--resource-id", help="only this resource's events")
    listing.add_argument("--since", type=_moment, help="only events at or after this ISO 8601 time")
    listing.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.set_defaults(func=cmd_events_list)
    show = event_commands.add_parser("show", parents=[common], help="one event: the change, who made it, the resource after it")
    show.add_argument("event", metavar="ID_OR_SEQ", help="an event id (evt_...) or sequence number")
    show.add_argument("--json", action="store_true", help="print the event on one line")
    show.set_defaults(func=cmd_events_show)
    prune = event_commands.add_parser("prune", parents=[common], help="delete events older than [events] retention_days")
    prune.add_argument("--json", action="store_true", help="print JSON")
    prune.set_defaults(func=cmd_events_prune)
    dispatch = event_commands.add_parser("dispatch", parents=[common], help="run only the dispatcher, until stopped")
    dispatch.set_defaults(func=cmd_events_dispatch)

    deliveries = commands.add_parser("deliveries", parents=[common], help="the state of each sink's deliveries")
    delivery_commands = deliveries.add_subparsers(dest="deliveries_command", required=True, metavar="COMMAND")
    status = delivery_commands.add_parser("status", parents=[common], help="pending, in flight, dead, paused, per sink")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(func=cmd_deliveries_status)
    retry = delivery_commands.add_parser("retry", parents=[common], help="send dead deliveries again, now")
    retry.add_argument("sink")
    chosen = retry.add_mutually_exclusive_group(required=True)
    chosen.add_argument("--dead", action="store_true", help="every dead delivery of the sink")
    chosen.add_argument("--seq", type=int, nargs="+", help="these events' deliveries")
    retry.set_defaults(func=cmd_deliveries_retry)
    replay = delivery_commands.add_parser("replay", parents=[common], help="send events since a time again (same ids)")
    replay.add_argument("sink")
    replay.add_argument("--since", type=_moment, required=True, help="an ISO 8601 time")
    replay.set_defaults(func=cmd_deliveries_replay)
    for verb in ("pause", "resume"):
        command = delivery_commands.add_parser(verb, parents=[common], help=f"{verb} a sink's deliveries")
        command.add_argument("sink")
        command.set_defaults(func=cmd_deliveries_pause, paused=verb == "pause")

    webhooks = commands.add_parser("webhooks", parents=[common], help="webhook signing secrets")
    webhook_commands = webhooks.add_subparsers(dest="webhooks_command", required=True, metavar="COMMAND")
    secret = webhook_commands.add_parser("secret", parents=[common], help="print a new whsec_ signing secret, once")
    secret.add_argument("sink", nargs="?", help="(for the record: the secret is not stored anywhere)")
    secret.set_defaults(func=cmd_webhooks_secret)
    ping = webhook_commands.add_parser("test", parents=[common], help="send a scimhost.ping event to a sink, now")
    ping.add_argument("sink")
    ping.set_defaults(func=cmd_webhooks_test)
    return parser


def _setup_logging(level: str) -> None:
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


def _config(args: argparse.Namespace) -> Path | None:
    return config_path_from(args.config)


# --- serve ---------------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    config = _config(args)
    host = load_host(config)
    server = host.settings.server
    address = args.host or server.host
    port = server.port if args.port is None else args.port
    workers = args.workers or server.workers
    if workers < 1:
        print("error: --workers must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    if workers == 1:
        asyncio.run(serve_host(host, address, port, reuse_port=False))
        return EXIT_OK
    if port == 0:
        print("error: several workers need a fixed port, not 0", file=sys.stderr)
        return EXIT_USAGE
    # Migrate once before the workers start, so they never race to change the schema.
    asyncio.run(_migrate(host))
    return _run_workers(config, address, port, workers, args.log_level)


LINGERING_SECONDS = 2.0


RECORD_PAGE = 200


# --- deliveries ----------------------------------------------------------------------------------


def _sink_names(host: Host, name: str | None = None) -> list[str]:
    names = [s.name for s in host.settings.events.sinks]
    if name is not None and name not in names:
        raise ConfigError([f"no sink {name!r} is configured (sinks: {', '.join(names) or 'none'})"])
    return [name] if name is not None else names


async def _with_storage(host: Host, work):
    await host.storage.open(migrate=True)
    try:
        return await work(host.storage)
    finally:
        await host.storage.close()


def cmd_deliveries_status(args: argparse.Namespace) -> int:
    host = load_host(_config(args), strict=False)
    names = _sink_names(host)
    types = {s.name: s.type for s in host.settings.events.sinks}

    async def read(storage):
        now = datetime.now(timezone.utc)
        rows = []
        for name in names:
            stats = await storage.sink_stats(name)
            rows.append({
                "name": name, "type": types[name], "pending": stats.pending, "inflight": stats.inflight,
                "dead": stats.dead, "done": stats.done, "paused": stats.paused, "paused_reason": stats.paused_reason,
                "oldest_pending_seconds": (now - stats.oldest_pending).total_seconds() if stats.oldest_pending else None,
                "last_error": stats.last_error,
            })
        return rows, await storage.lease_holder("dispatcher", now=now)

    rows, holder = asyncio.run(_with_storage(host, read))
    if args.json:
        print(json.dumps({"sinks": rows, "dispatcher": holder}, indent=2))
        return EXIT_OK
    print(f"dispatcher: {holder or 'none running'}")
    for row in rows:
        age = f", oldest pending {row['oldest_pending_seconds']:.0f}s" if row["oldest_pending_seconds"] is not None else ""
        paused = f" PAUSED ({row['paused_reason']})" if row["paused"] else ""
        print(f"{row['name']:<16} {row['type']:<10} pending {row['pending']}, in flight {row['inflight']}, "
              f"dead {row['dead']}, done {row['done']}{age}{paused}")
        if row["last_error"]:
            print(f"{'':<16} last error: {row['last_error']}")
    return EXIT_OK


def cmd_deliveries_retry(args: argparse.Namespace) -> int:
    host = load_host(_config(args), strict=False)
    [name] = _sink_names(host, args.sink)
    count = asyncio.run(_with_storage(host, lambda storage: storage.requeue_deliveries(
        name, now=datetime.now(timezone.utc), states=("dead",), seqs=args.seq)))
    print(f"{count} dead deliveries of {name} will be sent again")
    return EXIT_OK


def cmd_deliveries_replay(args: argparse.Namespace) -> int:
    host = load_host(_config(args), strict=False)
    [name] = _sink_names(host, args.sink)
    count = asyncio.run(_with_storage(host, lambda storage: storage.requeue_deliveries(
        name, now=datetime.now(timezone.utc), states=("done", "dead"), since=args.since)))
    print(f"{count} events since {args.since.isoformat()} will be sent to {name} again (with the same event ids)")
    return EXIT_OK


def cmd_deliveries_pause(args: argparse.Namespace) -> int:
    host = load_host(_config(args), strict=False)
    [name] = _sink_names(host, args.sink)
    reason = "paused by an operator" if args.paused else None
    asyncio.run(_with_storage(host, lambda storage: storage.set_sink_paused(
        name, args.paused, reason=reason, now=datetime.now(timezone.utc))))
    print(f"{name}: {'paused' if args.paused else 'resumed'}")
    return EXIT_OK


def cmd_webhooks_secret(args: argparse.Namespace) -> int:
    print("whsec_" + base64.b64encode(secrets.token_bytes(32)).decode())
    print("Give it to the receiver and put it in the sink's secret_env variable; it is not stored.",
          file=sys.stderr)
    return EXIT_OK


def cmd_webhooks_test(args: argparse.Namespace) -> int:
    """Send one `scimhost.ping` envelope through the sink, outside the event log, and say what
    the receiver answered."""
    host = load_host(_config(args), strict=False)
    [name] = _sink_names(host, args.sink)
    settings = next(s for s in host.settings.events.sinks if s.name == name)
    sink = host.registry.event_sinks[settings.type](settings.options, sink_name=name)
    ping = {"type": "scimhost.ping", "timestamp": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            "data": {"id": f"evt_{secrets.token_hex(16)}", "seq": None, "source": None, "resourceType": None,
                     "resourceId": None, "action": "ping", "version": None}}

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


def cmd_events_dispatch(args: argparse.Namespace) -> int:
    host = load_host(_config(args), strict=False)
    if not host.settings.events.sinks:
        print("error: no [[events.sinks]] are configured: there is nothing to deliver", file=sys.stderr)
        return EXIT_FAILED
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_dispatch_until_stopped(host))
    return EXIT_OK


async def _dispatch_until_stopped(host: Host) -> None:
    """The dispatcher alone (in its own process or container), until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await host.storage.open(migrate=True)
    try:
        async with run_dispatcher(host, force=True):
            log.info("dispatching events to %s", ", ".join(s.name for s in host.settings.events.sinks))
            await stop.wait()
    finally:
        await host.storage.close()


# --- events --------------------------------------------------------------------------------------


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def event_json(event: StoredEvent) -> dict:
    """An event as the commands print it."""
    return {
        "seq": event.seq, "id": event.id, "created": event.created.isoformat(), "source": event.source,
        "resourceType": event.resource_type, "resourceId": event.resource_id, "externalId": event.external_id,
        "action": event.action, "version": event.version, "actor": event.actor, "changed": event.changed,
        "members": event.members, "resource": event.resource, "record": event.record,
    }


def cmd_events_list(args: argparse.Namespace) -> int:
    host = load_host(_config(args), strict=False)
    slugs = [args.source] if args.source else list(host.sources)
    if args.source and args.source not in host.sources:
        print(f"error: no source {args.source!r} is configured", file=sys.stderr)
        return EXIT_FAILED
    events = asyncio.run(_list_events(host, slugs, args.resource_id, args.since, args.limit))
    for event in events:
        if args.json:
            print(json.dumps(event_json(event)))
        else:
            changed = ", ".join(event.changed) or "-"
            print(f"{event.seq:>8} {event.created.isoformat(timespec='seconds')} {event.source:<12} "
                  f"{event.action:<8} {event.resource_type} {event.resource_id} v{event.version or '-'} changed: {changed}")
    return EXIT_OK


async def _list_events(host: Host, slugs: list[str], resource_id, since, limit: int):
    """The oldest `limit` events of these sources, in sequence order (each source read scoped)."""
    await host.storage.open(migrate=True)
    try:
        events = []
        for slug in slugs:
            events += await host.storage.list_events(slug, resource_id=resource_id, since=since, limit=limit)
    finally:
        await host.storage.close()
    return sorted(events, key=lambda e: e.seq)[: max(limit, 0)]


def cmd_events_show(args: argparse.Namespace) -> int:
    host = load_host(_config(args), strict=False)
    wanted: str | int = int(args.event) if args.event.isdigit() else args.event
    found = asyncio.run(_find_event(host, wanted))
    if found is None:
        print(f"error: no event {args.event!r} in any configured source", file=sys.stderr)
        return EXIT_FAILED
    event, deliveries = found
    shown = {**event_json(event), "deliveries": [
        {**d, "done_at": d["done_at"].isoformat() if d["done_at"] else None} for d in deliveries]}
    print(json.dumps(shown) if args.json else json.dumps(shown, indent=2))
    return EXIT_OK


async def _find_event(host: Host, wanted: str | int):
    """The event (looked up in each source, scoped) and its deliveries."""
    await host.storage.open(migrate=True)
    try:
        for slug in host.sources:
            event = await host.storage.get_event(slug, wanted)
            if event is not None:
                return event, await host.storage.deliveries_of(slug, event.seq)
        return None
    finally:
        await host.storage.close()


def cmd_events_prune(args: argparse.Namespace) -> int:
    host = load_host(_config(args), strict=False)
    days = host.settings.events.retention_days
    before = datetime.now(timezone.utc) - timedelta(days=days)
    pruned = asyncio.run(_prune_events(host, before))
    if args.json:
        print(json.dumps({"before": before.isoformat(), "pruned": pruned}))
    else:
        for slug, count in pruned.items():
            print(f"source {slug}: {count} events older than {days} days deleted")
    return EXIT_OK


async def _prune_events(host: Host, before: datetime) -> dict[str, int]:
    await host.storage.open(migrate=True)
    try:
        return {slug: await host.storage.prune_events(slug, before=before) for slug in host.sources}
    finally:
        await host.storage.close()


async def serve_host(host: Host, address: str, port: int, *, reuse_port: bool) -> None:
    """Serve until SIGTERM or SIGINT, then stop accepting and drain in-flight requests."""
    settings = host.settings.server
    runner = web.AppRunner(
        build_app(host),
        handle_signals=False,
        shutdown_timeout=settings.shutdown_timeout,
        keepalive_timeout=settings.idle_timeout,
        # After an answer given before the whole body was read (408, 413), the rest of the body
        # is read and dropped this long, so the client sees the answer, then the connection closes.
        lingering_time=LINGERING_SECONDS,
        logger=protocol_logger(),
        access_log_class=JsonAccessLogger,
        access_log=logging.getLogger("scimhost.access") if settings.access_log else None,
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, address, port, reuse_port=reuse_port or None)
        await site.start()
        for bound in runner.addresses:
            log.info("listening on %s:%s", bound[0], bound[1])
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
        log.info("shutting down: draining in-flight requests (up to %ss)", settings.shutdown_timeout)
    finally:
        await runner.cleanup()


async def _migrate(host: Host) -> None:
    await host.storage.open(migrate=True)
    await host.storage.close()


def _worker_main(config: Path | None, address: str, port: int, log_level: str) -> None:
    _setup_logging(log_level)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_host(load_host(config), address, port, reuse_port=True))


def _run_workers(config: Path | None, address: str, port: int, workers: int, log_level: str) -> int:
    # spawn, not fork: a forked worker would inherit the parent's connections and state.
    ctx = multiprocessing.get_context("spawn")
    processes = [
        ctx.Process(target=_worker_main, args=(config, address, port, log_level), name=f"scimhost-worker-{i}")
        for i in range(workers)
    ]
    stopping = False

    def stop(signum, frame):
        nonlocal stopping
        stopping = True
        for process in processes:
            if process.is_alive():
                process.terminate()  # SIGTERM: each worker drains its requests

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for process in processes:
        process.start()
    log.info("started %d workers on %s:%s", workers, address, port)
    exit_code = EXIT_OK
    # A worker that dies on its own takes the others down: a supervisor restarts the whole.
    while any(p.is_alive() for p in processes):
        for process in processes:
            process.join(timeout=0.5)
            if not process.is_alive() and not stopping:
                log.error("%s exited with code %s; stopping", process.name, process.exitcode)
                exit_code = EXIT_FAILED
                stop(signal.SIGTERM, None)
    return exit_code


# --- check ---------------------------------------------------------------------------------------


def cmd_check(args: argparse.Namespace) -> int:
    host = load_host(_config(args))
    print(f"config: ok ({host.settings.path or 'built-in defaults'})")
    print(f"plugins: {len(host.plugin_report.loaded)} loaded: {', '.join(p.name for p in host.plugin_report.loaded)}")
    return asyncio.run(_check_storage(host))


async def _check_storage(host: Host) -> int:
    try:
        await host.storage.open(migrate=False)
    except StorageError as exc:
        print(f"error: storage: {exc}", file=sys.stderr)
        return EXIT_FAILED
    try:
        pending = await host.storage.pending_migrations()
    finally:
        await host.storage.close()
    note = f", {len(pending)} migrations pending (applied when the server starts)" if pending else ""
    print(f"storage: ok ({host.storage.describe()}{note})")
    for source in host.sources.values():
        print(f"source {source.slug}: {source.base_url}")
    for warning in host.mappings.unknown_name_warnings(host.sources.values()):
        print(f"warning: {warning}", file=sys.stderr)
    return EXIT_OK


# --- plugins -------------------------------------------------------------------------------------


def cmd_plugins(args: argparse.Namespace) -> int:
    path = _config(args)
    raw = read_config_file(path)
    pm, report = load_plugins(read_plugin_settings(raw, path).disable)
    problems = []
    try:
        build_registry(pm)
    except RegistryError as exc:
        problems = exc.problems
    if args.json:
        print(json.dumps({**report.to_json(), "problems": problems}, indent=2))
    else:
        for info in report.loaded:
            dist = f"{info.distribution} {info.version}" if info.distribution else "-"
            print(f"{info.name:<16} {dist:<28} {', '.join(info.hooks)}")
        for name in report.disabled:
            print(f"{name:<16} disabled by [plugins] disable")
        for failure in report.failures:
            print(f"error: {failure.describe()}", file=sys.stderr)
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
    return EXIT_FAILED if report.failures or problems else EXIT_OK


# --- sources -------------------------------------------------------------------------------------


def cmd_sources_list(args: argparse.Namespace) -> int:
    host = load_host(_config(args), strict=False)
    rows = asyncio.run(_source_rows(host))
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for row in rows:
            print(f"{row['slug']:<20} {row['token']:<10} {row['base_url']}  ({row['name']})")
    return EXIT_OK


async def _source_rows(host: Host) -> list[dict]:
    await host.storage.open(migrate=True)
    try:
        await host.ensure_service_accounts()
        accounts = {a.source: a for a in await host.storage.service_accounts()}
    finally:
        await host.storage.close()
    rows = []
    for source in host.sources.values():
        account = accounts[source.slug]
        if source.token_from_env:
            token = "env"
        else:
            token = "issued" if account.has_token else "none"
        rows.append(
            {
                "slug": source.slug,
                "name": source.name,
                "base_url": source.base_url,
                "service_account": account.username,
                "token": token,
                "token_env": source.settings.token_env,
                "token_created": account.token_created.isoformat() if account.token_created else None,
            }
        )
    return rows


def cmd_sources_token(args: argparse.Namespace) -> int:
    host = load_host(_config(args), strict=False)
    source = host.sources.get(args.slug)
    if source is None:
        known = ", ".join(host.sources) or "none"
        print(f"error: no source {args.slug!r} is configured (sources: {known})", file=sys.stderr)
        return EXIT_FAILED
    if source.token_from_env:
        print(
            f"error: source {source.slug!r} reads its token from ${source.settings.token_env}; "
            "change that variable to rotate it",
            file=sys.stderr,
        )
        return EXIT_FAILED
    token = asyncio.run(_issue_token(host, source.slug))
    if args.json:
        print(json.dumps({"slug": source.slug, "name": source.name, "base_url": source.base_url, "token": token}))
    else:
        print(f"Source:   {source.slug} ({source.name})")
        print(f"Base URL: {source.base_url}")
        print(f"Token:    {token}")
        print("The token is shown only this once; any earlier token of this source no longer works.")
    return EXIT_OK


async def _issue_token(host: Host, slug: str) -> str:
    await host.storage.open(migrate=True)
    try:
        return await host.issue_token(slug)
    finally:
        await host.storage.close()


# --- mappings ------------------------------------------------------------------------------------


def _source_and_type(host: Host, slug: str, type_name: str):
    source = host.sources.get(slug)
    if source is None:
        raise ConfigError([f"no source {slug!r} is configured (sources: {', '.join(host.sources) or 'none'})"])
    resource_type = source.catalog.resource_types.get(type_name)
    if resource_type is None:
        raise ConfigError([f"no resource type {type_name!r} (known: {', '.join(source.catalog.resource_types)})"])
    return source, resource_type


def cmd_mappings_test(args: argparse.Namespace) -> int:
    host = load_host(_config(args), strict=False)
    source, resource_type = _source_and_type(host, args.slug, args.resource_type)
    text = sys.stdin.read() if args.input == "-" else Path(args.input).read_text()
    try:
        document = validate_resource(
            json.loads(text), resource_type, keep_unknown=source.settings.unknown_attributes == "keep"
        )
    except ValueError as exc:
        print(f"error: the input is not JSON: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except ScimError as exc:
        print(f"error: the input is not a valid {resource_type.name}: {exc.detail}", file=sys.stderr)
        return EXIT_FAILED
    document.pop("password", None)
    expressions = None
    if args.expression is not None:
        try:
            host.mappings.runtime_of(source.slug).compile(args.expression, label="--expression")
        except MappingError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_FAILED
        expressions = [("--expression", args.expression)]
    try:
        record = asyncio.run(_evaluate(host, source, resource_type.name, document, expressions))
    except MappingFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(json.dumps(record) if args.json else json.dumps(record, indent=2))
    return EXIT_OK


async def _evaluate(host: Host, source, resource_type: str, document: dict, expressions):
    # The same pool and limits as the server (unless the config says inline).
    await host.mappings.start_for(source.slug)
    try:
        return await host.mappings.record(source, resource_type, document, expressions=expressions)
    finally:
        await host.mappings.close()


def cmd_mappings_variables(args: argparse.Namespace) -> int:
    host = load_host(_config(args), strict=False)
    source, resource_type = _source_and_type(host, args.slug, args.resource_type)
    document = None
    if args.input is not None:
        text = sys.stdin.read() if args.input == "-" else Path(args.input).read_text()
        try:
            document = json.loads(text)
        except ValueError as exc:
            print(f"error: the input is not JSON: {exc}", file=sys.stderr)
            return EXIT_FAILED
        if not isinstance(document, dict):
            print("error: the input must be a JSON object (a SCIM document)", file=sys.stderr)
            return EXIT_FAILED
    print("data            the whole document")
    print("source          {'slug': ..., 'name': ...} of the source")
    print("resource_type   'User' or 'Group'")
    for variable in host.mappings.variables(source.slug, resource_type, document):
        if variable.bound:
            print(f"{variable.name:<15} {variable.key}")
        else:
            print(f"(unbound)       {variable.key}: {variable.unbound_because}")
    return EXIT_OK


# --- records -------------------------------------------------------------------------------------


def cmd_records_show(args: argparse.Namespace) -> int:
    host = load_host(_config(args), strict=False)
    source, resource_type = _source_and_type(host, args.slug, args.resource_type)
    record = asyncio.run(_read_record(host, source.slug, resource_type.name, args.id))
    if record is None:
        print(f"error: {resource_type.name} {args.id} of source {source.slug!r} has no record "
              "(no such resource, or it was stored before records existed)", file=sys.stderr)
        return EXIT_FAILED
    print(json.dumps(record) if args.json else json.dumps(record, indent=2))
    return EXIT_OK


async def _read_record(host: Host, slug: str, resource_type: str, resource_id: str):
    await host.storage.open(migrate=True)
    try:
        return await host.storage.get_record(slug, resource_type, resource_id)
    finally:
        await host.storage.close()


def cmd_records_list(args: argparse.Namespace) -> int:
    host = load_host(_config(args), strict=False)
    source, resource_type = _source_and_type(host, args.slug, args.resource_type)
    service = ResourceService(host, source, resource_type)
    try:
        return asyncio.run(_list_records(host, service, args.filter, args.json))
    except ScimError as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        return EXIT_FAILED


async def _list_records(host: Host, service: ResourceService, filter_text: str | None, as_json: bool) -> int:
    """Every matching resource's record, walked by cursor a page at a time (bounded memory)."""
    await host.storage.open(migrate=True)
    try:
        cursor = ""
        while cursor is not None:
            query = service.query(ListParams(filter=filter_text, count=RECORD_PAGE, cursor=cursor))
            page = await host.storage.list_resources(
                service.source.slug, service.type.name, query, members=False, groups=False
            )
            for resource in page.resources:
                record = await host.storage.get_record(service.source.slug, service.type.name, resource.id)
                if as_json:
                    print(json.dumps({"id": resource.id, "record": record}))
                else:
                    print(f"{resource.id}  {json.dumps(record)}")
            last = page.resources[-1] if page.resources else None
            cursor = encode_cursor("after", last.created, last.id) if page.more_after and last else None
    finally:
        await host.storage.close()
    return EXIT_OK
