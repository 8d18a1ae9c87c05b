"""`scimhost oauth secrets create|list|revoke`: a source's client secrets."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from datetime import UTC, datetime, timedelta

from scimhost.cli.common import EXIT_FAILED, EXIT_OK, config_of, configured_source, with_storage
from scimhost.cli.plugin_commands import PluginCommand
from scimhost.host import Host, load_host
from scimhost.timestamps import shown
from scimhost_oauth.credentials import SECRET_KIND, SECRET_PREFIX, client_id, issue
from scimhost_oauth.endpoint import token_url
from scimhost_oauth.scheme import EXPIRES_SOON

# Client secrets live 1 to 3 years (Entra's gallery asks for that); 2 by default.
LIFETIME = re.compile(r"^(\d+)(y|d)$")
SHORTEST, LONGEST = timedelta(days=365), timedelta(days=3 * 365 + 1)


def lifetime(text: str) -> timedelta:
    """A secret's lifetime: 1y to 3y, or in days (365d to 1096d)."""
    match = LIFETIME.match(text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"not a lifetime such as 1y, 2y or 500d: {text!r}")
    value = timedelta(days=int(match[1]) * (365 if match[2] == "y" else 1))
    if not SHORTEST <= value <= LONGEST:
        raise argparse.ArgumentTypeError("a client secret lives between 1 and 3 years")
    return value


def configure(parser: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
    groups = parser.add_subparsers(dest="oauth_command", required=True, metavar="COMMAND")
    secrets_parser = groups.add_parser("secrets", parents=[common], help="a source's client secrets")
    actions = secrets_parser.add_subparsers(dest="secrets_command", required=True, metavar="COMMAND")
    create = actions.add_parser("create", parents=[common], help="a new client secret (shown once)")
    create.add_argument("slug")
    create.add_argument("--expires", type=lifetime, default=timedelta(days=730), help="1y to 3y (default 2y)")
    create.add_argument("--json", action="store_true", help="print JSON")
    create.set_defaults(func=cmd_secrets_create)
    listing = actions.add_parser("list", parents=[common], help="the source's client secrets (never their values)")
    listing.add_argument("slug")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(func=cmd_secrets_list)
    revoke = actions.add_parser("revoke", parents=[common], help="end one client secret at once")
    revoke.add_argument("slug")
    revoke.add_argument("secret_id")
    revoke.set_defaults(func=cmd_secrets_revoke)


COMMAND = PluginCommand("oauth", "OAuth 2.0 client credentials of the sources (scimhost-oauth)", configure)


def _oauth_source(host: Host, slug: str):
    source = configured_source(host, slug)
    if "oauth" not in source.settings.auth:
        print(
            f"error: source {slug!r} does not list oauth in its auth (auth = {list(source.settings.auth)})",
            file=sys.stderr,
        )
        return None
    return source


def cmd_secrets_create(args: argparse.Namespace) -> int:
    host = load_host(config_of(args), strict=False)
    source = _oauth_source(host, args.slug)
    if source is None:
        return EXIT_FAILED
    issued = issue(SECRET_KIND, SECRET_PREFIX, datetime.now(UTC), args.expires, session=False)
    asyncio.run(with_storage(host, lambda storage: storage.add_credential(source.slug, issued.credential)))
    expires = issued.credential.expires
    shown_fields = {
        "client_id": client_id(source.service_account),
        "client_secret": issued.value,
        "secret_id": issued.credential.id,
        "token_url": token_url(source),
        "expires_at": expires.isoformat() if expires else None,
    }
    if args.json:
        print(json.dumps(shown_fields, indent=2))
    else:
        print(f"Source:        {source.slug} ({source.name})")
        print(f"Client id:     {shown_fields['client_id']}")
        print(f"Client secret: {issued.value}")
        print(f"Token URL:     {shown_fields['token_url']}")
        print(f"Expires:       {shown(expires)}")
        print("The client secret is shown only this once; only its hash is kept.")
    return EXIT_OK


def cmd_secrets_list(args: argparse.Namespace) -> int:
    host = load_host(config_of(args), strict=False)
    source = _oauth_source(host, args.slug)
    if source is None:
        return EXIT_FAILED
    kept = asyncio.run(with_storage(host, lambda storage: storage.list_credentials(source.slug, SECRET_KIND)))
    now = datetime.now(UTC)
    rows = [
        {
            "id": c.id,
            "created": c.created.isoformat(),
            "expires": c.expires.isoformat() if c.expires else None,
            "last_used": c.last_used.isoformat() if c.last_used else None,
            "state": _state(c.expires, now),
        }
        for c in kept
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
    elif not rows:
        print(f"source {source.slug} has no client secrets: `oauth secrets create {source.slug}` makes one")
    else:
        for row in rows:
            print(
                f"{row['id']}  {row['state']:<13} created {shown(row['created'])}, expires {shown(row['expires'])}, "
                f"last used {shown(row['last_used']) or 'never'}"
            )
    return EXIT_OK


def _state(expires: datetime | None, now: datetime) -> str:
    if expires is not None and expires <= now:
        return "expired"
    if expires is not None and expires - now <= EXPIRES_SOON:
        return "expires soon"
    return "active"


def cmd_secrets_revoke(args: argparse.Namespace) -> int:
    host = load_host(config_of(args), strict=False)
    source = _oauth_source(host, args.slug)
    if source is None:
        return EXIT_FAILED
    deleted = asyncio.run(
        with_storage(host, lambda storage: storage.delete_credential(source.slug, SECRET_KIND, args.secret_id))
    )
    if not deleted:
        print(f"error: source {source.slug!r} has no client secret {args.secret_id!r}", file=sys.stderr)
        return EXIT_FAILED
    print(
        f"client secret {args.secret_id} of {source.slug} revoked: it gets no new access tokens "
        f"(those it got end on their own, or with `sources revoke {source.slug}`)"
    )
    return EXIT_OK
