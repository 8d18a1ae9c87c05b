"""`scimhost sources list|token|revoke|remove`: the configured sources and their tokens."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from datetime import UTC, datetime, timedelta

from scimhost.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    config_of,
    configured_source,
    open_existing,
    source_and_type,
    with_storage,
)
from scimhost.config import ConfigError
from scimhost.host import Host, load_host
from scimhost.resource_service import ResourceService
from scimhost.retention import purge_expired_deleted
from scimhost.scim.errors import ScimError
from scimhost.sources import Source
from scimhost.storage.backend import StoredResource
from scimhost.timestamps import shown


def cmd_sources_list(args: argparse.Namespace) -> int:
    host = load_host(config_of(args), strict=False)
    rows = asyncio.run(_source_rows(host))
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for row in rows:
            grace = (
                f" (previous token works until {shown(row['previous_token_expires'])})"
                if row["previous_token_expires"]
                else ""
            )
            print(f"{row['slug']:<20} {row['token']:<10} {row['base_url']}  ({row['name']}){grace}")
            for scheme in row["auth"]:
                for key, value in (row.get(scheme) or {}).items():
                    print(f"{'':<20} {scheme} {key.replace('_', ' ')}: {value}")
    return EXIT_OK


async def _source_rows(host: Host) -> list[dict]:
    await open_existing(host)
    try:
        await host.ensure_service_accounts()
        accounts = {a.source: a for a in await host.storage.service_accounts()}
    finally:
        await host.storage.close()
    now = datetime.now(UTC)
    rows = []
    for source in host.sources.values():
        account = accounts[source.slug]
        if source.token_from_env:
            token = "env"
        else:
            token = "issued" if account.has_token else "none"
        expires = account.previous_expires if account.previous_expires and account.previous_expires > now else None
        rows.append(
            {
                "slug": source.slug,
                "name": source.name,
                "base_url": source.base_url,
                "service_account": account.username,
                "token": token,
                "token_env": source.settings.token_env,
                "token_created": account.token_created.isoformat() if account.token_created else None,
                "previous_token_expires": expires.isoformat() if expires else None,
                "auth": list(source.settings.auth),
                **{
                    name: info
                    for name in source.settings.auth
                    if name in host.auth_schemes and (info := host.auth_schemes[name].describe_source(source))
                },
            }
        )
    return rows


def cmd_sources_token(args: argparse.Namespace) -> int:
    host = load_host(config_of(args), strict=False)
    source = _stored_token_source(host, args.slug)
    grace_until = datetime.now(UTC) + args.grace if args.grace else None
    token = asyncio.run(with_storage(host, lambda _: host.issue_token(source.slug, grace_until=grace_until)))
    if args.json:
        print(
            json.dumps(
                {
                    "slug": source.slug,
                    "name": source.name,
                    "base_url": source.base_url,
                    "token": token,
                    "previous_token_expires": grace_until.isoformat() if grace_until else None,
                }
            )
        )
    else:
        print(f"Source:   {source.slug} ({source.name})")
        print(f"Base URL: {source.base_url}")
        print(f"Token:    {token}")
        if grace_until:
            print(f"The token is shown only this once; the previous token keeps working until {shown(grace_until)}.")
        else:
            print("The token is shown only this once; any earlier token of this source no longer works.")
    return EXIT_OK


def cmd_sources_revoke(args: argparse.Namespace) -> int:
    host = load_host(config_of(args), strict=False)
    source = _stored_token_source(host, args.slug)
    asyncio.run(with_storage(host, lambda _: host.revoke_tokens(source.slug)))
    print(
        f"Every token of source {source.slug} is revoked; `{host.settings.command(f'sources token {source.slug}')}` issues a new one."
    )
    return EXIT_OK


def cmd_sources_remove(args: argparse.Namespace) -> int:
    host = load_host(config_of(args), strict=False)
    if args.slug in host.sources:
        print(f"error: source {args.slug!r} is still configured: remove its [[sources]] table first", file=sys.stderr)
        return EXIT_FAILED
    if not args.purge or not args.yes:
        print(
            f"error: this deletes everything stored for source {args.slug!r} (resources, records, events, tokens); "
            "run again with --purge --yes",
            file=sys.stderr,
        )
        return EXIT_USAGE
    deleted = asyncio.run(with_storage(host, lambda storage: storage.purge_source(args.slug)))
    if args.json:
        print(json.dumps({"slug": args.slug, "deleted": deleted}))
    elif not any(deleted.values()):
        print(f"Nothing was stored for source {args.slug}.")
    else:
        print(f"Deleted for source {args.slug}: " + ", ".join(f"{n} {kind}" for kind, n in deleted.items() if n))
    return EXIT_OK


def _stored_token_source(host: Host, slug: str) -> Source:
    """A configured source whose tokens scimhost stores (not one reading $token_env)."""
    source = configured_source(host, slug)
    if source.token_from_env:
        raise ConfigError(
            [
                f"source {source.slug!r} reads its token from ${source.settings.token_env}; change that variable to rotate it"
            ]
        )
    return source


DURATION = re.compile(r"^(\d+)([smhd])$")
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def duration(text: str) -> timedelta:
    """A duration such as 90s, 30m, 1h or 2d."""
    match = DURATION.match(text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"not a duration such as 30m, 1h or 2d: {text!r}")
    value = timedelta(**{UNITS[match[2]]: int(match[1])})
    if value > timedelta(days=30):
        raise argparse.ArgumentTypeError("a grace period is at most 30d")
    return value


# Who a restore from the command line writes as, in the event log.
RESTORE_ACTOR = {"scheme": "cli", "account": "scimhost sources restore", "request_id": None, "client": None}


def cmd_sources_restore(args: argparse.Namespace) -> int:
    """Bring a soft-deleted resource back as it was deleted: the same id, a new version."""
    host = load_host(config_of(args), strict=False)
    source, resource_type = source_and_type(host, args.slug, args.resource_type)
    service = ResourceService(host, source, resource_type, RESTORE_ACTOR)

    async def restore(storage) -> StoredResource:
        await host.mappings.start_for(source.slug)
        try:
            return await service.restore_kept(args.id)
        finally:
            await host.mappings.close()

    try:
        restored = asyncio.run(with_storage(host, restore))
    except ScimError as exc:
        print(
            f"error: {exc.detail} (soft-deleted ones: `{host.settings.command(f'records list {source.slug} {resource_type.name} --deleted')}`)",
            file=sys.stderr,
        )
        return EXIT_FAILED
    print(f"Restored {resource_type.name} {restored.id} of source {source.slug}, version {restored.version}.")
    return EXIT_OK


def cmd_sources_purge_deleted(args: argparse.Namespace) -> int:
    """Forget a source's soft-deleted resources past its retention (or all, with --all)."""
    host = load_host(config_of(args), strict=False)
    source = configured_source(host, args.slug)

    async def purge(storage) -> int:
        purged = await purge_expired_deleted(host, now=datetime.now(UTC), everything=args.all, only=source.slug)
        return purged.get(source.slug, 0)

    purged = asyncio.run(with_storage(host, purge))
    kept = (
        "every soft-deleted resource" if args.all else f"soft-deleted over {source.settings.soft_delete_days} days ago"
    )
    print(f"Purged {purged} resource{'' if purged == 1 else 's'} of source {source.slug} ({kept}).")
    return EXIT_OK
