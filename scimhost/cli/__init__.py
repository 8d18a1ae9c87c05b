"""The `scimhost` command: its arguments, and the command modules each runs."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from scimhost import __version__
from scimhost.cli.checks import cmd_check, cmd_migrate, cmd_plugins
from scimhost.cli.common import EXIT_FAILED, moment, setup_logging
from scimhost.cli.deliveries import (
    cmd_deliveries_pause,
    cmd_deliveries_replay,
    cmd_deliveries_retry,
    cmd_deliveries_status,
    cmd_webhooks_secret,
    cmd_webhooks_test,
)
from scimhost.cli.events import cmd_events_dispatch, cmd_events_list, cmd_events_prune, cmd_events_show
from scimhost.cli.mappings import cmd_mappings_test, cmd_mappings_variables
from scimhost.cli.plugin_commands import PluginCommand, plugin_commands
from scimhost.cli.records import cmd_records_list, cmd_records_remap, cmd_records_show
from scimhost.cli.serve import cmd_serve
from scimhost.cli.sources import (
    cmd_sources_list,
    cmd_sources_purge_deleted,
    cmd_sources_remove,
    cmd_sources_restore,
    cmd_sources_revoke,
    cmd_sources_token,
    duration,
)
from scimhost.config import ConfigError
from scimhost.plugins import PluginLoadError
from scimhost.registry import RegistryError
from scimhost.storage.backend import StorageError


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = _parser(plugin_commands(argv))
    args = parser.parse_args(argv)
    setup_logging(args.log_level or "INFO")
    try:
        code = args.func(args)
        sys.stdout.flush()  # here, so that a closed pipe is caught below
        return code
    except BrokenPipeError:
        # The reader went away (`events list | head`): end quietly, as other tools do, and keep
        # the interpreter's final flush of stdout from raising again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except (ConfigError, PluginLoadError, RegistryError) as exc:
        for line in str(exc).splitlines():
            print(f"error: {line}", file=sys.stderr)
        return EXIT_FAILED
    except StorageError as exc:
        print(f"error: storage: {exc}", file=sys.stderr)
        return EXIT_FAILED


# What a shell reports for a command a closed pipe stopped (128 + SIGPIPE).
EXIT_BROKEN_PIPE = 141
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def log_level(text: str) -> str:
    """A --log-level value, in any case."""
    if text.upper() not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"{text!r} is not a log level: use {', '.join(LOG_LEVELS)}")
    return text.upper()


def _parser(extra: Sequence[tuple[str, PluginCommand]] = ()) -> argparse.ArgumentParser:
    """The command line: the built-in commands, then those plugins add (`extra`)."""
    common = argparse.ArgumentParser(add_help=False)
    # Accepted before or after the subcommand; SUPPRESS keeps a later default from erasing it.
    common.add_argument("-c", "--config", default=argparse.SUPPRESS, help="TOML config file (or $SCIMHOST_CONFIG)")
    common.add_argument("--log-level", default=argparse.SUPPRESS, type=log_level, help="DEBUG, INFO, WARNING or ERROR")

    parser = argparse.ArgumentParser(prog="scimhost", description="A SCIM 2.0 service provider.")
    parser.add_argument("-c", "--config", default=None, help="TOML config file (or $SCIMHOST_CONFIG)")
    parser.add_argument(
        "--log-level", default=None, type=log_level, help="DEBUG, INFO, WARNING or ERROR (default: [logging] level)"
    )
    parser.add_argument("--version", action="version", version=f"scimhost {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", parents=[common], help="run the server")
    serve.add_argument("--host", help="address to listen on (default: [server] host)")
    serve.add_argument("--port", type=int, help="port to listen on (default: [server] port)")
    serve.add_argument("--workers", type=int, help="worker processes sharing the port (default: [server] workers)")
    serve.add_argument(
        "--no-migrate",
        dest="migrate",
        action="store_false",
        help="refuse to start if migrations are pending, instead of applying them",
    )
    serve.set_defaults(func=cmd_serve)

    migrate = commands.add_parser("migrate", parents=[common], help="create the database or apply pending migrations")
    migrate.set_defaults(func=cmd_migrate)

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
    token.add_argument("--grace", type=duration, help="keep the previous token working this long (30m, 1h, 2d)")
    token.add_argument("--json", action="store_true", help="print JSON")
    token.set_defaults(func=cmd_sources_token)
    revoke = source_commands.add_parser("revoke", parents=[common], help="end every token of a source at once")
    revoke.add_argument("slug")
    revoke.set_defaults(func=cmd_sources_revoke)
    remove = source_commands.add_parser(
        "remove", parents=[common], help="delete everything stored for a source no longer in the config"
    )
    remove.add_argument("slug")
    remove.add_argument("--purge", action="store_true", help="delete its resources, records, events and tokens")
    remove.add_argument("--yes", action="store_true", help="confirm the deletion")
    remove.add_argument("--json", action="store_true", help="print JSON")
    remove.set_defaults(func=cmd_sources_remove)
    restore = source_commands.add_parser(
        "restore", parents=[common], help="bring a soft-deleted resource back (same id, a new version)"
    )
    restore.add_argument("slug")
    restore.add_argument("resource_type", metavar="TYPE", help="User or Group")
    restore.add_argument("id")
    restore.set_defaults(func=cmd_sources_restore)
    purge_deleted = source_commands.add_parser(
        "purge-deleted", parents=[common], help="forget soft-deleted resources past the source's soft_delete_days"
    )
    purge_deleted.add_argument("slug")
    purge_deleted.add_argument("--all", action="store_true", help="every soft-deleted resource, whatever its age")
    purge_deleted.set_defaults(func=cmd_sources_purge_deleted)
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
    listing.add_argument("--deleted", action="store_true", help="the soft-deleted resources instead, newest first")
    listing.add_argument("--json", action="store_true", help="one JSON object per line: id and record")
    listing.set_defaults(func=cmd_records_list)
    remap = record_commands.add_parser(
        "remap", parents=[common], help="re-apply the current mappings to stored resources (after changing them)"
    )
    remap.add_argument("slug")
    remap.add_argument("resource_type", metavar="TYPE", nargs="?", help="User or Group (default: every type)")
    remap.add_argument("--filter", help="a SCIM filter (default: every resource)")
    remap.set_defaults(func=cmd_records_remap)

    events = commands.add_parser("events", parents=[common], help="read and prune the event log")
    event_commands = events.add_subparsers(dest="events_command", required=True, metavar="COMMAND")
    listing = event_commands.add_parser("list", parents=[common], help="events in the order they were committed")
    listing.add_argument("--source", help="only this source's events (default: every source)")
    listing.add_argument("--resource-id", help="only this resource's events")
    listing.add_argument("--since", type=moment, help="only events at or after this ISO 8601 time")
    listing.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.set_defaults(func=cmd_events_list)
    show = event_commands.add_parser(
        "show", parents=[common], help="one event: the change, who made it, the resource after it"
    )
    show.add_argument("event", metavar="ID_OR_SEQ", help="an event id (evt_...) or sequence number")
    show.add_argument("--json", action="store_true", help="print the event on one line")
    show.set_defaults(func=cmd_events_show)
    prune = event_commands.add_parser(
        "prune", parents=[common], help="delete events older than [events] retention_days"
    )
    prune.add_argument("--json", action="store_true", help="print JSON")
    prune.set_defaults(func=cmd_events_prune)
    dispatch = event_commands.add_parser("dispatch", parents=[common], help="run only the dispatcher, until stopped")
    dispatch.set_defaults(func=cmd_events_dispatch)

    deliveries = commands.add_parser("deliveries", parents=[common], help="the state of each sink's deliveries")
    delivery_commands = deliveries.add_subparsers(dest="deliveries_command", required=True, metavar="COMMAND")
    status = delivery_commands.add_parser("status", parents=[common], help="pending, in flight, dead, paused, per sink")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(func=cmd_deliveries_status)
    retry = delivery_commands.add_parser("retry", parents=[common], help="send dead or waiting deliveries now")
    retry.add_argument("sink")
    chosen = retry.add_mutually_exclusive_group(required=True)
    chosen.add_argument("--dead", action="store_true", help="every dead delivery of the sink")
    chosen.add_argument("--now", action="store_true", help="every delivery waiting for a retry: end the backoff")
    chosen.add_argument("--seq", type=int, nargs="+", help="these events' deliveries, dead or waiting")
    retry.set_defaults(func=cmd_deliveries_retry)
    replay = delivery_commands.add_parser("replay", parents=[common], help="send events since a time again (same ids)")
    replay.add_argument("sink")
    replay.add_argument("--since", type=moment, required=True, help="an ISO 8601 time")
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
    for plugin, plugin_command in extra:
        if plugin_command.name in commands.choices:
            print(
                f"warning: plugin {plugin!r}: the command {plugin_command.name!r} is a built-in one; ignored",
                file=sys.stderr,
            )
            continue
        added = commands.add_parser(plugin_command.name, parents=[common], help=plugin_command.help)
        try:
            plugin_command.configure(added, common)
        except Exception as exc:  # a plugin's mistake must not take every command down
            del commands.choices[plugin_command.name]
            print(
                f"warning: plugin {plugin!r}: command {plugin_command.name!r} failed to set up: {exc}", file=sys.stderr
            )
    return parser
