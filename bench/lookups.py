"""Latency of lookups through HTTP against a seeded source (see bench/seed.py).

Starts `scimhost serve` (one worker) on the given config, sends each kind of lookup one at a
time over one keep-alive connection on loopback, and prints p50 / p90 / p99 in milliseconds as
a Markdown table. Requests are sequential, so the time is the server's, plus loopback.

    python bench/lookups.py -c bench/bench.toml --users 1000000 --requests 200
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import subprocess
import sys
import time
import urllib.parse

import aiohttp

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


def scenarios(users: int, rng: random.Random):
    def pick() -> int:
        return rng.randrange(users)

    yield "userName eq", lambda: f'userName eq "user{pick():07d}@example.com"'
    yield "externalId eq", lambda: f'externalId eq "ext-{pick():07d}"'
    yield "emails.value eq", lambda: f'emails.value eq "user{pick():07d}@home.example.org"'
    yield (
        'emails[type eq "work" and value eq ...]',
        (lambda: f'emails[type eq "work" and value eq "user{pick():07d}@work.example.com"]'),
    )
    yield "enterprise employeeNumber eq", lambda: f'{ENTERPRISE}:employeeNumber eq "E{pick():07d}"'
    yield "userName sw (about 10 matches)", lambda: f'userName sw "user{pick() // 10:06d}"'


async def measure(session, url: str, headers: dict, make_url, requests: int) -> list[float]:
    timings = []
    for _ in range(requests):
        target = make_url()
        started = time.perf_counter()
        async with session.get(url + target, headers=headers) as response:
            await response.read()
            assert response.status == 200, (target, response.status, await response.text())
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def row(name: str, timings: list[float]) -> str:
    timings = sorted(timings)
    p = lambda q: timings[min(len(timings) - 1, int(q * len(timings)))]  # noqa: E731
    return f"| {name} | {len(timings)} | {statistics.median(timings):.2f} | {p(0.9):.2f} | {p(0.99):.2f} |"


async def run(args) -> None:
    token = json.loads(
        subprocess.run(
            [sys.executable, "-m", "scimhost", "-c", args.config, "sources", "token", args.source, "--json"],
            check=True,
            capture_output=True,
        ).stdout
    )["token"]
    server = subprocess.Popen([sys.executable, "-m", "scimhost", "-c", args.config, "--log-level", "WARNING", "serve"])
    try:
        base = f"http://127.0.0.1:{args.port}/source/scim/{args.source}/v2/Users"
        headers = {"Authorization": f"Bearer {token}"}
        async with aiohttp.ClientSession() as session:
            for _ in range(100):
                try:
                    async with session.get(f"http://127.0.0.1:{args.port}/healthz") as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.2)
            rng = random.Random(9865)
            print("| lookup | requests | p50 ms | p90 ms | p99 ms |")
            print("| --- | --- | --- | --- | --- |")
            for name, make_filter in scenarios(args.users, rng):
                await measure(
                    session,
                    base,
                    headers,
                    lambda make_filter=make_filter: "?filter=" + urllib.parse.quote(make_filter()),
                    5,
                )
                timings = await measure(
                    session,
                    base,
                    headers,
                    lambda make_filter=make_filter: "?filter=" + urllib.parse.quote(make_filter()),
                    args.requests,
                )
                print(row(name, timings), flush=True)
            deep = max(args.users - 100_000, 1)
            timings = await measure(
                session,
                base,
                headers,
                lambda: f"?startIndex={rng.randrange(deep, args.users - 100)}&count=100",
                max(args.requests // 4, 10),
            )
            print(row("startIndex page deep in the set (count=100)", timings), flush=True)
            # A cursor walk: each request follows the previous page's nextCursor.
            cursor, timings = "", []
            for _ in range(max(args.requests // 4, 10)):
                started = time.perf_counter()
                async with session.get(f"{base}?count=100&cursor={urllib.parse.quote(cursor)}", headers=headers) as r:
                    page = await r.json(content_type=None)
                timings.append((time.perf_counter() - started) * 1000)
                cursor = page["nextCursor"]
            print(row("cursor page (count=100)", timings[1:]), flush=True)
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-c", "--config", required=True)
    parser.add_argument("--source", default="bench")
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument("--users", type=int, required=True, help="how many users bench/seed.py seeded")
    parser.add_argument("--requests", type=int, default=200)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
