"""Server basics: health checks, body limit, and `scimhost serve` as a real process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from helpers import bearer, make_config
from serving import admin_table, cli_token, free_port, get, post, scimhost, wait_until_up, write_config

from scimhost.app import create_app
from scimhost.http.keys import HOST


async def test_health_endpoints(client):
    response = await client.get("/healthz")
    assert response.status == 200 and (await response.json())["status"] == "ok"
    response = await client.get("/readyz")
    assert response.status == 200 and (await response.json())["status"] == "ok"


async def test_readyz_reports_unreachable_storage(client):
    await client.app[HOST].storage.close()
    response = await client.get("/readyz")
    assert response.status == 503
    assert (await response.json())["status"] == "unavailable"


async def test_declared_body_over_the_limit_is_413(aiohttp_client, storage_url, issue_token):
    app = create_app(make_config(storage_url, max_body_bytes=2048))
    client = await aiohttp_client(app)
    token = await app[HOST].issue_token("demo")
    response = await client.post("/source/scim/demo/v2/Users", data=b"{" + b" " * 4096 + b"}", headers=bearer(token))
    assert response.status == 413
    body = await response.json(content_type=None)
    assert body["status"] == "413" and "2048" in body["detail"]
    # The limit is checked before anything else, without reading the body, even unauthenticated.
    response = await client.post("/source/scim/demo/v2/Users", data=b"x" * 4096)
    assert response.status == 413


async def test_errors_outside_scim_paths_are_json_that_says_where_the_scim_endpoints_are(client):
    response = await client.get("/nothing-here")
    assert response.status == 404
    assert response.headers["Content-Type"].startswith("application/json")  # not a SCIM error: no SCIM path
    body = await response.json()
    assert body["status"] == 404 and "/source/scim/<source slug>/v2/" in body["hint"]
    assert response.headers["X-Request-Id"]
    wrong_method = await client.post("/healthz")
    assert wrong_method.status == 405 and "GET" in wrong_method.headers["Allow"]
    assert (await wrong_method.json())["status"] == 405


async def test_a_source_path_without_its_version_says_where_the_base_url_is(client, issue_token):
    token = await issue_token("demo")
    response = await client.get("/source/scim/demo/Users", headers={"Authorization": f"Bearer {token}"})
    body = await response.json(content_type=None)
    assert response.status == 404 and "/source/scim/demo/v2" in body["detail"]
    unknown = await (await client.get("/source/scim/nosuch/Users")).json(content_type=None)
    assert unknown["detail"] == "No such source"  # a slug that is not configured is not echoed


# --- the real process ------------------------------------------------------------------------------


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_answers_logs_and_stops_on_sigterm(tmp_path, storage_url, workers):
    port = free_port()
    config = write_config(tmp_path, storage_url, port)
    token = cli_token(config)
    process = subprocess.Popen(
        scimhost("-c", str(config), "serve", "--workers", str(workers)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        wait_until_up(port, process)
        base = f"http://127.0.0.1:{port}/source/scim/demo/v2"
        for _ in range(6):  # several requests, so that with 2 workers both are likely reached
            status, body = get(base + "/ServiceProviderConfig", token)
            assert status == 200 and body["meta"]["resourceType"] == "ServiceProviderConfig"
        status, body = get(base + "/ServiceProviderConfig", "wrong")
        assert status == 401 and body["status"] == "401"
        # Concurrent writes, spread over the workers, all land once.
        with ThreadPoolExecutor(max_workers=8) as pool:
            statuses = list(pool.map(lambda i: post(base + "/Users", token, {"userName": f"user{i}"}), range(24)))
        assert statuses == [201] * 24
        status, body = get(base + "/Users?count=100", token)
        assert body["totalResults"] == 24
        user_ids = [u["id"] for u in body["Resources"]]
        # Concurrent member PATCHes of one group, across the workers, lose nothing.
        assert post(base + "/Groups", token, {"displayName": "all"}) == 201
        status, found = get(base + "/Groups?filter=displayName%20eq%20%22all%22", token)
        group_id = found["Resources"][0]["id"]

        def add(user_id: str) -> int:
            body = {
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "add", "path": "members", "value": [{"value": user_id}]}],
            }
            return post(base + f"/Groups/{group_id}", token, body, method="PATCH")

        with ThreadPoolExecutor(max_workers=8) as pool:
            assert list(pool.map(add, user_ids)) == [204] * 24
        status, group = get(base + f"/Groups/{group_id}", token)
        assert sorted(m["value"] for m in group["members"]) == sorted(user_ids)
        # Concurrent creates of one userName: exactly one wins.
        with ThreadPoolExecutor(max_workers=8) as pool:
            statuses = sorted(pool.map(lambda i: post(base + "/Users", token, {"userName": "same"}), range(8)))
        assert statuses == [201] + [409] * 7
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err.decode()
    text = err.decode()
    assert f"source demo: http://127.0.0.1:{port}/source/scim/demo/v2 token: issued" in text
    # No [admin] token_env on loopback: one warning line, from the parent alone.
    assert text.count("open to every local user") == 1
    access = [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]
    statuses = sorted(e["status"] for e in access if e["path"].endswith("ServiceProviderConfig"))
    assert statuses == [200] * 6 + [401]
    assert {e["source"] for e in access if e["path"].endswith("ServiceProviderConfig") and e["status"] == 200} == {
        "demo"
    }


def test_serve_refuses_an_admin_listener_open_to_the_network_without_a_token(tmp_path):
    port, admin_port = free_port(), free_port()
    path = tmp_path / "scimhost.toml"
    base = f'[server]\nport = {port}\n[[sources]]\nslug = "demo"\nname = "Demo"\n'
    path.write_text(base + f'[admin]\nlisten = "0.0.0.0:{admin_port}"\n')
    for command in ("serve", "check"):
        refused = subprocess.run(scimhost("-c", str(path), command), capture_output=True, timeout=60)
        assert refused.returncode != 0, command
        assert b"set [admin] token_env" in refused.stderr and b"allow_anonymous" in refused.stderr
    # Said explicitly, it starts (and says so); with a token, nothing to say.
    path.write_text(base + f'[admin]\nlisten = "0.0.0.0:{admin_port}"\nallow_anonymous = true\n')
    subprocess.run(scimhost("-c", str(path), "migrate"), capture_output=True, check=True, timeout=60)
    checked = subprocess.run(scimhost("-c", str(path), "check"), capture_output=True, timeout=60)
    assert checked.returncode == 0 and b"open to anyone who reaches it" in checked.stderr
    path.write_text(base + f'[admin]\nlisten = "0.0.0.0:{admin_port}"\ntoken_env = "T_ADMIN"\n')
    env = {**os.environ, "T_ADMIN": "secret-admin-token"}
    checked = subprocess.run(scimhost("-c", str(path), "check"), capture_output=True, timeout=60, env=env)
    assert checked.returncode == 0 and b"admin listener" not in checked.stderr


def test_sigterm_drains_in_flight_requests(tmp_path):
    """A write that is still being processed when SIGTERM arrives completes before exit."""
    port = free_port()
    config = tmp_path / "scimhost.toml"
    config.write_text(
        f"[server]\nport = {port}\n[mappings]\nworkers = 1\ntimeout_seconds = 10.0\nmax_iterations = 1000000000\n"
        f'[storage.tortoise]\nurl = "sqlite://./db.sqlite3"\n'
        '[[sources]]\nslug = "demo"\nname = "Demo"\n'
        '[[sources.mappings]]\nname = "slow"\nexpression = "{\'n\': sum(range(60000000))}"\n' + admin_table()
    )
    token = cli_token(config)
    process = subprocess.Popen(scimhost("-c", str(config), "serve"), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_until_up(port, process)
        base = f"http://127.0.0.1:{port}/source/scim/demo/v2"
        with ThreadPoolExecutor(max_workers=1) as pool:
            started = time.monotonic()
            write = pool.submit(post, base + "/Users", token, {"userName": "draining"})
            time.sleep(0.15)
            process.send_signal(signal.SIGTERM)
            assert write.result(timeout=30) == 201
        assert time.monotonic() - started > 0.15
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err.decode()


def test_serve_port_option_reaches_the_urls_the_host_prints_and_returns(tmp_path, storage_url):
    """`serve --port P` with another port in the config: Location, meta.location and the
    printed base URL name P (an explicit public_url would win)."""
    config = write_config(tmp_path, storage_url, free_port())
    token = cli_token(config)
    port = free_port()
    process = subprocess.Popen(
        scimhost("-c", str(config), "serve", "--port", str(port)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        wait_until_up(port, process)
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/source/scim/demo/v2/Users",
            data=json.dumps({"userName": "ported"}).encode(),
            method="POST",
            headers={**bearer(token), "Content-Type": "application/scim+json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            location = response.headers["Location"]
            body = json.loads(response.read())
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    base = f"http://127.0.0.1:{port}/source/scim/demo/v2"
    assert location == body["meta"]["location"] == f"{base}/Users/{body['id']}"
    assert f"source demo: {base} token" in err.decode()


def unit_lines(key: str) -> list[str]:
    """The `key=` lines of docs/deployment.md's systemd unit, in order."""
    text = (Path(__file__).resolve().parent.parent / "docs" / "deployment.md").read_text()
    unit = text.split("# /etc/systemd/system/scimhost.service", 1)[1].split("```", 1)[0]
    return [line.split("=", 1)[1] for line in unit.splitlines() if line.startswith(f"{key}=")]


def test_the_documented_systemd_unit_starts_on_a_fresh_sqlite_install(tmp_path):
    """Its ExecStartPre and ExecStart lines, run as written (the paths swapped for this test's)
    in its WorkingDirectory, on a config whose store does not exist yet."""
    port = free_port()
    config = tmp_path / "etc" / "scimhost.toml"
    config.parent.mkdir()
    config.write_text(f'[server]\nport = {port}\n[[sources]]\nslug = "demo"\nname = "Demo"\n' + admin_table())
    workdir = tmp_path / "var"
    workdir.mkdir()

    def command(line: str) -> list[str]:
        words = line.replace("/etc/scimhost/scimhost.toml", str(config)).split()
        assert words[0] == "/opt/scimhost/.venv/bin/scimhost"
        return scimhost(*words[1:])

    assert unit_lines("WorkingDirectory") == ["/var/lib/scimhost"]
    pre = unit_lines("ExecStartPre")
    assert pre, "the unit checks before it serves"
    for line in pre:
        result = subprocess.run(command(line), cwd=workdir, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, f"{line}: {result.stderr}"
    [start] = unit_lines("ExecStart")
    process = subprocess.Popen(command(start), cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_until_up(port, process)
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)
    assert process.returncode == 0
