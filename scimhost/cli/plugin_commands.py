"""The `scimhost` subcommands plugins add (`register_commands`), found before the arguments are parsed."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from scimhost.config import ConfigError, config_path_from, read_config_file, read_plugin_settings
from scimhost.plugins import load_plugins
from scimhost.registry import collect


@dataclass(frozen=True)
class PluginCommand:
    """A subcommand a plugin adds: `scimhost <name> ...`."""

    name: str
    help: str
    # Given the command's parser and the options every command shares (`-c`, `--log-level`:
    # pass it as `parents=[common]` to subcommands of its own), adds the arguments and sets
    # `func`: a function of the parsed arguments returning the exit code.
    configure: Callable[[argparse.ArgumentParser, argparse.ArgumentParser], None]


def plugin_commands(argv: Sequence[str]) -> list[tuple[str, PluginCommand]]:
    """(plugin name, command) of every loaded plugin, honouring `[plugins] disable` of the config
    the arguments name (when it can be read: a command reports a broken config itself)."""
    found = argparse.ArgumentParser(add_help=False)
    found.add_argument("-c", "--config")
    known, _ = found.parse_known_args(argv)
    try:
        path = config_path_from(known.config)
        disable = read_plugin_settings(read_config_file(path), path).disable
    except ConfigError:
        disable = ()
    pm, _report = load_plugins(disable)  # a plugin that failed to load is reported by the commands
    problems: list[str] = []
    commands = []
    for plugin, command in collect(pm, "register_commands", problems):
        if isinstance(command, PluginCommand):
            commands.append((plugin, command))
        else:
            print(
                f"warning: plugin {plugin!r}: register_commands returned {command!r}, not a PluginCommand",
                file=sys.stderr,
            )
    return commands
