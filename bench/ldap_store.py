"""The LDAP backend beside the built-in SQLite store, through HTTP, in one run.

Starts a throwaway slapd (plugins/scimhost-ldap's test server: Debian's slapd, back-mdb with
dbnosync), then for each store a `scimhost serve` (one worker) and, for the ceiling, a bare
aiohttp app answering a small JSON body. One keep-alive connection sends each request in turn:
POST of N users, lookups by userName and by id, PATCH, a group grown to 10 000 members (in
PATCHes of 1 000), one member added to it, and GET of it with excludedAttributes=members.
Each row gives p50/p99, requests per second as a share of the ceiling's, and server CPU per
request (the scimhost process; for LDAP also slapd's, apart).

    python bench/ldap_store.py --users 10000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins" / "scimhost-ldap"))
from scimhost_ldap.slapd import Slapd  # noqa: E402

PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Phase:
    """Timings of one kind of request, and the CPU the watched processes spent on them."""

    def __init__(self, name: str, pids: dict[str, int]) -> None:
        self.name, self.pids = name, pids
        self.timings: list[float] = []

    def __enter__(self) -> Phase:
        self.cpu = {k: cpu_seconds(p) for k, p in self.pids.items()}
        self.wall = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.elapsed = time.perf_counter() - self.wall
        self.cpu = {k: cpu_seconds(p) - self.cpu[k] for k, p in self.pids.items()}

    def row(self, ceiling_rps: float) -> dict:
        ordered = sorted(self.timings)
        n = len(ordered)
        rps = n / self.elapsed
        return {
            "phase": self.name,
            "n": n,
            "p50_ms": round(ordered[n // 2] * 1000, 2),
            "p99_ms": round(ordered[min(n - 1, int(n * 0.99))] * 1000, 2),
            "rps": round(rps, 1),
            "share": f"{rps / ceiling_rps:.1%}",
            **{f"{k}_cpu_ms": round(v / n * 1000, 3) for k, v in self.cpu.items()},
        }


async def timed(session: aiohttp.ClientSession, phase: Phase, method: str, url: str, **kwargs) -> dict:
    start = time.perf_counter()
    async with session.request(method, url, **kwargs) as response:
        body = await response.read()
        assert response.status < 300, (method, url, response.status, body[:300])
    phase.timings.append(time.perf_counter() - start)
    return json.loads(body) if body else {}


async def ceiling(requests: int) -> float:
    """Requests per second of a bare aiohttp app answering a small JSON body, the same client."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", CEILING_SERVER, str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        await wait_up(f"http://127.0.0.1:{port}/")
        async with aiohttp.ClientSession() as session:
            phase = Phase("ceiling", {"server": process.pid})
            with phase:
                for _ in range(requests):
                    await timed(session, phase, "GET", f"http://127.0.0.1:{port}/")
        return phase.row(1.0)["rps"]
    finally:
        process.terminate()
        process.wait()


CEILING_SERVER = """
import json, sys
from aiohttp import web
payload = json.dumps({"id": "x" * 36, "userName": "user@example.com"}).encode()
async def answer(request):
    return web.Response(body=payload, content_type="application/json")
app = web.Application()
app.router.add_get("/", answer)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""


async def wait_up(url: str) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(300):
            try:
                async with session.get(url) as response:
                    await response.read()
                    return
            except aiohttp.ClientError:
                await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def config_text(store: str, port: int, workdir: Path, slapd: Slapd | None, base: str | None) -> str:
    text = f'[server]\nport = {port}\n[admin]\nlisten = "127.0.0.1:{free_port()}"\n'
    text += "[limits]\nsource_rate_per_second = 0\nsource_max_concurrent = 0\n"
    text += f'[storage.tortoise]\nurl = "sqlite://{workdir}/{store}.sqlite3"\n'
    if store == "ldap":
        assert slapd is not None
        text += (
            f'[storage]\nbackend = "ldap"\n[storage.ldap]\nurl = "{slapd.url}"\nbind_dn = "{slapd.root_dn}"\n'
            f'bind_password_env = "BENCH_LDAP_PASSWORD"\nbase_dn = "{base}"\nsorted_searches_per_connection = 15\n'
        )
    return text + '[[sources]]\nslug = "bench"\nname = "Bench"\n'


async def variant(store: str, args: argparse.Namespace, ceiling_rps: float, slapd: Slapd, slapd_pid: int) -> list[dict]:
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-{store}-"))
    port = free_port()
    base = f"ou=bench{random.randrange(10**6)},{slapd.suffix}"
    if store == "ldap":
        import ldap

        raw = ldap.initialize(slapd.url)
        raw.simple_bind_s(slapd.root_dn, slapd.root_password)
        raw.add_s(base, [("objectClass", [b"organizationalUnit"]), ("ou", [base.split(",")[0][3:].encode()])])
        raw.unbind_s()
    config = workdir / "scimhost.toml"
    config.write_text(config_text(store, port, workdir, slapd, base))
    env = {**os.environ, "BENCH_LDAP_PASSWORD": slapd.root_password}
    scimhost = [sys.executable, "-m", "scimhost", "-c", str(config)]
    subprocess.run([*scimhost, "migrate"], check=True, capture_output=True, env=env)
    issued = subprocess.run(
        [*scimhost, "sources", "token", "bench", "--json"], check=True, capture_output=True, env=env
    )
    token = json.loads(issued.stdout)["token"]
    server = subprocess.Popen([*scimhost, "serve"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    url = f"http://127.0.0.1:{port}/source/scim/bench/v2"
    pids = {"server": server.pid, **({"slapd": slapd_pid} if store == "ldap" else {})}
    rows = []
    try:
        await wait_up(f"http://127.0.0.1:{port}/source/scim/bench/v2/ServiceProviderConfig")
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}
        async with aiohttp.ClientSession(headers=headers) as session:
            post = Phase("POST /Users", pids)
            ids: list[str] = []
            with post:
                for i in range(args.users):
                    body = {
                        "schemas": [USER],
                        "userName": f"user{i}@example.com",
                        "externalId": f"ext-{i}",
                        "displayName": f"User {i}",
                        "name": {"givenName": "User", "familyName": str(i)},
                        "emails": [{"value": f"user{i}@example.com", "type": "work", "primary": True}],
                        "active": True,
                    }
                    ids.append((await timed(session, post, "POST", f"{url}/Users", json=body))["id"])
            rows.append(post.row(ceiling_rps))
            rng = random.Random(7)
            by_name = Phase("GET userName eq", pids)
            with by_name:
                for _ in range(args.requests):
                    i = rng.randrange(args.users)
                    await timed(
                        session, by_name, "GET", f"{url}/Users?filter=userName%20eq%20%22user{i}%40example.com%22"
                    )
            rows.append(by_name.row(ceiling_rps))
            by_id = Phase("GET /Users/{id}", pids)
            with by_id:
                for _ in range(args.requests):
                    await timed(session, by_id, "GET", f"{url}/Users/{rng.choice(ids)}")
            rows.append(by_id.row(ceiling_rps))
            patch = Phase("PATCH /Users/{id} (title)", pids)
            with patch:
                for n in range(args.requests):
                    body = {"schemas": [PATCH], "Operations": [{"op": "replace", "path": "title", "value": f"t{n}"}]}
                    await timed(session, patch, "PATCH", f"{url}/Users/{rng.choice(ids)}", json=body)
            rows.append(patch.row(ceiling_rps))
            group = await timed(
                session, Phase("", {}), "POST", f"{url}/Groups", json={"displayName": "Everyone", "members": []}
            )
            members = ids[: args.group_size]
            grow = Phase(f"group to {len(members)} members, PATCH of 1 000", pids)
            with grow:
                for start in range(0, len(members) - 1, 1000):
                    chunk = members[start : min(start + 1000, len(members) - 1)]
                    body = {
                        "schemas": [PATCH],
                        "Operations": [{"op": "add", "path": "members", "value": [{"value": m} for m in chunk]}],
                    }
                    await timed(session, grow, "PATCH", f"{url}/Groups/{group['id']}", json=body)
            rows.append(grow.row(ceiling_rps))
            add_one = Phase(f"member add to a {len(members)}-member group", pids)
            with add_one:
                body = {
                    "schemas": [PATCH],
                    "Operations": [{"op": "add", "path": "members", "value": [{"value": members[-1]}]}],
                }
                await timed(session, add_one, "PATCH", f"{url}/Groups/{group['id']}", json=body)
                for n in range(args.requests // 4):
                    # Remove and add back the same member: each request changes the group.
                    op = "remove" if n % 2 == 0 else "add"
                    body = {
                        "schemas": [PATCH],
                        "Operations": [
                            {"op": op, "path": f'members[value eq "{members[-1]}"]'}
                            if op == "remove"
                            else {"op": "add", "path": "members", "value": [{"value": members[-1]}]}
                        ],
                    }
                    await timed(session, add_one, "PATCH", f"{url}/Groups/{group['id']}", json=body)
            rows.append(add_one.row(ceiling_rps))
            get_group = Phase(f"GET {len(members)}-member group, excludedAttributes=members", pids)
            with get_group:
                for _ in range(args.requests // 4):
                    await timed(session, get_group, "GET", f"{url}/Groups/{group['id']}?excludedAttributes=members")
            rows.append(get_group.row(ceiling_rps))
    finally:
        server.terminate()
        server.wait(30)
    return rows


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=10000)
    parser.add_argument("--group-size", type=int, default=10000)
    parser.add_argument("--requests", type=int, default=400)
    args = parser.parse_args()
    ceiling_rps = await ceiling(2000)
    print(f"ceiling: bare aiohttp, one connection, one request at a time: {ceiling_rps:.0f} req/s")
    with Slapd.running() as slapd:
        slapd_pid = (
            int((slapd.directory / "slapd.pid").read_text().split()[0])
            if (slapd.directory / "slapd.pid").exists()
            else 0
        )
        for store in ("sqlite", "ldap"):
            print(f"\n{store}:")
            for row in await variant(store, args, ceiling_rps, slapd, slapd_pid):
                print(json.dumps(row))


if __name__ == "__main__":
    asyncio.run(main())
