"""The `scimhost` command's contract: check, plugins, sources list, sources token."""

from __future__ import annotations

import asyncio
import json
import re
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC

from helpers import bearer

from scimhost.app import create_app
from scimhost.cli import main
from scimhost.host import load_host


def write_config(tmp_path, storage_url: str, extra: str = "", *, migrate: bool = True) -> str:
    """A config with sources demo and hr; its database made with `scimhost migrate` unless not."""
    path = tmp_path / "scimhost.toml"
    path.write_text(
        f'[server]\npublic_url = "https://idp-facing.example"\n'
        f'[storage.tortoise]\nurl = "{storage_url}"\n'
        '[[sources]]\nslug = "demo"\nname = "Demo source"\n'
        '[[sources]]\nslug = "hr"\nname = "HR"\n' + extra
    )
    if migrate:  # in a thread of its own: async tests call this from their event loop
        with ThreadPoolExecutor(1) as thread:
            thread.submit(asyncio.run, migrated(path)).result()
    return str(path)


async def migrated(path) -> None:
    """What `scimhost migrate` does, without its printing."""
    storage = load_host(path, strict=False).storage
    await storage.open(migrate=True)
    await storage.close()


async def test_token_printed_by_the_cli_opens_the_source(tmp_path, storage_url, capsys, aiohttp_client):
    config = write_config(tmp_path, storage_url)
    assert await asyncio.to_thread(main, ["-c", config, "sources", "token", "demo", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert set(printed) == {"slug", "name", "base_url", "token", "previous_token_expires"}
    assert printed["slug"] == "demo" and printed["name"] == "Demo source"
    assert printed["base_url"] == "https://idp-facing.example/source/scim/demo/v2"

    client = await aiohttp_client(create_app(tmp_path / "scimhost.toml"))
    url = "/source/scim/demo/v2/ServiceProviderConfig"
    assert (await client.get(url, headers=bearer(printed["token"]))).status == 200
    assert (await client.get(url.replace("demo", "hr"), headers=bearer(printed["token"]))).status == 401


def test_sources_list_shows_token_state(tmp_path, storage_url, capsys):
    config = write_config(tmp_path, storage_url)
    assert main(["-c", config, "sources", "token", "hr"]) == 0
    text = capsys.readouterr().out
    assert "Token:    scimhost_" in text and "shown only this once" in text
    assert main(["sources", "list", "--json", "-c", config]) == 0  # -c after the command works too
    rows = {row["slug"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["demo"]["token"] == "none" and rows["hr"]["token"] == "issued"
    assert rows["hr"]["service_account"] == "scimhost-source-hr"
    assert rows["demo"]["base_url"] == "https://idp-facing.example/source/scim/demo/v2"
    assert main(["-c", config, "sources", "list"]) == 0
    assert "hr" in capsys.readouterr().out


def test_token_for_unknown_or_env_source_is_refused(tmp_path, storage_url, capsys):
    extra = '[[sources]]\nslug = "fromenv"\nname = "Env"\ntoken_env = "FROMENV_TOKEN"\n'
    config = write_config(tmp_path, storage_url, extra)
    assert main(["-c", config, "sources", "token", "nosuch"]) == 1
    assert "no source 'nosuch'" in capsys.readouterr().err
    assert main(["-c", config, "sources", "token", "fromenv"]) == 1
    assert "$FROMENV_TOKEN" in capsys.readouterr().err


def test_check_reports_config_plugins_storage(tmp_path, empty_storage_url, capsys):
    config = write_config(tmp_path, empty_storage_url, migrate=False)
    if empty_storage_url.startswith("sqlite"):
        assert main(["-c", config, "check"]) == 1
        assert f"does not exist: `scimhost -c {config} migrate` creates it" in capsys.readouterr().err
        assert sorted(p.name for p in tmp_path.iterdir()) == ["scimhost.toml"]  # check created nothing
        assert main(["-c", config, "migrate"]) == 0
        main(["-c", config, "sources", "list"])  # a store made by migrate: check has nothing pending
    else:
        assert main(["-c", config, "check"]) == 0  # an empty PostgreSQL schema: every migration pending
        out = capsys.readouterr().out
        assert f"migrations pending (run `scimhost -c {config} migrate`" in out
        assert "  pending migration: scimhost.0001_initial" in out  # each one named, not only counted
        assert main(["-c", config, "migrate"]) == 0
    capsys.readouterr()
    assert main(["-c", config, "check"]) == 0
    out = capsys.readouterr().out
    assert "config: ok" in out and "plugins: " in out
    loaded = out.split("plugins: ", 1)[1].split("\n", 1)[0]
    assert {"bearer", "tortoise", "errors", "core_schemas", "restrictedpython"} <= set(
        loaded.split(": ", 1)[1].split(", ")
    )
    assert "storage: ok" in out and "pending" not in out
    assert "source demo: https://idp-facing.example/source/scim/demo/v2" in out


def test_check_fails_on_unreachable_storage(tmp_path, capsys):
    config = write_config(tmp_path, "postgres://postgres@127.0.0.1:1/test", migrate=False)
    assert main(["-c", config, "check"]) == 1
    assert "storage" in capsys.readouterr().err


def test_plugins_lists_builtins(capsys):
    assert main(["plugins", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    names = {p["name"]: p for p in report["plugins"]}
    assert names["bearer"]["distribution"] == "scimhost"
    assert "register_storage_backends" in names["tortoise"]["hooks"]
    assert report["failures"] == [] and report["problems"] == []


def test_migrate_applies_pending_migrations_once_and_reports_them(tmp_path, empty_storage_url, capsys):
    config = write_config(tmp_path, empty_storage_url, migrate=False)
    assert main(["-c", config, "migrate"]) == 0
    out = capsys.readouterr().out
    assert "applied scimhost.0001_initial" in out and "applied scimhost.0009_token_grace_and_activity" in out
    assert main(["-c", config, "migrate"]) == 0
    assert "nothing to migrate" in capsys.readouterr().out


def test_admin_commands_refuse_a_store_that_was_never_migrated(tmp_path, empty_storage_url, capsys):
    config = write_config(tmp_path, empty_storage_url, migrate=False)
    for command in (
        ["sources", "list"],
        ["sources", "token", "demo"],
        ["events", "list"],
        ["deliveries", "status"],
        ["records", "list", "demo", "User"],
    ):
        assert main(["-c", config, *command]) == 1, command
        err = capsys.readouterr().err
        assert f"scimhost -c {config} migrate" in err, (command, err)
    if empty_storage_url.startswith("sqlite"):
        assert sorted(p.name for p in tmp_path.iterdir()) == ["scimhost.toml"]


async def test_a_rotation_with_grace_keeps_the_previous_token_until_it_ends(
    tmp_path, storage_url, capsys, aiohttp_client
):
    config = write_config(tmp_path, storage_url, "[bearer]\ncache_seconds = 0\n")
    assert await asyncio.to_thread(main, ["-c", config, "sources", "token", "demo", "--json"]) == 0
    old = json.loads(capsys.readouterr().out)["token"]
    assert await asyncio.to_thread(main, ["-c", config, "sources", "token", "demo", "--grace", "1h", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    new, expires = printed["token"], printed["previous_token_expires"]
    assert expires is not None

    client = await aiohttp_client(create_app(tmp_path / "scimhost.toml"))
    url = "/source/scim/demo/v2/ServiceProviderConfig"
    assert (await client.get(url, headers=bearer(old))).status == 200
    assert (await client.get(url, headers=bearer(new))).status == 200
    assert (await client.get(url.replace("demo", "hr"), headers=bearer(old))).status == 401

    assert await asyncio.to_thread(main, ["-c", config, "sources", "list", "--json"]) == 0
    rows = {row["slug"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["demo"]["previous_token_expires"] == expires and rows["hr"]["previous_token_expires"] is None
    assert await asyncio.to_thread(main, ["-c", config, "sources", "list"]) == 0
    # Times read as on the admin pages: one form everywhere.
    assert re.search(r"previous token works until \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", capsys.readouterr().out)

    # A rotation without grace ends the previous token (and the one before it) at once.
    assert await asyncio.to_thread(main, ["-c", config, "sources", "token", "demo", "--json"]) == 0
    newest = json.loads(capsys.readouterr().out)["token"]
    for gone in (old, new):
        assert (await client.get(url, headers=bearer(gone))).status == 401
    assert (await client.get(url, headers=bearer(newest))).status == 200


async def test_the_grace_period_ends(tmp_path, storage_url, aiohttp_client):
    from datetime import datetime, timedelta

    from scimhost.http.keys import HOST

    client = await aiohttp_client(
        create_app(
            {
                "server": {"public_url": "https://x.test"},
                "storage": {"tortoise": {"url": storage_url}},
                "sources": [{"slug": "demo", "name": "Demo"}],
                "bearer": {"cache_seconds": 0},
            }
        )
    )
    host = client.app[HOST]
    old = await host.issue_token("demo")
    await host.issue_token("demo", grace_until=datetime.now(UTC) - timedelta(seconds=1))
    url = "/source/scim/demo/v2/ServiceProviderConfig"
    assert (await client.get(url, headers=bearer(old))).status == 401


async def test_revoke_ends_every_token_at_once(tmp_path, storage_url, capsys, aiohttp_client):
    config = write_config(tmp_path, storage_url, "[bearer]\ncache_seconds = 0\n")
    assert await asyncio.to_thread(main, ["-c", config, "sources", "token", "demo", "--json"]) == 0
    old = json.loads(capsys.readouterr().out)["token"]
    assert await asyncio.to_thread(main, ["-c", config, "sources", "token", "demo", "--grace", "2d", "--json"]) == 0
    new = json.loads(capsys.readouterr().out)["token"]
    assert await asyncio.to_thread(main, ["-c", config, "sources", "revoke", "demo"]) == 0
    assert "revoked" in capsys.readouterr().out
    client = await aiohttp_client(create_app(tmp_path / "scimhost.toml"))
    url = "/source/scim/demo/v2/ServiceProviderConfig"
    for token in (old, new):
        assert (await client.get(url, headers=bearer(token))).status == 401
    assert await asyncio.to_thread(main, ["-c", config, "sources", "list", "--json"]) == 0
    rows = {row["slug"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["demo"]["token"] == "none" and rows["demo"]["previous_token_expires"] is None


def test_grace_must_be_a_duration(tmp_path, storage_url, capsys):
    import pytest

    config = write_config(tmp_path, storage_url)
    for bad in ("soon", "1w", "31d"):
        with pytest.raises(SystemExit) as exit_info:
            main(["-c", config, "sources", "token", "demo", "--grace", bad])
        assert exit_info.value.code == 2
        assert "--grace" in capsys.readouterr().err


def test_hints_name_the_config_file_and_a_command_without_one_says_so(tmp_path, storage_url, capsys, monkeypatch):
    config = write_config(tmp_path, storage_url)
    assert main(["-c", config, "sources", "revoke", "demo"]) == 0
    hint = capsys.readouterr().out.split("`")[1]
    assert hint == f"scimhost -c {config} sources token demo"
    assert main(hint.split()[1:]) == 0  # the hint, copied, works
    assert "Token:    scimhost_" in capsys.readouterr().out

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SCIMHOST_CONFIG", raising=False)
    for command in (["sources", "token", "demo"], ["records", "list", "demo", "User"], ["webhooks", "test", "hr"]):
        assert main(command) == 1, command
        err = capsys.readouterr().err
        assert "no config file given: use -c FILE or $SCIMHOST_CONFIG" in err and "(sources: none)" not in err
    main(["sources", "list"])
    assert "warning: no config file given" in capsys.readouterr().err


def test_a_postgresql_database_that_does_not_exist_is_named_with_how_to_create_it(tmp_path, postgres_url, capsys):
    server = postgres_url.rsplit("/", 1)[0]
    config = write_config(tmp_path, f"{server}/scimhost_no_such_db", migrate=False)
    for command in (["check"], ["sources", "list"], ["serve", "--port", "0"]):
        assert main(["-c", config, *command]) == 1, command
        err = capsys.readouterr().err
        assert "the database 'scimhost_no_such_db' does not exist on that server; create it (`createdb -h" in err
        assert f"then run `scimhost -c {config} migrate`" in err and "Traceback" not in err


def test_an_unknown_log_level_is_a_usage_error_naming_the_levels(tmp_path, capsys):
    import pytest

    for argv in (["--log-level", "LOUD", "check"], ["check", "--log-level", "loud"]):
        with pytest.raises(SystemExit) as exited:
            main(argv)
        assert exited.value.code == 2
        err = capsys.readouterr().err
        assert "is not a log level: use DEBUG, INFO, WARNING, ERROR" in err and "Traceback" not in err
    path = write_config(tmp_path, f"sqlite://{tmp_path}/db.sqlite3")
    assert main(["-c", path, "check", "--log-level", "warning"]) == 0  # any case


def test_the_readme_command_table_lists_every_command():
    import argparse
    import re
    from pathlib import Path

    from scimhost.cli import _parser

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    rows = [m.group(1) for m in re.finditer(r"^\| `scimhost ([^`]*)` \|", readme, re.M)]
    cells = [set(re.split(r"[\s\\|]+", row)) for row in rows]

    def subcommands(parser):
        [action] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        return action.choices

    for name, command in subcommands(_parser()).items():
        inner = [a for a in command._actions if isinstance(a, argparse._SubParsersAction)]
        for sub in subcommands(command) if inner else [None]:
            words = {name} | ({sub} if sub else set())
            assert any(words <= cell for cell in cells), f"README's command table lacks `scimhost {name} {sub or ''}`"
