"""`scimhost check`, `migrate` and `plugins`: is the configuration sound, bring the store up to
date, what is loaded."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from scimhost.admin import anonymous_admin_warning
from scimhost.cli.common import EXIT_FAILED, EXIT_OK, config_of, storage_problem
from scimhost.config import read_config_file, read_plugin_settings
from scimhost.host import Host, load_host
from scimhost.plugins import load_plugins
from scimhost.registry import RegistryError, build_registry
from scimhost.storage.backend import StorageError


def cmd_check(args: argparse.Namespace) -> int:
    host = load_host(config_of(args))
    print(f"config: ok ({host.settings.path or 'built-in defaults'})")
    print(f"plugins: {len(host.plugin_report.loaded)} loaded: {', '.join(p.name for p in host.plugin_report.loaded)}")
    admin_warning = anonymous_admin_warning(host.settings)
    if admin_warning:
        print(f"warning: {admin_warning}", file=sys.stderr)
    for warning in host.config_warnings():
        print(f"warning: {warning}", file=sys.stderr)
    return asyncio.run(_check_storage(host))


async def _check_storage(host: Host) -> int:
    try:
        await host.storage.open(migrate=False, create=False)
    except StorageError as exc:
        print(f"error: storage: {storage_problem(host, exc)}", file=sys.stderr)
        return EXIT_FAILED
    try:
        pending = await host.storage.pending_migrations()
    finally:
        await host.storage.close()
    note = (
        f", {len(pending)} migrations pending (run `{host.settings.command('migrate')}`, or `serve` applies them)"
        if pending
        else ""
    )
    print(f"storage: ok ({host.storage.describe()}{note})")
    for name in pending:
        print(f"  pending migration: {name}")
    for source in host.sources.values():
        print(f"source {source.slug}: {source.base_url}")
    return EXIT_OK


def cmd_migrate(args: argparse.Namespace) -> int:
    host = load_host(config_of(args), strict=False)
    applied = asyncio.run(_migrate(host))
    if applied:
        for name in applied:
            print(f"applied {name}")
    else:
        print("nothing to migrate")
    print(f"storage: {host.storage.describe()} is up to date")
    return EXIT_OK


async def _migrate(host: Host) -> list[str]:
    """Create the store if needed and apply its pending migrations; their names."""
    await host.storage.open(migrate=False)
    try:
        pending = await host.storage.pending_migrations()
    finally:
        await host.storage.close()
    await host.storage.open(migrate=True)
    await host.storage.close()
    return pending


def cmd_plugins(args: argparse.Namespace) -> int:
    path = config_of(args)
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
