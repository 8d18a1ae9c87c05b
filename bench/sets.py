"""SET sinks benchmark (plugins/scimhost-set): SETs pushed to a local receiver (set-push) and
polled by a local poller (set-poll), beside the webhook sink, in the same run.

    python bench/sets.py --writes 1000 --rate 50 --seconds 10

For each sink type a host on a fresh SQLite store (served on a local port) with that one sink:
first PATCHes paced at `--rate` for `--seconds` (commit-to-receipt latency: from the PATCH's
response to the event's arrival at the receiver, or in the poller's hands), then `--writes`
PATCHes as fast as 8 clients send them (events delivered per second, from the first commit to
the last arrival). The receivers and the poller run in this process and do not verify
signatures (the host's work is measured, not theirs); the sinks sign every SET (ES256).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import secrets
import statistics
import tempfile
import time

import aiohttp
from aiohttp import web
from joserfc.jwk import ECKey

from scimhost.app import create_app
from scimhost.http.keys import HOST

PATCH = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"]}
TOKEN = "bench-poller-" + "x" * 40


def claims_of(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


class Arrivals:
    """When each (resource id, version) first arrived."""

    def __init__(self) -> None:
        self.at: dict[tuple[str, int], float] = {}

    def add(self, resource_id: str, version: int) -> None:
        self.at.setdefault((resource_id, version), time.perf_counter())

    def add_set(self, token: str) -> None:
        claims = claims_of(token)
        for payload in claims["events"].values():
            if "version" in payload:
                self.add(claims["sub_id"]["id"], int(payload["version"].strip('W/"')))


async def start(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


async def poller(base: str, arrivals: Arrivals, stop: asyncio.Event) -> None:
    ack: list[str] = []
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as session:
        while not stop.is_set():
            body = {"ack": ack, "maxEvents": 100, "returnImmediately": False}
            async with session.post(f"{base}/set/feed/poll", json=body) as response:
                sets = (await response.json())["sets"]
            for token in sets.values():
                arrivals.add_set(token)
            ack = list(sets)


async def variant(kind: str, args: argparse.Namespace) -> dict:
    arrivals = Arrivals()
    receiving = web.Application()

    async def webhook(request: web.Request) -> web.Response:
        data = json.loads(await request.read())["data"]
        arrivals.add(data["resourceId"], data["version"])
        return web.Response(status=204)

    async def pushed(request: web.Request) -> web.Response:
        arrivals.add_set((await request.read()).decode())
        return web.Response(status=202)

    receiving.router.add_post("/hook", webhook)
    receiving.router.add_post("/sets", pushed)
    receiver_runner, receiver_url = await start(receiving)
    os.environ["BENCH_HOOK_SECRET"] = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    os.environ["BENCH_SET_KEY"] = ECKey.generate_key("P-256").as_pem(private=True).decode()
    os.environ["BENCH_POLL_TOKEN"] = TOKEN
    sink = {
        "webhook": {"type": "webhook", "url": f"{receiver_url}/hook", "secret_env": "BENCH_HOOK_SECRET"},
        "set-push": {
            "type": "set-push",
            "url": f"{receiver_url}/sets",
            "audience": "bench",
            "key_env": ["BENCH_SET_KEY"],
        },
        "set-poll": {
            "type": "set-poll",
            "audience": "bench",
            "key_env": ["BENCH_SET_KEY"],
            "token_env": "BENCH_POLL_TOKEN",
        },
    }[kind]
    directory = tempfile.mkdtemp(prefix="scimhost-sets-")
    config = {
        "storage": {"tortoise": {"url": f"sqlite://{directory}/bench.sqlite3"}},
        "events": {"poll_seconds": 0.5, "sinks": [{"name": "feed", "concurrency": 8, **sink}]},
        "limits": {"source_rate_per_second": 0, "source_max_concurrent": 0},
        "sources": [{"slug": "bench", "name": "Bench"}],
    }
    app = create_app(config)
    host_runner, host_url = await start(app)
    stop = asyncio.Event()
    polling = asyncio.create_task(poller(host_url, arrivals, stop)) if kind == "set-poll" else None
    token = await app[HOST].issue_token("bench")
    base = f"{host_url}/source/scim/bench/v2/Users"
    committed: dict[tuple[str, int], float] = {}
    async with aiohttp.ClientSession(
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}
    ) as client:
        ids = []
        for index in range(10):
            async with client.post(base, data=json.dumps({"userName": f"u{index}"})) as response:
                ids.append((await response.json())["id"])

        async def patch(index: int) -> None:
            user = ids[index % len(ids)]
            body = {**PATCH, "Operations": [{"op": "replace", "path": "title", "value": f"t{index}"}]}
            async with client.patch(f"{base}/{user}", data=json.dumps(body)) as response:
                version = int((await response.json())["meta"]["version"].strip('W/"'))
            committed[(user, version)] = time.perf_counter()

        async def settled(keys) -> float:
            deadline = time.perf_counter() + 120
            while time.perf_counter() < deadline and not all(k in arrivals.at for k in keys):
                await asyncio.sleep(0.01)
            return max(arrivals.at[k] for k in keys)

        began = time.perf_counter()
        for index in range(int(args.rate * args.seconds)):
            await asyncio.sleep(max(0.0, began + index / args.rate - time.perf_counter()))
            await patch(index)
        paced = dict(committed)
        await settled(paced)
        lags = sorted(arrivals.at[k] - at for k, at in paced.items())
        committed.clear()
        first = time.perf_counter()
        queue = iter(range(args.writes))

        async def worker() -> None:
            for index in queue:
                await patch(1_000_000 + index)

        await asyncio.gather(*(worker() for _ in range(8)))
        written = time.perf_counter() - first
        last = await settled(dict(committed))
    stop.set()
    if polling is not None:  # its last poll may be waiting for SETs that will not come
        polling.cancel()
        await asyncio.gather(polling, return_exceptions=True)
    await host_runner.cleanup()
    await receiver_runner.cleanup()
    return {
        "kind": kind,
        "p50_ms": 1000 * statistics.median(lags),
        "p99_ms": 1000 * lags[max(0, int(len(lags) * 0.99) - 1)],
        "writes_per_s": args.writes / written,
        "delivered_per_s": args.writes / (last - first),
    }


async def main(args: argparse.Namespace) -> None:
    print(
        f"| sink | paced {args.rate:g}/s: p50 ms | p99 ms | {args.writes} PATCHes by 8 clients: written/s | delivered/s |"
    )
    print("| --- | --- | --- | --- | --- |")
    for kind in ("webhook", "set-push", "set-poll"):
        r = await variant(kind, args)
        print(
            f"| {kind} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['writes_per_s']:.0f} | {r['delivered_per_s']:.0f} |"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    asyncio.run(main(parser.parse_args()))
