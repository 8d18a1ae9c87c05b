"""How fast the dispatcher drains a backlog into a sink: N writes made while the sink is
paused, then resumed; deliveries per second and the process's CPU per delivery.

    python bench/backlog_drain.py --sink nats --batch-size 1      # one publish per attempt
    python bench/backlog_drain.py --sink nats --batch-size 100    # publishes in flight, acks together
    python bench/backlog_drain.py --sink webhook --storage postgres://postgres@127.0.0.1:5432/test

One process holds the app (the dispatcher included) and, for the webhook, the receiver; the
writes are made before the clock starts, so the figures are the dispatcher's and the sink's
work only (CPU includes the receiver's for the webhook, and asyncpg's for PostgreSQL).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import tempfile
import time
import uuid
from datetime import UTC, datetime

import asyncpg
import nats
import orjson
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from scimhost.app import create_app
from scimhost.http.keys import HOST

RECEIVER_PORT = 8099


async def run(args: argparse.Namespace) -> None:
    database = None
    if args.storage == "sqlite":
        url = f"sqlite://{tempfile.mkdtemp()}/drain.sqlite3"
    else:
        database = f"drain_{uuid.uuid4().hex[:8]}"
        admin = await asyncpg.connect(args.storage)
        await admin.execute(f'CREATE DATABASE "{database}"')
        await admin.close()
        url = args.storage.rsplit("/", 1)[0] + "/" + database
    received = 0

    async def accept(request: web.Request) -> web.Response:
        nonlocal received
        await request.read()
        received += 1
        return web.Response(status=204)

    receiver = web.AppRunner(web.Application(), access_log=None)
    receiver.app.router.add_post("/events", accept)
    await receiver.setup()
    await web.TCPSite(receiver, "127.0.0.1", RECEIVER_PORT).start()
    stream = f"DRAIN_{uuid.uuid4().hex[:8]}"
    os.environ["DRAIN_SECRET"] = "whsec_" + base64.b64encode(os.urandom(32)).decode()
    if args.sink == "nats":
        sink = {"type": "nats", "stream": stream, "subject": stream.lower() + ".{source}.{resource_type}.{action}"}
        sink["batch_size"] = args.batch_size
    else:
        sink = {"type": "webhook", "url": f"http://127.0.0.1:{RECEIVER_PORT}/events", "secret_env": "DRAIN_SECRET"}
    config = {
        "server": {"public_url": "http://bench", "access_log": False},
        "limits": {"source_rate_per_second": 0, "source_max_concurrent": 0},
        "storage": {"backend": "tortoise", "tortoise": {"url": url}},
        "sources": [{"slug": "bench", "name": "Bench"}],
        "admin": {"enabled": False},
        "events": {"sinks": [{"name": "out", "concurrency": args.concurrency, **sink}]},
    }
    app = create_app(config)
    client = TestClient(TestServer(app))
    await client.start_server()
    storage = app[HOST].storage
    try:
        await storage.set_sink_paused("out", True, reason="filling", now=datetime.now(UTC))
        headers = {"Authorization": f"Bearer {await app[HOST].issue_token('bench')}"}
        headers["Content-Type"] = "application/scim+json"
        for i in range(args.events):
            body = orjson.dumps({"userName": f"user{i}@example.com"})
            response = await client.post("/source/scim/bench/v2/Users", data=body, headers=headers)
            assert response.status == 201, await response.text()
        started, cpu = time.perf_counter(), time.process_time()
        await storage.set_sink_paused("out", False, reason=None, now=datetime.now(UTC))
        while (await storage.sink_stats("out")).done < args.events:
            await asyncio.sleep(0.01)
        seconds, spent = time.perf_counter() - started, time.process_time() - cpu
    finally:
        await client.close()
        await receiver.cleanup()
        if args.sink == "nats":
            connection = await nats.connect("nats://127.0.0.1:4222")
            await connection.jetstream().delete_stream(stream)
            await connection.close()
        if database is not None:
            admin = await asyncpg.connect(args.storage)
            await admin.execute(f'DROP DATABASE "{database}" WITH (FORCE)')
            await admin.close()
    label = f"{args.sink}, batch_size {args.batch_size}" if args.sink == "nats" else args.sink
    print(
        f"| {label} | {args.storage.split(':')[0]} | concurrency {args.concurrency} | {args.events / seconds:.0f} "
        f"| {1000 * spent / args.events:.3f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sink", choices=("nats", "webhook"), default="nats")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--storage", default="sqlite", help="sqlite, or a PostgreSQL server URL with a database")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
