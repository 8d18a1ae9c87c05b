"""A slow resource beside fast ones: how one sink's receiver that is slow for one resource
affects the delivery of every other resource, of that sink and of a second sink.

    python bench/slow_receiver.py --seconds 10 --rate 40

A host on a fresh SQLite store (served on a local port, the event log on) with two webhook
sinks, `hook` and `audit`, posting to one local receiver. The receiver answers `hook`'s
deliveries of the user `slow` after `--slow-seconds` (inside the sink's timeout, so they
succeed) and everything else at once. PATCHes are sent at `--rate` per second for `--seconds`,
round robin over `slow` and `--users` fast users; for each fast user's event the time from the
PATCH's response (the write committed) to its arrival at each sink's receiver is measured.
Variants in the same run: every user fast, and one slow.
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

from scimhost.app import create_app
from scimhost.http.keys import HOST

PATCH = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"]}


class Receiver:
    """Both sinks' receiver: records each arrival, slow for one user at one sink when asked."""

    def __init__(self, slow_seconds: float) -> None:
        self.slow_seconds = slow_seconds
        self.arrived: dict[tuple[str, str, int], float] = {}  # (sink, resource id, version)

    async def handle(self, request: web.Request) -> web.Response:
        data = json.loads(await request.read())["data"]
        sink = request.match_info["sink"]
        self.arrived.setdefault((sink, data["resourceId"], data["version"]), time.perf_counter())
        if self.slow_seconds and sink == "hook" and data["resource"]["userName"] == "slow":
            await asyncio.sleep(self.slow_seconds)
        return web.Response(status=204)


async def start(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


async def variant(label: str, args: argparse.Namespace, slow_seconds: float) -> dict:
    receiver = Receiver(slow_seconds)
    receiving = web.Application()
    receiving.router.add_post("/{sink}", receiver.handle)
    receiver_runner, receiver_url = await start(receiving)
    os.environ["BENCH_WEBHOOK_SECRET"] = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    directory = tempfile.mkdtemp(prefix="scimhost-slow-")
    sinks = [
        {
            "name": name,
            "type": "webhook",
            "url": f"{receiver_url}/{name}",
            "secret_env": "BENCH_WEBHOOK_SECRET",
            "timeout_seconds": 10,
            "concurrency": 8,
        }
        for name in ("hook", "audit")
    ]
    config = {
        "storage": {"tortoise": {"url": f"sqlite://{directory}/bench.sqlite3"}},
        "events": {"poll_seconds": 0.5, "sinks": sinks},
        "limits": {"source_rate_per_second": 0, "source_max_concurrent": 0},
        "sources": [{"slug": "bench", "name": "Bench"}],
    }
    app = create_app(config)
    host_runner, host_url = await start(app)
    token = await app[HOST].issue_token("bench")
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}
    base = f"{host_url}/source/scim/bench/v2/Users"
    committed: dict[tuple[str, int], float] = {}
    async with aiohttp.ClientSession(headers=headers) as client:
        ids = {}
        for name in ["slow"] + [f"fast{i}" for i in range(args.users)]:
            async with client.post(base, data=json.dumps({"userName": name})) as response:
                ids[name] = (await response.json())["id"]
        names = list(ids)
        count = int(args.seconds * args.rate)
        began = time.perf_counter()
        for index in range(count):
            await asyncio.sleep(max(0.0, began + index / args.rate - time.perf_counter()))
            name = names[index % len(names)]
            body = {**PATCH, "Operations": [{"op": "replace", "path": "title", "value": f"t{index}"}]}
            async with client.patch(f"{base}/{ids[name]}", data=json.dumps(body)) as response:
                version = int((await response.json())["meta"]["version"].strip('W/"'))
            if name != "slow":
                committed[(ids[name], version)] = time.perf_counter()
        deadline = time.perf_counter() + 60
        while time.perf_counter() < deadline and not all(
            (sink, *key) in receiver.arrived for sink in ("hook", "audit") for key in committed
        ):
            await asyncio.sleep(0.05)
    ended = time.perf_counter()
    result = {"label": label}
    for sink in ("hook", "audit"):
        lags = sorted(
            receiver.arrived[(sink, *key)] - at for key, at in committed.items() if (sink, *key) in receiver.arrived
        )
        last = max(receiver.arrived[(sink, *key)] for key in committed if (sink, *key) in receiver.arrived)
        result[sink] = {
            "delivered": f"{len(lags)}/{len(committed)}",
            "per_s": len(lags) / (last - began),
            "p50_ms": statistics.median(lags) * 1000,
            "p99_ms": lags[int(len(lags) * 0.99) - 1] * 1000,
            "max_ms": lags[-1] * 1000,
        }
    result["window_s"] = ended - began
    await host_runner.cleanup()
    await receiver_runner.cleanup()
    return result


async def main(args: argparse.Namespace) -> None:
    for label, slow in (
        ("every user fast", 0.0),
        (f"one user slow ({args.slow_seconds:g} s) at hook", args.slow_seconds),
    ):
        result = await variant(label, args, slow)
        print(f"{result['label']}:")
        for sink in ("hook", "audit"):
            r = result[sink]
            print(
                f"  {sink:5}  fast events delivered {r['delivered']}, {r['per_s']:.1f}/s; "
                f"commit to receipt p50 {r['p50_ms']:.0f} ms, p99 {r['p99_ms']:.0f} ms, max {r['max_ms']:.0f} ms"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=40.0, help="PATCHes per second, all users together")
    parser.add_argument("--users", type=int, default=9, help="fast users beside the slow one")
    parser.add_argument("--slow-seconds", type=float, default=1.5)
    asyncio.run(main(parser.parse_args()))
