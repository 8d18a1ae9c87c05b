"""Rate limits benchmark: what the per-source limiter costs a GET (server CPU per request, with
the limiter checking every request against limits far above the load, and with the source's
limits off), and what a source at its limit gets while another source is flooded, with the
machine's bare-aiohttp ceiling measured in the same run.

Needs `wrk` (Debian package `wrk`):

    python bench/rate_limits.py --seconds 5

One serve process on SQLite. Sources: `open` (limits off), `checked` (limits on, never reached),
`flooded` (20/s) and `calm` (100/s). The GETs are wrk runs alternated twice (the lower CPU of
each kept). Then wrk floods `flooded` with 8 connections while an aiohttp client asks `calm`
for 150 GETs a second (over its limit) for the same time: the figures are `calm`'s admitted
requests/s and latency, beside the same client alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load import CEILING_APP, measured, wait_up, wrk  # noqa: E402

GET_SCRIPT = """
wrk.headers["Authorization"] = "{auth}"
function request() return wrk.format("GET", "{path}") end
"""
SOURCES = {
    "open": {"source_rate_per_second": 0, "source_max_concurrent": 0},
    "checked": {"source_rate_per_second": 1e9, "source_rate_burst": 1000000000, "source_max_concurrent": 100000},
    "flooded": {"source_rate_per_second": 20, "source_rate_burst": 20},
    "calm": {"source_rate_per_second": 100, "source_rate_burst": 100},
}


def cli(config: Path, *words: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "scimhost", "-c", str(config), *words, "--json"], check=True, capture_output=True
    ).stdout
    return json.loads(out)


def post(url: str, body: dict, token: str) -> dict:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


async def paced(url: str, token: str, rate: float, seconds: float) -> tuple[int, int, list[float]]:
    """GETs at `rate` a second for `seconds`: (admitted, refused, admitted latencies in s)."""
    import aiohttp

    admitted = refused = 0
    latencies: list[float] = []
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as session:

        async def one() -> None:
            nonlocal admitted, refused
            started = time.perf_counter()
            async with session.get(url) as response:
                await response.read()
                if response.status == 200:
                    admitted += 1
                    latencies.append(time.perf_counter() - started)
                else:
                    refused += 1

        began = time.perf_counter()
        tasks = []
        for index in range(int(rate * seconds)):
            await asyncio.sleep(max(0.0, began + index / rate - time.perf_counter()))
            tasks.append(asyncio.create_task(one()))
        await asyncio.gather(*tasks)
    return admitted, refused, latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8087)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "scimhost.toml"
        tables = "".join(
            f'[[sources]]\nslug = "{slug}"\nname = "{slug}"\n[sources.limits]\n'
            + "".join(f"{key} = {value}\n" for key, value in limits.items())
            for slug, limits in SOURCES.items()
        )
        config.write_text(
            f"[server]\nport = {args.port}\naccess_log = false\n[admin]\nenabled = false\n"
            '[storage.tortoise]\nurl = "sqlite://./bench.sqlite3"\n' + tables
        )
        subprocess.run(
            [sys.executable, "-m", "scimhost", "-c", str(config), "migrate"], check=True, capture_output=True
        )
        tokens = {slug: cli(config, "sources", "token", slug)["token"] for slug in SOURCES}
        server = subprocess.Popen(
            [sys.executable, "-m", "scimhost", "-c", str(config), "serve"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        root = f"http://127.0.0.1:{args.port}"
        try:
            wait_up(root + "/healthz")
            paths = {}
            for slug in SOURCES:
                user = post(f"{root}/source/scim/{slug}/v2/Users", {"userName": f"user@{slug}"}, tokens[slug])
                paths[slug] = f"/source/scim/{slug}/v2/Users/{user['id']}"

            def scripted(slug: str) -> str:
                script = Path(tmp) / f"{uuid.uuid4().hex}.lua"
                script.write_text(GET_SCRIPT.format(auth=f"Bearer {tokens[slug]}", path=paths[slug]))
                return str(script)

            rows = {}
            for label, slug in [("GET, limits off", "open"), ("GET, limits checked (never reached)", "checked")] * 2:
                result = measured(server.pid, lambda s=slug: wrk(root, scripted(s), args.seconds, args.connections))
                if label not in rows or result[3] < rows[label][3]:
                    rows[label] = result
            calm_url = root + paths["calm"]
            time.sleep(1.5)  # the calm bucket full again
            alone = asyncio.run(paced(calm_url, tokens["calm"], 150, args.seconds))
            time.sleep(1.5)
            flood: dict = {}
            flooding = threading.Thread(
                target=lambda: flood.update(result=wrk(root, scripted("flooded"), args.seconds, args.connections))
            )
            flooding.start()
            during = asyncio.run(paced(calm_url, tokens["calm"], 150, args.seconds))
            flooding.join()
        finally:
            server.terminate()
            server.wait(timeout=30)

        ceiling_file = Path(tmp) / "ceiling.py"
        ceiling_file.write_text(CEILING_APP)
        ceiling_process = subprocess.Popen([sys.executable, str(ceiling_file), "8095"], start_new_session=True)
        try:
            wait_up("http://127.0.0.1:8095/x")
            ceiling = measured(
                ceiling_process.pid,
                lambda: wrk("http://127.0.0.1:8095", scripted("open"), args.seconds, args.connections),
            )
        finally:
            ceiling_process.terminate()
            ceiling_process.wait(timeout=30)

    print(f"ceiling (bare aiohttp, same Lua GET): {ceiling[0]:.0f} req/s, {ceiling[3]:.3f} ms CPU/req")
    print("| scenario | req/s | p50 ms | p99 ms | of ceiling | server CPU ms/req |")
    print("| --- | --- | --- | --- | --- | --- |")
    for label, (rps, p50, p99, cpu, _) in rows.items():
        print(f"| {label} | {rps:.0f} | {p50:.2f} | {p99:.2f} | {100 * rps / ceiling[0]:.0f}% | {cpu:.3f} |")
    off, on = rows["GET, limits off"][3], rows["GET, limits checked (never reached)"][3]
    print(f"limiter's CPU per GET: {1000 * (on - off):+.1f} us ({100 * (on / off - 1):+.1f}%)")
    print(
        f"flooded source (limit 20/s), wrk with {args.connections} connections: {flood['result'][0]:.0f} answers/s, nearly all 429"
    )
    print("| calm source (limit 100/s), asked 150/s | admitted/s | refused/s | p50 ms | p99 ms |")
    print("| --- | --- | --- | --- | --- |")
    for label, (admitted, refused, latencies) in (("alone", alone), ("beside the flood", during)):
        latencies.sort()
        p99 = latencies[max(0, int(len(latencies) * 0.99) - 1)] if latencies else float("nan")
        print(
            f"| {label} | {admitted / args.seconds:.1f} | {refused / args.seconds:.1f} | "
            f"{1000 * statistics.median(latencies):.2f} | {1000 * p99:.2f} |"
        )
    os._exit(0)


if __name__ == "__main__":
    main()
