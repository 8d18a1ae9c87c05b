"""Storage-only benchmark: CPU per backend operation (create, get, update, filter), no HTTP.

The process's own CPU time (time.process_time) over N of each operation, against a fresh
database. The shared machine makes throughput under wrk vary by a fifth between runs; CPU spent
in one process on a fixed sequence of operations is the steadier figure for changes to the
storage layer. Compare two builds by running each from its own checkout (PYTHONPATH):

    python bench/storage_ops.py --url sqlite:///tmp/ops.sqlite3
    python bench/storage_ops.py --url postgres://postgres@127.0.0.1:5432/ops --no-filter
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

from scimhost.builtin.tortoise_storage.backend import TortoiseBackend, TortoiseSettings
from scimhost.storage.backend import EventDraft, ResourceWrite
from scimhost.testing import ACTOR, query, user_write


def write(i: int, title: str) -> ResourceWrite:
    return user_write(f"user{i}", title=title, emails=[{"value": f"u{i}@example.org", "type": "work"}])


async def run(url: str, count: int, filters: bool) -> dict[str, float]:
    store = TortoiseBackend(TortoiseSettings(url=url), base_dir=Path.cwd())
    await store.open()
    spent: dict[str, float] = {}
    try:
        start = time.process_time()
        ids = []
        for i in range(count):
            event = EventDraft("create", ACTOR, {}, sinks=("hook",))
            ids.append((await store.create_resource("bench", "User", write(i, "t"), event=event)).id)
        spent["create"] = time.process_time() - start
        start = time.process_time()
        for resource_id in ids:
            await store.get_resource("bench", "User", resource_id)
        spent["get"] = time.process_time() - start
        start = time.process_time()
        for i, resource_id in enumerate(ids):
            event = EventDraft("patch", ACTOR, {}, sinks=("hook",))
            await store.update_resource(
                "bench", "User", resource_id, expected_version=1, write=write(i, "u"), event=event
            )
        spent["update"] = time.process_time() - start
        if filters:
            start = time.process_time()
            for i in range(count):
                await store.list_resources("bench", "User", query(f'userName eq "user{i}"'))
            spent["userName eq"] = time.process_time() - start
    finally:
        await store.close()
    return {name: seconds / count for name, seconds in spent.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="an empty database (SQLite file or PostgreSQL)")
    parser.add_argument("--count", type=int, default=1500)
    parser.add_argument("--no-filter", action="store_true", help="skip the filter lookups")
    args = parser.parse_args()
    figures = asyncio.run(run(args.url, args.count, not args.no_filter))
    print(" | ".join(f"{name} {seconds * 1e6:.0f} µs" for name, seconds in figures.items()))


if __name__ == "__main__":
    main()
