"""Nothing acknowledged is lost when the users live in slapd and the events in the built-in
store: a `scimhost serve` process killed (SIGKILL) between the directory write and its event
records the event when started again, and one killed before the directory write records none."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import ldap
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tests"))
from serving import admin_table, cli_token, free_port, scimhost, wait_until_up  # noqa: E402

TIMEOUT = 1.0  # [storage] intent_timeout_seconds: recovery decides older intents


@pytest.fixture
def database() -> str:
    """The outbox on SQLite only: the intent protocol is the same on PostgreSQL, which the
    kit's composition tests cover (tests/test_composition.py)."""
    return "sqlite"


def write_config(tmp_path, ldap_settings, storage_url, port):
    config = tmp_path / "scimhost.toml"
    config.write_text(
        f'[server]\nport = {port}\n[storage]\nbackend = "ldap"\nintent_timeout_seconds = {TIMEOUT}\n'
        f'[storage.ldap]\nurl = "{ldap_settings.url}"\nbind_dn = "{ldap_settings.bind_dn}"\n'
        f'bind_password_env = "{ldap_settings.bind_password_env}"\nbase_dn = "{ldap_settings.base_dn}"\n'
        f'[storage.tortoise]\nurl = "{storage_url}"\n[[sources]]\nslug = "demo"\nname = "Demo"\n' + admin_table()
    )
    return config


def serve(config, port, fault=None):
    env = {**_env(), **({"SCIMHOST_FAULT": fault} if fault else {})}
    process = subprocess.Popen(
        scimhost("-c", str(config), "serve"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env
    )
    wait_until_up(port, process)
    return process


def _env():
    return dict(os.environ)


def request(port, token, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/source/scim/demo/v2{path}",
        data=data,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"},
        method=method,
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")
    except (urllib.error.URLError, ConnectionError):
        return None, None  # the server died before answering


def events(config):
    listed = subprocess.run(
        scimhost("-c", str(config), "events", "list", "--source", "demo", "--json"),
        capture_output=True,
        text=True,
        env=_env(),
    )
    assert listed.returncode == 0, listed.stderr
    return [json.loads(line) for line in listed.stdout.splitlines() if line.strip()]


def entries(ldap_settings, filterstr):
    raw = ldap.initialize(ldap_settings.url)
    raw.simple_bind_s(ldap_settings.bind_dn, "secret")
    return raw.search_s(ldap_settings.base_dn, ldap.SCOPE_SUBTREE, filterstr, ["uid", "title"])


def stop(process):
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    process.communicate(timeout=30)


def test_killed_between_the_directory_write_and_its_event_the_event_is_recorded_at_restart(
    tmp_path, ldap_settings, storage_url
):
    port = free_port()
    config = write_config(tmp_path, ldap_settings, storage_url, port)
    token = cli_token(config, _env())
    crashing = serve(config, port, fault="after_resource_write")
    assert request(port, token, "POST", "/Users", {"userName": "kept@example.com"}) == (None, None)
    assert crashing.wait(timeout=10) == -signal.SIGKILL
    [(dn, _)] = entries(ldap_settings, "(uid=kept@example.com)")  # in the directory, no event yet
    assert events(config) == []
    time.sleep(TIMEOUT)
    restarted = serve(config, port)
    try:
        deadline = time.monotonic() + 10
        while not events(config):
            assert time.monotonic() < deadline, "recovery recorded no event"
            time.sleep(0.2)
        [event] = events(config)
        assert event["action"] == "create" and event["version"] == 1
        status, found = request(port, token, "GET", "/Users?filter=userName%20eq%20%22kept%40example.com%22")
        assert status == 200 and [u["id"] for u in found["Resources"]] == [event["resourceId"]]
    finally:
        stop(restarted)


def test_killed_before_the_directory_write_no_event_is_recorded(tmp_path, ldap_settings, storage_url):
    port = free_port()
    config = write_config(tmp_path, ldap_settings, storage_url, port)
    token = cli_token(config, _env())
    running = serve(config, port)
    status, user = request(port, token, "POST", "/Users", {"userName": "u@example.com"})
    assert status == 201
    stop(running)
    crashing = serve(config, port, fault="after_intent")
    patch = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "title", "value": "never"}],
    }
    assert request(port, token, "PATCH", f"/Users/{user['id']}", patch) == (None, None)
    assert crashing.wait(timeout=10) == -signal.SIGKILL
    time.sleep(TIMEOUT)
    restarted = serve(config, port)
    try:
        time.sleep(1.0)
        assert [e["action"] for e in events(config)] == ["create"]
        [(_, attrs)] = entries(ldap_settings, "(uid=u@example.com)")
        assert "title" not in attrs
        # The resource is free again: the intent was decided (abandoned), not left holding it.
        assert request(port, token, "PATCH", f"/Users/{user['id']}", patch)[0] == 200
        assert [e["action"] for e in events(config)] == ["create", "patch"]
    finally:
        stop(restarted)
