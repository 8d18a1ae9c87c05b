"""An identity provider's first provisioning cycle into a new, empty store, timed as it grows.

Entra's first cycle does, for every user, `GET /Users?filter=userName eq "..."` and then a
`POST`; for every group `GET /Groups?filter=displayName eq "..."`, a `POST`, `PATCH`es adding
its members, and membership checks (`id eq "..." and members[value eq "..."]`). This script
does exactly that, one request at a time over one keep-alive connection to a `scimhost serve`
it starts on a store of its own (a fresh PostgreSQL schema, dropped afterwards, or a new SQLite
file), and prints each lookup's p50 / p99 per slice of the sync: a lookup whose cost grows with
the store makes the sync quadratic.

    python bench/initial_sync.py --storage postgres://postgres@127.0.0.1:5432/test --users 10000
    python bench/initial_sync.py --storage sqlite --users 10000

The PostgreSQL schema is new, so its tables have no planner statistics unless the host gathers
them (this machine's PostgreSQL runs without autovacuum; with it, the first minutes of a bulk
import look the same).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
from pathlib import Path

import aiohttp

HERE = Path(__file__).resolve().parent
SCIM_JSON = "application/scim+json"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000


async def sync(base: str, token: str, users: int, slice_size: int, group_size: int) -> list[dict]:
    """The cycle; one row of timings per slice of `slice_size` users."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": SCIM_JSON}
    rows: list[dict] = []
    timings: dict[str, list[float]] = {}

    async with aiohttp.ClientSession(headers=headers, connector=aiohttp.TCPConnector(limit=1)) as http:

        async def call(kind: str, method: str, path: str, body: dict | None = None) -> dict:
            started = time.perf_counter()
            async with http.request(method, base + path, data=json.dumps(body) if body else None) as response:
                text = await response.text()
                assert response.status < 300, (method, path, response.status, text)
            timings.setdefault(kind, []).append(time.perf_counter() - started)
            return json.loads(text) if text else {}

        def lookup(path: str, text: str) -> str:
            return f"{path}?filter={urllib.parse.quote(text)}"

        recent: list[str] = []
        for i in range(users):
            user_name = f"user{i:07d}@example.com"
            found = await call("user lookup", "GET", lookup("/Users", f'userName eq "{user_name}"'))
            assert found["totalResults"] == 0
            created = await call(
                "user create",
                "POST",
                "/Users",
                {
                    "userName": user_name,
                    "externalId": f"ext-{i:07d}",
                    "active": True,
                    "displayName": f"User {i}",
                    "name": {"givenName": "Given", "familyName": f"Family{i}"},
                    "emails": [{"value": user_name, "type": "work", "primary": True}],
                },
            )
            recent.append(created["id"])
            if len(recent) == group_size:
                name = f"group{i // group_size:06d}"
                found = await call("group lookup", "GET", lookup("/Groups", f'displayName eq "{name}"'))
                assert found["totalResults"] == 0
                group = await call("group create", "POST", "/Groups", {"displayName": name})
                for member in recent:
                    operation = {"op": "add", "path": "members", "value": [{"value": member}]}
                    await call(
                        "member add",
                        "PATCH",
                        f"/Groups/{group['id']}",
                        {"schemas": [PATCH_OP], "Operations": [operation]},
                    )
                check = f'id eq "{group["id"]}" and members[value eq "{recent[0]}"]'
                found = await call("membership check", "GET", lookup("/Groups", check) + "&excludedAttributes=members")
                assert found["totalResults"] == 1
                recent = []
            if (i + 1) % slice_size == 0:
                row = {"users": i + 1}
                for kind, values in timings.items():
                    row[kind] = (percentile(values, 0.5), percentile(values, 0.99))
                rows.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
                timings = {}
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--storage", required=True, help="sqlite, or a postgres:// URL (a schema is made in it)")
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--slice", type=int, default=500, help="users per row of timings")
    parser.add_argument("--group-size", type=int, default=50, help="a group is made for every this many users")
    parser.add_argument("--port", type=int, default=8097)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="scimhost-sync-"))
    schema = None
    if args.storage == "sqlite":
        url = f"sqlite://{workdir}/sync.sqlite3"
    else:
        import asyncpg

        schema = f"bench_sync_{uuid.uuid4().hex[:8]}"

        async def schema_command(sql: str) -> None:
            connection = await asyncpg.connect(args.storage)
            try:
                await connection.execute(sql)
            finally:
                await connection.close()

        asyncio.run(schema_command(f'CREATE SCHEMA "{schema}"'))
        url = f"{args.storage}?schema={schema}"
    config = workdir / "scimhost.toml"
    config.write_text(
        f'[server]\nhost = "127.0.0.1"\nport = {args.port}\naccess_log = false\n'
        "[limits]\nsource_rate_per_second = 0\nsource_max_concurrent = 0\n"
        f'[storage.tortoise]\nurl = "{url}"\n[admin]\nenabled = false\n'
        '[[sources]]\nslug = "sync"\nname = "Initial sync"\n'
    )
    scimhost = [sys.executable, "-m", "scimhost", "-c", str(config)]
    server = None
    try:
        subprocess.run([*scimhost, "migrate"], check=True, capture_output=True)
        issued = subprocess.run([*scimhost, "sources", "token", "sync", "--json"], check=True, capture_output=True)
        token = json.loads(issued.stdout)["token"]
        server = subprocess.Popen([*scimhost, "serve"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{args.port}/source/scim/sync/v2"
        for _ in range(300):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{args.port}/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        started = time.monotonic()
        rows = asyncio.run(sync(base, token, args.users, args.slice, args.group_size))
        elapsed = time.monotonic() - started
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        if schema is not None:
            asyncio.run(schema_command(f'DROP SCHEMA "{schema}" CASCADE'))

    kinds = [kind for kind in rows[0] if kind != "users"]
    print(
        f"{args.users} users in {elapsed:.0f} s ({args.storage.split('://')[0]}); p50 / p99 ms per slice of {args.slice}\n"
    )
    print("| users | " + " | ".join(kinds) + " |")
    print("| --- |" + " --- |" * len(kinds))
    for row in rows:
        cells = [f"{row[kind][0]:.1f} / {row[kind][1]:.1f}" if kind in row else "" for kind in kinds]
        print(f"| {row['users']} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    import urllib.request

    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
