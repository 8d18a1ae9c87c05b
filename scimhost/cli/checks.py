"""`scimhost check`, `migrate` and `plugins`: is the configuration sound, bring the store up to
date, what is loaded."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from scimhost.admin import anonymous_admin_warning
from scimhost.cli.common import EXIT_FAILED, EXIT_OK, config_of, storage_problem
from scimhost.config import read_config_file, read_plugin_settings
from scimhost.host import Host, load_host
from scimhost.plugins import load_plugins
from scimhost.registry import RegistryError, build_registry
from scimhost.reindex import reindex_stale
from scimhost.scim.index import index_entries, indexable_paths
from scimhost.scim.resource_types import ResourceType
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
        for resource_type in source.catalog.resource_types.values():
            print(f"  {index_report(resource_type)}")
    return EXIT_OK


# What an identity provider typically sends for a user and a group (Entra ID's attribute set),
# to show how many index rows a configuration gives each.
TYPICAL: dict[str, dict[str, Any]] = {
    "User": {
        "userName": "ada@example.com",
        "externalId": "0b6e1f5c",
        "active": True,
        "displayName": "Ada Lovelace",
        "title": "Analyst",
        "name": {"givenName": "Ada", "familyName": "Lovelace", "formatted": "Ada Lovelace"},
        "emails": [{"value": "ada@example.com", "type": "work", "primary": True}],
        "phoneNumbers": [{"value": "+44 20 7946 0000", "type": "work"}],
        "addresses": [{"type": "work", "locality": "London", "country": "GB"}],
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
            "department": "Research",
            "employeeNumber": "1815",
            "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d"},
        },
    },
    "Group": {"displayName": "Research", "externalId": "7c1d0a2e"},
}


def index_report(resource_type: ResourceType) -> str:
    """How many attribute paths of a type get index rows, and the rows of a typical resource."""
    paths = indexable_paths(resource_type)
    kept = [path for path in paths if resource_type.indexes(path)]
    which = "every attribute" if resource_type.indexed is None else f"{len(kept)} of {len(paths)} attribute paths"
    line = f"index {resource_type.name}: {which}"
    typical = TYPICAL.get(resource_type.name)
    if typical is not None:
        line += f"; a typical {resource_type.name.lower()} gets {len(index_entries(typical, resource_type))} index rows"
    return line


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
    try:
        rebuilt = await reindex_stale(host)
    finally:
        await host.storage.close()
    if rebuilt:
        print(f"rebuilt the index rows of {rebuilt} resources stored under another index configuration")
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
