"""Per resource, events reach a sink in commit order when two serve workers write concurrently
and the receiver answers after random delays. Real processes, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import json
import os
import random
import secrets
import signal
import subprocess
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from serving import admin_table, cli_token, free_port, scimhost, wait_until_up

pytest.importorskip("scimhost_webhook")
from standardwebhooks.webhooks import Webhook  # noqa: E402


def test_two_workers_deliver_each_resources_events_in_version_order(tmp_path, storage_url):
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    verifier = Webhook(secret)
    received: list[dict] = []
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            payload = verifier.verify(body, dict(self.headers))
            time.sleep(random.uniform(0, 0.03))  # a receiver of uneven speed
            with lock:
                received.append(payload["data"])
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    receiver = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    port = free_port()
    config = tmp_path / "scimhost.toml"
    config.write_text(
        f'[server]\nport = {port}\n[events]\npoll_seconds = 0.05\n[storage.tortoise]\nurl = "{storage_url}"\n'
        f'[[events.sinks]]\nname = "hook"\ntype = "webhook"\nconcurrency = 8\n'
        f'url = "http://127.0.0.1:{receiver.server_address[1]}/e"\nsecret_env = "ORDER_TEST_SECRET"\n'
        '[[sources]]\nslug = "demo"\nname = "Demo"\n' + admin_table()
    )
    env = {**os.environ, "ORDER_TEST_SECRET": secret}
    token = cli_token(config, env)
    process = subprocess.Popen(
        scimhost("-c", str(config), "serve", "--workers", "2"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    base = f"http://127.0.0.1:{port}/source/scim/demo/v2"

    def call(method: str, path: str, body: dict) -> dict:
        request = urllib.request.Request(
            base + path,
            data=json.dumps(body).encode(),
            method=method,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read()
            return json.loads(text) if text else {}

    try:
        wait_until_up(port, process)
        users = [call("POST", "/Users", {"userName": f"o{i}"}) for i in range(3)]
        group = call("POST", "/Groups", {"displayName": "G"})
        patch = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
        writes = [
            (
                "PATCH",
                f"/Users/{u['id']}",
                {"schemas": [patch], "Operations": [{"op": "replace", "path": "title", "value": f"t{n}"}]},
            )
            for n in range(8)
            for u in users
        ]
        writes += [
            (
                "PATCH",
                f"/Groups/{group['id']}",
                {"schemas": [patch], "Operations": [{"op": "add", "path": "members", "value": [{"value": u["id"]}]}]},
            )
            for u in users
        ]
        random.shuffle(writes)
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda w: call(*w), writes))
        expected = len(users) + 1 + len(writes)

        def status() -> dict:
            out = subprocess.run(
                scimhost("-c", str(config), "deliveries", "status", "--json"), capture_output=True, check=True, env=env
            ).stdout
            [sink] = json.loads(out)["sinks"]
            return sink

        deadline = time.monotonic() + 60
        while (sink := status())["done"] < expected and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
        receiver.shutdown()
    assert process.returncode == 0, err.decode()[-2000:]
    # The store records a delivery done only after the receiver's 2xx: every event of the log
    # was received (at least once; a retry may repeat one).
    assert (sink["done"], sink["pending"], sink["dead"]) == (expected, 0, 0)
    logged = subprocess.run(
        scimhost("-c", str(config), "events", "list", "--limit", "10000", "--json"),
        capture_output=True,
        check=True,
        env=env,
    ).stdout
    assert {d["id"] for d in received} == {json.loads(line)["id"] for line in logged.splitlines()} and len(
        {d["id"] for d in received}
    ) == expected
    for resource_id in {d["resourceId"] for d in received}:
        versions = [d["version"] for d in received if d["resourceId"] == resource_id]
        first_seen = list(dict.fromkeys(versions))
        assert first_seen == sorted(first_seen), (resource_id, versions)
    assert {d["version"] for d in received if d["resourceId"] == group["id"]} == set(range(1, len(users) + 2))
