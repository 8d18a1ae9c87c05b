"""The reference: scim2-server (pure Python, in memory, nothing durable) under the load
benchmark's POST and PATCH, beside the same bare-aiohttp ceiling, in one run.

scim2-server goes in a virtualenv of its own (its dependencies are not scimhost's):

    python3.11 -m venv /tmp/s2venv && /tmp/s2venv/bin/pip install scim2-server==0.8.3
    python bench/reference_server.py --scim2-server /tmp/s2venv/bin/scim2-server --seconds 8

Same wrk (2 threads, 8 connections), same Lua request functions as bench/load.py, CPU of the
serving process per request; the ceiling is measured before and after, the higher one divides.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

from load import CEILING_APP, LUA_COMMON, SCENARIOS, measured, wait_up, wrk

PORT, CEILING_PORT = 8097, 8095
NAMES = ("POST /Users (no mapping)", "PATCH one attribute")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scim2-server", required=True, help="the scim2-server command of its own virtualenv")
    parser.add_argument("--users", type=int, default=1000, help="users created before the scenarios")
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:

        def script_for(name: str, ids: list[str]) -> str:
            script = Path(tmp) / "scenario.lua"
            common = LUA_COMMON.format(token="reference", ids=", ".join(f'"{i}"' for i in ids), users=len(ids))
            script.write_text(common + SCENARIOS[name].format(base="", plain="", plain_token="reference", group=""))
            return str(script)

        ceiling_file = Path(tmp) / "ceiling.py"
        ceiling_file.write_text(CEILING_APP)

        def ceiling() -> tuple[float, ...]:
            process = subprocess.Popen([sys.executable, str(ceiling_file), str(CEILING_PORT)])
            try:
                wait_up(f"http://127.0.0.1:{CEILING_PORT}/x")
                return measured(
                    process.pid,
                    lambda: wrk(
                        f"http://127.0.0.1:{CEILING_PORT}",
                        script_for("GET /Users/{id}", ["x" * 36]),
                        args.seconds,
                        args.connections,
                    ),
                )
            finally:
                process.send_signal(signal.SIGTERM)
                process.wait()

        before = ceiling()
        server = subprocess.Popen([args.scim2_server, "--port", str(PORT)], stdout=subprocess.DEVNULL)
        try:
            root = f"http://127.0.0.1:{PORT}"
            wait_up(root + "/ServiceProviderConfig")
            ids = []
            for i in range(args.users):
                body = json.dumps(
                    {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": f"user{i:07d}@example.com"}
                ).encode()
                request = urllib.request.Request(
                    root + "/Users", body, {"Content-Type": "application/scim+json"}, method="POST"
                )
                ids.append(json.load(urllib.request.urlopen(request))["id"])
            results = [
                (
                    name,
                    measured(
                        server.pid, lambda name=name: wrk(root, script_for(name, ids), args.seconds, args.connections)
                    ),
                )
                for name in NAMES
            ]
        finally:
            server.terminate()
            server.wait(timeout=30)
        after = ceiling()
        top = max(before, after)
        print("| scim2-server scenario | req/s | p50 ms | p99 ms | of ceiling | server CPU ms/req |")
        print("| --- | --- | --- | --- | --- | --- |")
        for label, (rps, p50, p99, cpu, _) in [
            ("bare aiohttp ceiling, before", before),
            ("bare aiohttp ceiling, after", after),
            *results,
        ]:
            print(
                f"| {label} | {rps:.0f} | {p50:.2f} | {p99:.2f} | {100 * rps / top[0]:.0f}% | {cpu:.3f} |", flush=True
            )


if __name__ == "__main__":
    main()
