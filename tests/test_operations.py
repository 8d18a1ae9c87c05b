"""What an operator runs: serve's start-up (ports, migrations), the admin listener of a real
process with several workers, [logging], and removing a source's data."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import urllib.error
import urllib.request
from datetime import UTC

import pytest
from helpers import ScimClient
from serving import admin_table, cli_token, free_port, post, scimhost, wait_until_up, write_config

from scimhost.app import create_app
from scimhost.cli import main
from scimhost.http.keys import HOST


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(scimhost(*args), capture_output=True, text=True, timeout=60, env=env)


def test_a_port_in_use_is_one_line_before_the_store_is_touched(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = write_config(tmp_path, f"sqlite://{tmp_path}/db.sqlite3", port)
        for workers in ("1", "2"):
            result = run("-c", str(config), "serve", "--workers", workers)
            assert result.returncode == 1
            assert result.stderr.strip().splitlines()[-1] == (
                f"error: cannot listen on 127.0.0.1:{port}: Address already in use"
            ), result.stderr
            assert "Traceback" not in result.stderr
        # The admin listener's address is checked the same way.
        config = write_config(tmp_path, f"sqlite://{tmp_path}/db.sqlite3", free_port(), admin_port=port)
        result = run("-c", str(config), "serve")
        assert result.returncode == 1 and f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert not (tmp_path / "db.sqlite3").exists()  # nothing was opened, so nothing was created


def test_an_admin_token_variable_that_is_not_set_stops_serve_in_one_line(tmp_path):
    config = write_config(tmp_path, f"sqlite://{tmp_path}/db.sqlite3", free_port())
    config.write_text(config.read_text() + 'token_env = "SCIMHOST_TEST_UNSET_ADMIN_TOKEN"\n')
    env = {k: v for k, v in os.environ.items() if k != "SCIMHOST_TEST_UNSET_ADMIN_TOKEN"}
    result = run("-c", str(config), "serve", env=env)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "admin.token_env: $SCIMHOST_TEST_UNSET_ADMIN_TOKEN is not set" in result.stderr
    assert not (tmp_path / "db.sqlite3").exists()


def test_serve_with_no_migrate_refuses_pending_migrations(tmp_path):
    config = write_config(tmp_path, f"sqlite://{tmp_path}/db.sqlite3", free_port())
    result = run("-c", str(config), "serve", "--no-migrate")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"`scimhost -c {config} migrate` creates it" in result.stderr
    assert not (tmp_path / "db.sqlite3").exists()


def test_workers_report_one_set_of_metrics_and_the_admin_page_on_their_own_address(tmp_path, storage_url):
    port, admin_port = free_port(), free_port()
    config = write_config(tmp_path, storage_url, port, admin_port)
    token = cli_token(config)
    process = subprocess.Popen(
        scimhost("-c", str(config), "serve", "--workers", "2"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        wait_until_up(port, process)
        base = f"http://127.0.0.1:{port}/source/scim/demo/v2"
        for i in range(20):  # new connections: both workers take some
            body = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": f"user{i}"}
            assert post(base + "/Users", token, body) == 201
        totals = set()
        for _ in range(6):  # whichever worker answers, the sum over both
            with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/metrics", timeout=5) as response:
                text = response.read().decode()
            totals.add(
                _sample(text, 'scimhost_resource_writes_total{action="create",resource_type="User",source="demo"}')
            )
        assert totals == {20.0}
        with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/api/overview", timeout=5) as response:
            overview = json.loads(response.read())
        assert overview["sources"][0]["counts"]["User"] == 20
        # The SCIM port does not serve the admin pages, nor the admin port SCIM.
        for url in (f"http://127.0.0.1:{port}/metrics", f"http://127.0.0.1:{admin_port}/source/scim/demo/v2/Users"):
            try:
                urllib.request.urlopen(url, timeout=5)
                raise AssertionError(f"{url} answered")
            except urllib.error.HTTPError as exc:
                assert exc.code in (401, 404)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def _sample(text: str, series: str) -> float:
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_logging_json_and_access_lines_without_filter_values(tmp_path):
    port = free_port()
    config = tmp_path / "scimhost.toml"
    config.write_text(
        f'[server]\nport = {port}\n[storage.tortoise]\nurl = "sqlite://./db.sqlite3"\n'
        '[logging]\nformat = "json"\n[[sources]]\nslug = "demo"\nname = "Demo"\n' + admin_table()
    )
    token = cli_token(config)
    process = subprocess.Popen(
        scimhost("-c", str(config), "serve"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_until_up(port, process)
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/source/scim/demo/v2/Users?filter="
            + urllib.parse.quote('userName eq "jane@example.com" and emails[value co "secret"]'),
            headers={"Authorization": f"Bearer {token}"},
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            listed_id = response.headers["X-Request-Id"]
        create = urllib.request.Request(
            f"http://127.0.0.1:{port}/source/scim/demo/v2/Users",
            data=json.dumps({"userName": "bjensen"}).encode(),
            headers={
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/scim+json",
                "X-Request-Id": "r-42",
            },
        )
        with urllib.request.urlopen(create, timeout=5) as response:
            assert response.headers["X-Request-Id"] == "r-42"  # the client's own id, echoed
        unauthorized = urllib.request.Request(f"http://127.0.0.1:{port}/source/scim/demo/v2/Groups")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(unauthorized, timeout=5)
        assert refused.value.code == 401
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    messages = [json.loads(line) for line in err.splitlines() if line.strip()]
    assert messages and all({"time", "level", "logger", "message"} <= set(m) for m in messages)
    access = [json.loads(line) for line in out.splitlines() if line.strip()]
    # Health probes are not logged.
    assert [a["path"] for a in access] == ["/source/scim/demo/v2/Users"] * 2 + ["/source/scim/demo/v2/Groups"]
    assert access[0]["filter_attributes"] == ["userName", "emails.value"] and "query" not in access[0]
    assert "jane@example.com" not in out + err and "secret" not in out
    # Each line says when, which request (the id the response carried) and the source its URL
    # names, also when the request did not authenticate.
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", a["time"]) for a in access)
    assert [a["request_id"] for a in access[:2]] == [listed_id, "r-42"]
    assert (access[2]["status"], access[2]["source"]) == (401, "demo") and access[2]["request_id"]
    listed = subprocess.run(
        scimhost("-c", str(config), "events", "list", "--json"), capture_output=True, text=True, check=True
    )
    [event] = [json.loads(line) for line in listed.stdout.splitlines()]
    assert event["actor"]["request_id"] == "r-42"  # the event names the request the log shows


async def test_sources_remove_purges_a_removed_source_and_nothing_else(tmp_path, storage_url, capsys, aiohttp_client):
    import asyncio

    path = tmp_path / "scimhost.toml"

    def write(slugs):
        path.write_text(
            f'[storage.tortoise]\nurl = "{storage_url}"\n'
            + "".join(f'[[sources]]\nslug = "{slug}"\nname = "{slug}"\n' for slug in slugs)
        )

    write(["gone", "kept"])
    client = await aiohttp_client(create_app(path))
    host = client.app[HOST]
    clients = {slug: ScimClient(client, slug, await host.issue_token(slug)) for slug in ("gone", "kept")}
    for scim in clients.values():  # the same names in both sources
        user = await scim.create_user("bjensen")
        await scim.create_group("Eng", [user["id"]])
    await host.activity.flush(host.storage)
    kept_before = await clients["kept"].json("GET", "/Users")

    config = ["-c", str(path)]
    assert await asyncio.to_thread(main, [*config, "sources", "remove", "gone", "--purge", "--yes"]) == 1
    assert "still configured" in capsys.readouterr().err
    write(["kept"])
    assert await asyncio.to_thread(main, [*config, "sources", "remove", "gone"]) == 2
    assert "--purge --yes" in capsys.readouterr().err
    assert await asyncio.to_thread(main, [*config, "sources", "remove", "gone", "--purge", "--yes", "--json"]) == 0
    deleted = json.loads(capsys.readouterr().out)["deleted"]
    assert deleted["users"] == 1 and deleted["groups"] == 1 and deleted["events"] == 2
    assert deleted["service accounts"] == 1 and deleted["activity rows"] >= 1
    assert await asyncio.to_thread(main, [*config, "sources", "remove", "gone", "--purge", "--yes"]) == 0
    assert "Nothing was stored" in capsys.readouterr().out

    storage = host.storage
    assert await storage.list_events("gone") == [] and await storage.get_record("gone", "User", "x") is None
    assert [a.source for a in await storage.service_accounts()] == ["kept"]
    assert await clients["kept"].json("GET", "/Users") == kept_before
    assert len(await storage.list_events("kept")) == 2
    assert (await storage.source_activity("kept", since=_long_ago())).requests >= 2
    assert (await storage.source_activity("gone", since=_long_ago())).requests == 0


def _long_ago():
    from datetime import datetime

    return datetime(2000, 1, 1, tzinfo=UTC)


def test_a_restarted_serve_counts_from_zero_in_a_metrics_folder_it_was_given(tmp_path):
    port, admin_port = free_port(), free_port()
    config = write_config(tmp_path, f"sqlite://{tmp_path}/db.sqlite3", port, admin_port)
    token = cli_token(config)
    folder = tmp_path / "metrics"
    folder.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(folder)}
    series = 'scimhost_resource_writes_total{action="create",resource_type="User",source="demo"}'
    for run_number, users in ((1, 3), (2, 2)):
        process = subprocess.Popen(
            scimhost("-c", str(config), "serve", "--workers", "2"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
        )
        try:
            wait_until_up(port, process)
            for i in range(users):
                body = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": f"u{run_number}-{i}"}
                assert post(f"http://127.0.0.1:{port}/source/scim/demo/v2/Users", token, body) == 201
            with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/metrics", timeout=5) as response:
                assert _sample(response.read().decode(), series) == users, run_number
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
    assert any(folder.iterdir())  # the folder is the operator's: kept
