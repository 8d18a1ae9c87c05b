"""The `scimhost` command's contract: check, plugins, sources list, sources token."""

from __future__ import annotations

import asyncio
import json

from conftest import bearer

from scimhost.app import create_app
from scimhost.cli import main


def write_config(tmp_path, storage_url: str, extra: str = "") -> str:
    path = tmp_path / "scimhost.toml"
    path.write_text(
        f'[server]\npublic_url = "https://idp-facing.example"\n'
        f'[storage.tortoise]\nurl = "{storage_url}"\n'
        '[[sources]]\nslug = "demo"\nname = "Demo source"\n'
        '[[sources]]\nslug = "hr"\nname = "HR"\n' + extra
    )
    return str(path)


async def test_token_printed_by_the_cli_opens_the_source(tmp_path, storage_url, capsys, aiohttp_client):
    config = write_config(tmp_path, storage_url)
    assert await asyncio.to_thread(main, ["-c", config, "sources", "token", "demo", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert set(printed) == {"slug", "name", "base_url", "token"}
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


def test_check_reports_config_plugins_storage(tmp_path, storage_url, capsys):
    config = write_config(tmp_path, storage_url)
    assert main(["-c", config, "check"]) == 0
    out = capsys.readouterr().out
    assert "config: ok" in out and "plugins: " in out
    loaded = out.split("plugins: ", 1)[1].split("\n", 1)[0]
    assert {"bearer", "tortoise", "errors", "core_schemas", "restrictedpython"} <= set(loaded.split(": ", 1)[1].split(", "))
    assert "storage: ok" in out and "migrations pending" in out
    assert "source demo: https://idp-facing.example/source/scim/demo/v2" in out


def test_check_fails_on_unreachable_storage(tmp_path, capsys):
    config = write_config(tmp_path, "postgres://postgres@127.0.0.1:1/test")
    assert main(["-c", config, "check"]) == 1
    assert "storage" in capsys.readouterr().err


def test_plugins_lists_builtins(capsys):
    assert main(["plugins", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    names = {p["name"]: p for p in report["plugins"]}
    assert names["bearer"]["distribution"] == "scimhost"
    assert "register_storage_backends" in names["tortoise"]["hooks"]
    assert report["failures"] == [] and report["problems"] == []
