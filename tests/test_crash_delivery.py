"""Nothing acknowledged is lost: a server killed (SIGKILL) right after a commit delivers the
event once it is started again; one killed after the receiver's 2xx, before recording it,
delivers it again with the same id. Real `scimhost serve` processes, a real receiver, on SQLite
and PostgreSQL."""

from __future__ import annotations

import base64
import json
import os
import secrets
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from serving import admin_table, cli_token, free_port, scimhost, wait_until_up

pytest.importorskip("scimhost_webhook")
from standardwebhooks.webhooks import Webhook  # noqa: E402


class Receiver:
    """A webhook endpoint on a thread: verifies each request, records (webhook-id, payload)."""

    def __init__(self, secret: str) -> None:
        verifier = Webhook(secret)
        self.received: list[tuple[str, dict]] = []
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                payload = verifier.verify(body, dict(self.headers))
                received.append((self.headers["webhook-id"], payload))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/events"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, count: int, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.received) < count:
            assert time.monotonic() < deadline, f"received {len(self.received)} of {count}"
            time.sleep(0.05)


@pytest.fixture
def setup(tmp_path, storage_url):
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    receiver = Receiver(secret)
    port = free_port()
    config = tmp_path / "scimhost.toml"
    config.write_text(
        f'[server]\nport = {port}\n[events]\npoll_seconds = 0.1\n[storage.tortoise]\nurl = "{storage_url}"\n'
        f'[[events.sinks]]\nname = "hook"\ntype = "webhook"\nurl = "{receiver.url}"\nsecret_env = "CRASH_TEST_SECRET"\n'
        '[[sources]]\nslug = "demo"\nname = "Demo"\n' + admin_table()
    )
    env = {**os.environ, "CRASH_TEST_SECRET": secret}
    yield config, port, cli_token(config, env), env, receiver
    receiver.server.shutdown()


def serve(config, port, env, fault: str | None = None) -> subprocess.Popen:
    environment = {**env, "SCIMHOST_FAULT": fault} if fault else env
    process = subprocess.Popen(
        scimhost("-c", str(config), "serve"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=environment
    )
    wait_until_up(port, process)
    return process


def create_user(port: int, token: str, name: str) -> int | None:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/source/scim/demo/v2/Users",
        data=json.dumps({"userName": name}).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except (urllib.error.URLError, ConnectionError):
        return None  # the server died before answering


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    process.communicate(timeout=30)


def test_killed_right_after_the_commit_the_event_goes_out_after_restart(setup):
    config, port, token, env, receiver = setup
    crashing = serve(config, port, env, fault="after_commit")
    assert create_user(port, token, "committed") is None  # no answer: the process died
    assert crashing.wait(timeout=10) == -signal.SIGKILL
    assert receiver.received == []
    restarted = serve(config, port, env)
    try:
        receiver.wait_for(1)
        [(message_id, payload)] = receiver.received
        assert payload["type"] == "user.created" and payload["data"]["resource"]["userName"] == "committed"
        assert message_id == payload["data"]["id"]
    finally:
        stop(restarted)


def test_killed_after_the_receivers_answer_the_event_goes_out_again_with_the_same_id(setup):
    config, port, token, env, receiver = setup
    crashing = serve(config, port, env, fault="after_send")
    create_user(port, token, "delivered")  # answered 201 (or cut off if the dispatcher is faster)
    receiver.wait_for(1)
    assert crashing.wait(timeout=10) == -signal.SIGKILL
    restarted = serve(config, port, env)
    try:
        receiver.wait_for(2)
        time.sleep(0.5)
        ids = [message_id for message_id, _ in receiver.received]
        assert len(ids) == 2 and ids[0] == ids[1]  # at least once: consumers dedup on the id
    finally:
        stop(restarted)
