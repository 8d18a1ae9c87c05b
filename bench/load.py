"""Load benchmark: requests per second and latency of scimhost under wrk, beside the same
machine's ceiling (a bare aiohttp handler returning a comparable JSON body), in one run.

Needs `wrk` (Debian package `wrk`) and a source seeded with bench/seed.py, including a big group:

    python bench/seed.py -c bench/bench.toml --users 100000 --groups 2 --group-members 100000
    python bench/load.py -c bench/bench.toml --users 100000 --workers 1 --seconds 5

Every scimhost figure is also given as a fraction of the ceiling measured with as many
processes. wrk and the server share the machine's two cores, so the figures are what this
machine does with both, not a server-only number.

After each scenario the script waits until the sinks have taken every event it caused: the
server CPU per request includes delivering the request's events, and "sustained" requests/s
counts the catching up as part of the run (what the server keeps up with, sink included).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

CEILING_APP = """
import sys
import orjson
from aiohttp import web

BODY = orjson.dumps({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "id": "x" * 36,
                     "userName": "user0000001@example.com", "name": {"givenName": "Given", "familyName": "Family"},
                     "emails": [{"value": "user0000001@work.example.com", "type": "work", "primary": True}],
                     "meta": {"resourceType": "User", "location": "http://127.0.0.1/" + "x" * 600}})

async def handler(request):
    return web.Response(body=BODY, content_type="application/scim+json")

app = web.Application()
app.router.add_get("/{tail:.*}", handler)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), reuse_port=True, print=None, access_log=None)
"""

# The webhook sink's receiver (bench.toml's `bench-sink`): accepts every event.
RECEIVER_APP = """
import sys
from aiohttp import web

async def accept(request):
    await request.read()
    return web.Response(status=204)

app = web.Application()
app.router.add_post("/events", accept)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""

LUA_COMMON = """
local token = "{token}"
wrk.headers["Authorization"] = "Bearer " .. token
wrk.headers["Content-Type"] = "application/scim+json"
local ids = {{{ids}}}
local users = {users}
local counter = 0
local prefix = 0
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
function init(args)
  math.randomseed(os.time() + math.floor(os.clock() * 1000000) + tid * 7919)
  -- userNames unique across threads and runs: the thread's number and a random part
  prefix = tid .. "-" .. math.random(1, 1000000000)
end
"""

SCENARIOS = {
    "GET /Users/{id}": 'function request() return wrk.format("GET", "{base}/Users/" .. ids[math.random(#ids)]) end',
    "POST /Users (with a mapping)": (
        'function request() counter = counter + 1; return wrk.format("POST", "{base}/Users", nil, '
        '\'{{"userName": "load-\' .. prefix .. "-" .. counter .. \'@example.com", "name": {{"givenName": "Load"}}}}\') end'
    ),
    "POST /Users (no mapping)": (
        'function request() counter = counter + 1; return wrk.format("POST", "{plain}/Users", '
        '{{["Authorization"] = "Bearer {plain_token}", ["Content-Type"] = "application/scim+json"}}, '
        '\'{{"userName": "plain-\' .. prefix .. "-" .. counter .. \'@example.com", "name": {{"givenName": "Load"}}}}\') end'
    ),
    "PATCH one attribute": (
        'function request() return wrk.format("PATCH", "{base}/Users/" .. ids[math.random(#ids)], nil, '
        '\'{{"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{{"op": "replace", "path": "title", "value": "t\' .. math.random(1000) .. \'"}}]}}\') end'
    ),
    "userName eq lookup": (
        'function request() return wrk.format("GET", string.format("{base}/Users?filter=userName%%20eq%%20%%22user%07d%%40example.com%%22", '
        "math.random(0, users - 1))) end"
    ),
    "member add (one member, seeded group)": (
        'function request() return wrk.format("PATCH", "{base}/Groups/{group}", nil, '
        '\'{{"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{{"op": "add", "path": "members", "value": [{{"value": "\' .. ids[math.random(#ids)] .. \'"}}]}}]}}\') end'
    ),
}


def wrk(url: str, script: str | None, seconds: int, connections: int) -> tuple[float, float, float, float]:
    """(requests/s, p50 ms, p99 ms, seconds) of one wrk run."""
    command = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    if script:
        command[1:1] = ["-s", script]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])
    if "Non-2xx or 3xx responses" in out:
        print(out, file=sys.stderr)

    def percentile(p: str) -> float:
        value, unit = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    return rps, percentile("50"), percentile("99"), seconds


def cpu_seconds(root_pid: int) -> float:
    """User and system CPU time of a process and all its descendants (workers, mapping workers)."""
    tick = os.sysconf("SC_CLK_TCK")
    stats = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            # After the command: state, ppid, ..., utime (14th field of the line), stime (15th).
            stats[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    total, todo = 0.0, [root_pid]
    while todo:
        pid = todo.pop()
        if pid in stats:
            total += stats[pid][1]
        todo += [child for child, (parent, _) in stats.items() if parent == pid]
    return total


def measured(pid: int, run, drain=lambda: None) -> tuple[float, float, float, float, float]:
    """(requests/s, p50 ms, p99 ms, server CPU ms per request, sustained requests/s) of one wrk
    run against `pid`. `drain` waits until the server has caught up with the work the requests
    left behind (the sink's deliveries): its CPU counts as the requests', and sustained
    requests/s is the requests over the run and the catching up."""
    before = cpu_seconds(pid)
    rps, p50, p99, seconds = run()
    started = time.monotonic()
    drain()
    caught_up = time.monotonic() - started
    spent = cpu_seconds(pid) - before
    return rps, p50, p99, 1000 * spent / max(rps * seconds, 1), rps * seconds / (seconds + caught_up)


def backlog(admin: str) -> int:
    """Deliveries pending or in flight over every sink, from the admin listener's metrics."""
    text = urllib.request.urlopen(admin + "/metrics", timeout=10).read().decode()
    return sum(int(float(m[1])) for m in re.finditer(r"^scimhost_outbox_pending\{[^}]*\} ([\d.e+]+)$", text, re.M))


def drained(admin: str) -> None:
    """Wait until every sink has taken every event (at most five minutes)."""
    deadline = time.monotonic() + 300
    while backlog(admin) and time.monotonic() < deadline:
        time.sleep(0.2)


def wait_up(url: str) -> None:
    for _ in range(100):
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-c", "--config", required=True)
    parser.add_argument("--source", default="bench")
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument("--users", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        # The webhook sink's secret, as the operator would set it; the server and the commands get it.
        env = {**os.environ, "SCIMHOST_BENCH_SECRET": "whsec_" + base64.b64encode(os.urandom(32)).decode()}

        def issue_token(source: str) -> str:
            command = [sys.executable, "-m", "scimhost", "-c", args.config, "sources", "token", source, "--json"]
            return json.loads(subprocess.run(command, check=True, capture_output=True, env=env).stdout)["token"]

        token, plain_token = issue_token(args.source), issue_token("plain")
        base = f"/source/scim/{args.source}/v2"

        def script_for(name: str, ids: list[str], group: str) -> str:
            script = Path(tmp) / "scenario.lua"
            common = LUA_COMMON.format(token=token, ids=", ".join(f'"{i}"' for i in ids), users=args.users)
            scenario = SCENARIOS[name].format(
                base=base, group=group, plain="/source/scim/plain/v2", plain_token=plain_token
            )
            script.write_text(common + scenario)
            return str(script)

        # The ceiling is driven by the same Lua request function as the GET scenario: wrk
        # generating each request in Lua is itself slower than replaying one fixed request. It
        # is measured before and after the scenarios; the higher figure is the one divided by
        # (this machine is shared, and one run of the bare handler varies by a fifth).
        ceiling_file = Path(tmp) / "ceiling.py"
        ceiling_file.write_text(CEILING_APP)

        def measure_ceiling():
            # The ceiling listens with reuse_port: a leftover one from an interrupted run would
            # silently take half the requests and none of the measured CPU.
            for port in (8095, 8096, args.port):
                with socket.socket() as probe:
                    if probe.connect_ex(("127.0.0.1", port)) == 0:
                        raise SystemExit(f"port {port} is already in use (a leftover benchmark process?)")
            # One parent process whose children serve: CPU is counted over the whole tree.
            command = " & ".join(f"{sys.executable} {ceiling_file} 8095" for _ in range(args.workers)) + " & wait"
            ceilings = subprocess.Popen(["sh", "-c", command], start_new_session=True)
            try:
                wait_up("http://127.0.0.1:8095/x")
                scripted = measured(
                    ceilings.pid,
                    lambda: wrk(
                        "http://127.0.0.1:8095",
                        script_for("GET /Users/{id}", ["x" * 36], "x"),
                        args.seconds,
                        args.connections,
                    ),
                )
                fixed = measured(
                    ceilings.pid, lambda: wrk("http://127.0.0.1:8095/x", None, args.seconds, args.connections)
                )
                return scripted, fixed
            finally:
                os.killpg(ceilings.pid, signal.SIGTERM)
                ceilings.wait()

        ceiling_before, fixed_before = measure_ceiling()

        receiver_file = Path(tmp) / "receiver.py"
        receiver_file.write_text(RECEIVER_APP)
        receiver = subprocess.Popen([sys.executable, str(receiver_file), "8096"])
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "scimhost",
                "-c",
                args.config,
                "--log-level",
                "WARNING",
                "serve",
                "--workers",
                str(args.workers),
                "--port",
                str(args.port),
            ],
            env=env,
        )
        try:
            root = f"http://127.0.0.1:{args.port}"
            admin = "http://127.0.0.1:8081"  # the admin listener's default address
            wait_up(root + "/healthz")
            request = urllib.request.Request(
                root + base + "/Users?count=1000&attributes=id", headers={"Authorization": f"Bearer {token}"}
            )
            ids = [u["id"] for u in json.load(urllib.request.urlopen(request))["Resources"]]
            request = urllib.request.Request(
                root + base + "/Groups?count=1&excludedAttributes=members", headers={"Authorization": f"Bearer {token}"}
            )
            group = json.load(urllib.request.urlopen(request))["Resources"][0]["id"]
            results = [
                (
                    name,
                    measured(
                        server.pid,
                        lambda name=name: wrk(root, script_for(name, ids, group), args.seconds, args.connections),
                        lambda: drained(admin),
                    ),
                )
                for name in SCENARIOS
            ]
        finally:
            server.terminate()
            server.wait(timeout=60)
            receiver.terminate()
            receiver.wait(timeout=10)
        ceiling_after, fixed_after = measure_ceiling()
        ceiling = max(ceiling_before, ceiling_after)
        print(
            f"| scenario ({args.workers} worker{'s' if args.workers > 1 else ''}) | req/s | p50 ms | p99 ms "
            "| of ceiling | server CPU ms/req | sustained req/s | sustained, of ceiling |"
        )
        print("| --- | --- | --- | --- | --- | --- | --- | --- |")
        for label, (rps, p50, p99, cpu, sustained) in [
            ("bare aiohttp ceiling, before", ceiling_before),
            ("bare aiohttp ceiling, after", ceiling_after),
            ("(bare aiohttp, one fixed request, no Lua), before", fixed_before),
            ("(bare aiohttp, one fixed request, no Lua), after", fixed_after),
            *results,
        ]:
            print(
                f"| {label} | {rps:.0f} | {p50:.2f} | {p99:.2f} | {100 * rps / ceiling[0]:.0f}% | {cpu:.3f} "
                f"| {sustained:.0f} | {100 * sustained / ceiling[0]:.0f}% |",
                flush=True,
            )


if __name__ == "__main__":
    main()
