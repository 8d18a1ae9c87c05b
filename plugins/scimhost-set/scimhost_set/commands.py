"""`scimhost set keys SINK`: the JWKS a SET sink's receivers verify with."""

from __future__ import annotations

import argparse
import json
import sys

from scimhost.cli.common import EXIT_FAILED, EXIT_OK, config_of
from scimhost.cli.plugin_commands import PluginCommand
from scimhost.host import load_host
from scimhost_set.keys import KeyProblem, jwks, load_keys
from scimhost_set.routes import jwks_url


def configure(parser: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="set_command", required=True, metavar="COMMAND")
    keys = commands.add_parser("keys", parents=[common], help="print a SET sink's public keys (JWKS)")
    keys.add_argument("sink")
    keys.set_defaults(func=cmd_keys)


def cmd_keys(args: argparse.Namespace) -> int:
    host = load_host(config_of(args), strict=False)
    found = next(
        (s for s in host.settings.events.sinks if s.name == args.sink and s.type in ("set-push", "set-poll")), None
    )
    if found is None:
        names = [s.name for s in host.settings.events.sinks if s.type in ("set-push", "set-poll")]
        print(f"error: no SET sink {args.sink!r} (SET sinks: {', '.join(names) or 'none'})", file=sys.stderr)
        return EXIT_FAILED
    try:
        document = jwks(load_keys(found.options.key_env))
    except KeyProblem as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(json.dumps(document, indent=2))
    print(f"(also served at {jwks_url(host.settings.server.base_url, found.name)})", file=sys.stderr)
    return EXIT_OK


COMMAND = PluginCommand("set", "Security Event Token sinks: their keys", configure)
