"""Membership changes and reads on one big group, through HTTP (see bench/seed.py --group-members).

    python bench/seed.py -c bench/bench.toml --users 100000 --groups 2 --group-members 100000
    python bench/big_group.py -c bench/bench.toml --port 8089

Prints p50/p99 of adding and removing one member (50 each), a batch of 100, replacing the
whole member list with one member swapped, reading a user in 1 000 groups and a one-member
group, the time of reads with and without members, and the server process's resident memory
(current and peak) after a full read.
"""

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time

import aiohttp

parser = argparse.ArgumentParser()
parser.add_argument("-c", "--config", required=True)
parser.add_argument("--port", type=int, default=8089)
args = parser.parse_args()
cfg, port = args.config, args.port
token = json.loads(
    subprocess.run(
        [sys.executable, "-m", "scimhost", "-c", cfg, "sources", "token", "bench", "--json"],
        capture_output=True,
        check=True,
    ).stdout
)["token"]
srv = subprocess.Popen([sys.executable, "-m", "scimhost", "-c", cfg, "--log-level", "WARNING", "serve"])


async def main():
    h = {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}
    base = f"http://127.0.0.1:{port}/source/scim/bench/v2"
    async with aiohttp.ClientSession() as s:
        for _ in range(50):
            try:
                async with s.get(f"http://127.0.0.1:{port}/healthz") as r:
                    break
            except aiohttp.ClientError:
                await asyncio.sleep(0.2)
        async with s.get(base + "/Groups?count=1&excludedAttributes=members", headers=h) as r:
            gid = (await r.json(content_type=None))["Resources"][0]["id"]
        async with s.get(base + f"/Users?count=1&filter=groups.value%20eq%20%22{gid}%22", headers=h) as r:
            last = (await r.json(content_type=None))["Resources"][0]["id"]
        # a user outside the group: create some
        extra = []
        for i in range(100):
            async with s.post(
                base + "/Users", data=json.dumps({"userName": f"extra-{time.time_ns()}-{i}"}), headers=h
            ) as r:
                extra.append((await r.json(content_type=None))["id"])
        t = []
        for uid in extra[:50]:
            body = {
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "add", "path": "members", "value": [{"value": uid}]}],
            }
            st = time.perf_counter()
            async with s.patch(base + f"/Groups/{gid}", data=json.dumps(body), headers=h) as r:
                assert r.status == 204, await r.text()
            t.append((time.perf_counter() - st) * 1000)
        print(f"member add p50 {statistics.median(t):.2f} ms p99 {sorted(t)[-1]:.2f}")
        t = []
        for uid in extra[:50]:
            body = {
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "remove", "path": f'members[value eq "{uid}"]'}],
            }
            st = time.perf_counter()
            async with s.patch(base + f"/Groups/{gid}", data=json.dumps(body), headers=h) as r:
                assert r.status == 204
            t.append((time.perf_counter() - st) * 1000)
        print(f"member remove p50 {statistics.median(t):.2f} ms")
        batch_users = extra[:100] if len(extra) >= 100 else extra
        body = {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "add", "path": "members", "value": [{"value": u} for u in batch_users]}],
        }
        st = time.perf_counter()
        async with s.patch(base + f"/Groups/{gid}", data=json.dumps(body), headers=h) as r:
            assert r.status == 204, await r.text()
        added = (time.perf_counter() - st) * 1000
        body = {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "remove", "path": "members", "value": [{"value": u} for u in batch_users]}],
        }
        st = time.perf_counter()
        async with s.patch(base + f"/Groups/{gid}", data=json.dumps(body), headers=h) as r:
            assert r.status == 204, await r.text()
        print(f"batch of {len(batch_users)}: add {added:.2f} ms, remove {(time.perf_counter() - st) * 1000:.2f} ms")
        # Replace the whole list with one member swapped: the database computes the difference.
        async with s.get(base + f"/Groups/{gid}?attributes=members", headers=h) as r:
            current = [m["value"] for m in (await r.json(content_type=None))["members"]]
        wanted = current[1:] + [extra[0]]
        body = {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "members", "value": [{"value": u} for u in wanted]}],
        }
        st = time.perf_counter()
        async with s.patch(base + f"/Groups/{gid}", data=json.dumps(body), headers=h) as r:
            assert r.status == 204, await r.text()
        print(f"replace all {len(wanted)} members (one swapped) {(time.perf_counter() - st) * 1000:.0f} ms")
        st = time.perf_counter()
        async with s.get(base + f"/Groups/{gid}?excludedAttributes=members", headers=h) as r:
            await r.read()
        print("GET group excluding members %.2f ms" % ((time.perf_counter() - st) * 1000))
        st = time.perf_counter()
        async with s.get(base + f"/Users/{last}", headers=h) as r:
            await r.read()
        print("GET member user %.2f ms" % ((time.perf_counter() - st) * 1000))
        # A user in 1 000 groups: its read carries all of them.
        many = extra[-1]
        for i in range(1000):
            async with s.post(
                base + "/Groups",
                data=json.dumps({"displayName": f"many-{time.time_ns()}-{i}", "members": [{"value": many}]}),
                headers=h,
            ) as r:
                assert r.status == 201, await r.text()
                small = (await r.json(content_type=None))["id"]
        t = []
        for _ in range(50):
            st = time.perf_counter()
            async with s.get(base + f"/Groups/{small}", headers=h) as r:
                assert len((await r.json(content_type=None))["members"]) == 1
            t.append((time.perf_counter() - st) * 1000)
        print(f"GET a one-member group (beside the big one) p50 {statistics.median(t):.2f} ms p99 {sorted(t)[-1]:.2f}")
        t = []
        for _ in range(50):
            st = time.perf_counter()
            async with s.get(base + f"/Users/{many}", headers=h) as r:
                body = await r.json(content_type=None)
            t.append((time.perf_counter() - st) * 1000)
        assert len(body["groups"]) == 1000
        print(
            f"GET user in 1000 groups p50 {statistics.median(t):.2f} ms p99 {sorted(t)[-1]:.2f}, "
            f"{len(json.dumps(body))} bytes"
        )
        st = time.perf_counter()
        async with s.get(base + f"/Groups/{gid}", headers=h) as r:
            b = await r.read()
        print(f"GET full group {(time.perf_counter() - st) * 1000:.0f} ms, {len(b)} bytes")
        pid = srv.pid
        rss = [line for line in open(f"/proc/{pid}/status") if line.startswith(("VmHWM", "VmRSS"))]
        print("server", " ".join(x.strip() for x in rss))


try:
    asyncio.run(main())
finally:
    srv.terminate()
    srv.wait()
