"""Event log benchmark: what recording an event (and its deliveries) costs a create and a PATCH
in the store, and how fast the dispatcher moves events to a local webhook receiver.

    python bench/event_log.py --url sqlite:///tmp/bench-events.sqlite3 --writes 2000
    python bench/event_log.py --url postgres://postgres@127.0.0.1:5432/test --writes 2000

Each variant writes through the storage backend itself (no HTTP, one task), in the same run, on
a fresh database: without an event, with an event and no sink, with an event and two sinks.
Times are wall-clock per write and, for SQLite (whose statements run on this process's
thread), this process's CPU per write. Delivery: the writes of the last variant are delivered
by a Dispatcher through the webhook sink to an aiohttp receiver in the same process.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import secrets
import statistics
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from aiohttp import web

from scimhost.builtin.tortoise_storage.backend import TortoiseBackend, TortoiseSettings
from scimhost.delivery.dispatcher import Dispatcher, DispatchSettings
from scimhost.testing import draft, user_write


async def fresh_store(url: str) -> TortoiseBackend:
    if url.startswith("postgres"):
        import asyncpg

        schema = f"bench_{uuid.uuid4().hex[:10]}"
        connection = await asyncpg.connect(url)
        await connection.execute(f'CREATE SCHEMA "{schema}"')
        await connection.close()
        url = f"{url}?schema={schema}"
    else:
        path = Path(url[len("sqlite://") :])
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
    store = TortoiseBackend(TortoiseSettings(url=url), base_dir=Path.cwd())
    await store.open()
    return store


async def timed(label: str, writes, count: int) -> dict:
    cpu, wall = time.process_time(), time.perf_counter()
    for index in range(count):
        await writes(index)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"label": label, "wall_us": wall / count * 1e6, "cpu_us": cpu / count * 1e6}


async def variant(url: str, label: str, count: int, event_for) -> tuple[dict, dict, TortoiseBackend]:
    store = await fresh_store(url)
    ids = []

    async def create(index: int) -> None:
        stored = await store.create_resource(
            "bench", "User", user_write(f"u{label[:3]}{index}"), event=event_for("create")
        )
        ids.append(stored.id)

    async def patch(index: int) -> None:
        user = ids[index % len(ids)]
        name = f"u{label[:3]}{index % len(ids)}"
        await store.update_resource(
            "bench",
            "User",
            user,
            expected_version=None,
            write=user_write(name, title=f"t{index}"),
            event=event_for("patch"),
        )

    created = await timed(f"create, {label}", create, count)
    patched = await timed(f"PATCH, {label}", patch, count)
    return created, patched, store


class Receiver:
    def __init__(self) -> None:
        self.lags: list[float] = []

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        created = datetime.fromisoformat(body["timestamp"].replace("Z", "+00:00"))
        self.lags.append((datetime.now(UTC) - created).total_seconds())
        return web.Response(status=204)


async def receiver_and_sink():
    """A receiver on a local port, and a started webhook sink posting to it."""
    from scimhost_webhook import WebhookSettings, WebhookSink

    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/events", receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    os.environ.setdefault("BENCH_WEBHOOK_SECRET", "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode())
    sink = WebhookSink(
        WebhookSettings(url=f"http://127.0.0.1:{runner.addresses[0][1]}/events", secret_env="BENCH_WEBHOOK_SECRET"),
        sink_name="a",
    )
    await sink.start()
    return receiver, runner, sink


async def deliver_all(store: TortoiseBackend, expected: int) -> dict:
    receiver, runner, sink = await receiver_and_sink()
    dispatcher = Dispatcher(store, {"a": (sink, 16)}, owner="bench", settings=DispatchSettings(poll_seconds=0.01))
    started = time.perf_counter()
    task = asyncio.create_task(dispatcher.run())
    while len(receiver.lags) < expected:
        await asyncio.sleep(0.05)
    elapsed = time.perf_counter() - started
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await sink.close()
    await runner.cleanup()
    return {"events": expected, "seconds": elapsed, "per_second": expected / elapsed}


async def live_lag(url: str, count: int) -> dict:
    """Commit-to-receipt time with the dispatcher running beside a steady trickle of writes."""
    store = await fresh_store(url)
    receiver, runner, sink = await receiver_and_sink()
    dispatcher = Dispatcher(store, {"a": (sink, 16)}, owner="bench", settings=DispatchSettings(poll_seconds=0.5))
    task = asyncio.create_task(dispatcher.run())
    for index in range(count):
        await store.create_resource("bench", "User", user_write(f"live{index}"), event=draft("create", sinks=("a",)))
        dispatcher.wake()  # what a commit in the serving process does
        await asyncio.sleep(0.01)
    while len(receiver.lags) < count:
        await asyncio.sleep(0.05)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await sink.close()
    await runner.cleanup()
    await store.close()
    lags = sorted(receiver.lags)
    return {"p50_ms": statistics.median(lags) * 1000, "p99_ms": lags[int(len(lags) * 0.99) - 1] * 1000}


async def main(url: str, count: int, lag_writes: int) -> None:
    rows = []
    for label, event_for in (
        ("no event", lambda action: None),
        ("event, no sink", lambda action: draft(action)),
        ("event, two sinks", lambda action: draft(action, sinks=("a", "b"))),
    ):
        created, patched, store = await variant(url, label, count, event_for)
        rows += [created, patched]
        if label != "event, two sinks":
            await store.close()
    print(f"| write ({url.split(':')[0]}, {count} each) | wall µs | CPU µs (this process) |")
    print("| --- | --- | --- |")
    for row in rows:
        print(f"| {row['label']} | {row['wall_us']:.0f} | {row['cpu_us']:.0f} |")
    delivered = await deliver_all(store, 2 * count)
    await store.close()
    print(
        f"\nwebhook sink, a backlog of {delivered['events']} events (concurrency 16): "
        f"{delivered['per_second']:.0f} events/s"
    )
    lag = await live_lag(url, lag_writes)
    print(f"commit to receipt, one write every 10 ms: p50 {lag['p50_ms']:.1f} ms, p99 {lag['p99_ms']:.1f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--writes", type=int, default=2000)
    parser.add_argument("--lag-writes", type=int, default=300, help="writes of the commit-to-receipt measurement")
    args = parser.parse_args()
    asyncio.run(main(args.url, args.writes, args.lag_writes))
