"""`scimhost sources list|token`: the configured sources and their tokens."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from scimhost.cli.common import EXIT_FAILED, EXIT_OK, config_of
from scimhost.host import Host, load_host


def cmd_sources_list(args: argparse.Namespace) -> int:
    host = load_host(config_of(args), strict=False)
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
    host = load_host(config_of(args), strict=False)
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
