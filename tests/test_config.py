"""Configuration: typed settings, and every mistake names its key."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import make_config

from scimhost.cli import main
from scimhost.config import ConfigError
from scimhost.host import load_host

EXAMPLE = Path(__file__).parent.parent / "config.example.toml"


def problems_of(config) -> str:
    with pytest.raises(ConfigError) as excinfo:
        load_host(config)
    return str(excinfo.value)


def base(tmp_path) -> dict:
    return make_config(f"sqlite://{tmp_path}/db.sqlite3")


def test_example_config_is_valid_and_documents_every_core_setting(tmp_path):
    host = load_host(EXAMPLE)
    assert [s.slug for s in host.settings.sources] == ["demo"]
    assert host.settings.server.base_url == "http://127.0.0.1:8080"
    # The relative SQLite path resolves against the config file's folder, not the cwd.
    assert host.storage.describe() == f"SQLite {EXAMPLE.parent.resolve() / 'scimhost.sqlite3'}"
    text = EXAMPLE.read_text()
    from dataclasses import fields

    from scimhost.builtin.bearer import BearerSettings
    from scimhost.builtin.tortoise_storage.backend import TortoiseSettings
    from scimhost.config import (
        EventSettings,
        LimitSettings,
        MappingPoolSettings,
        MappingSettings,
        ServerSettings,
        SourceSettings,
    )

    for cls in (
        ServerSettings,
        LimitSettings,
        MappingPoolSettings,
        MappingSettings,
        TortoiseSettings,
        SourceSettings,
        BearerSettings,
        EventSettings,
    ):
        for f in fields(cls):
            assert f.name in text, f"{cls.__name__}.{f.name} is not documented in config.example.toml"


def test_every_setting_the_example_config_shows_is_its_default(tmp_path):
    """The example says so of itself: loading it gives the settings an empty config gives."""
    example = load_host(EXAMPLE).settings
    config = tmp_path / "scimhost.toml"
    config.write_text('[[sources]]\nslug = "demo"\nname = "Demo"\n')
    defaults = load_host(config).settings
    for table in ("server", "limits", "mappings", "events", "admin", "logging", "plugins"):
        assert getattr(example, table) == getattr(defaults, table), f"[{table}] differs from its defaults"
    assert example.storage.backend == defaults.storage.backend
    assert example.storage.options == defaults.storage.options
    assert example.plugin_tables == defaults.plugin_tables


def test_defaults_without_storage_table_use_embedded_sqlite(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('[[sources]]\nslug = "demo"\nname = "Demo"\n')
    host = load_host(config)
    assert host.settings.storage.backend == "tortoise"
    assert host.storage.describe() == f"SQLite {tmp_path.resolve() / 'scimhost.sqlite3'}"


def test_unknown_key_is_named(tmp_path):
    config = base(tmp_path)
    config["server"]["prot"] = 8080
    assert "server.prot: unknown key" in problems_of(config)


def test_unknown_top_level_table_is_named(tmp_path):
    config = base(tmp_path)
    config["sever"] = {}
    assert "sever: unknown key" in problems_of(config)


@pytest.mark.parametrize(
    "table, key, value, expected",
    [
        ("server", "port", "8080", "server.port: expected an integer, got a string"),
        ("server", "port", True, "server.port: expected an integer, got a boolean"),
        ("server", "port", 70000, "server.port: must be between 0 and 65535"),
        ("server", "access_log", "yes", "server.access_log: expected a boolean"),
        ("server", "public_url", "ftp://x", "server.public_url: must be an absolute http"),
        ("server", "max_body_bytes", 10, "server.max_body_bytes: must be at least 1024"),
        ("plugins", "disable", "bearer", "plugins.disable: expected an array"),
    ],
)
def test_wrong_type_or_value_names_the_key(tmp_path, table, key, value, expected):
    config = base(tmp_path)
    config.setdefault(table, {})[key] = value
    assert expected in problems_of(config)


def test_storage_mistakes_are_named(tmp_path):
    config = base(tmp_path)
    config["storage"]["tortoise"]["url"] = "mysql://x"
    assert "storage.tortoise.url: must start with sqlite:// or postgres://" in problems_of(config)
    config = base(tmp_path)
    config["storage"]["tortoise"]["pool"] = 3
    assert "storage.tortoise.pool: unknown key" in problems_of(config)
    config = base(tmp_path)
    config["storage"]["backend"] = "nosuch"
    # Installed plugins may register more backends (the memory backend in this repository).
    [problem] = [line for line in problems_of(config).splitlines() if "storage.backend:" in line]
    assert "storage.backend: no storage backend named 'nosuch' (registered: " in problem and "tortoise" in problem
    config = base(tmp_path)
    config["storage"]["redis"] = {}
    assert "storage.redis: unknown key" in problems_of(config)


def test_source_mistakes_are_named(tmp_path):
    config = base(tmp_path)
    config["sources"] = [
        {"slug": "demo", "name": "A"},
        {"slug": "demo", "name": "B"},
        {"slug": "Bad Slug!", "name": "C"},
        {"slug": "noname"},
        {"slug": "x", "name": "X", "auth": ["kerberos"]},
        {"slug": "y", "name": "Y", "colour": "red"},
    ]
    text = problems_of(config)
    assert "sources[1].slug: 'demo' is already used by sources[0]" in text
    assert "sources[2].slug: must be" in text
    assert "sources[3].name: required key is missing" in text
    # Installed plugins may register more schemes (the OAuth plugin in this repository).
    assert "sources[4].auth: no auth scheme named 'kerberos' (registered: bearer" in text
    assert "sources[5].colour: unknown key" in text


def test_a_mapping_for_no_resource_type_is_a_config_error_naming_the_types(tmp_path):
    config = base(tmp_path)
    config["sources"] = [
        {
            "slug": "demo",
            "name": "Demo",
            "mappings": [
                {"name": "fine", "resource_type": "Group", "expression": "{}"},
                {"name": "typo", "resource_type": "user", "expression": "{}"},
                {"name": "other", "resource_type": "Usr", "expression": "{}"},
            ],
        }
    ]
    text = problems_of(config)
    assert "sources[0].mappings[1].resource_type: no resource type 'user' (resource types: User, Group)" in text
    assert "sources[0].mappings[2].resource_type: no resource type 'Usr'" in text  # every one, in one run
    with pytest.raises(ConfigError):
        load_host(config, strict=False)  # whatever the command: the mapping would never run


def test_every_mistake_of_a_source_table_is_reported_in_one_run(tmp_path):
    config = base(tmp_path)
    config["sources"] = [
        {
            "slug": "Bad Slug",
            "name": "",
            "token_env": "1x",
            "auth": ["bearer", "nosuch"],
            "colour": "red",
            "unknown_attributes": "maybe",
            "mapping_runtime": "nope",
            "mappings": [{"name": "a", "resource_type": "user", "expression": "{}"}],
        },
        {"slug": "ok", "name": "OK", "mappings": [{"name": "a", "resource_type": "Usr", "expression": "{"}]},
    ]
    lines = problems_of(config).splitlines()
    for expected in (
        "sources[0].colour: unknown key",
        "sources[0].slug: must be 1-63 characters",
        "sources[0].name: must not be empty",
        "sources[0].token_env: must be an environment variable name",
        "sources[0].unknown_attributes: must be one of keep, reject, drop",
        "sources[0].auth: no auth scheme named 'nosuch'",
        "sources[0].mapping_runtime: no mapping runtime named 'nope'",
        "sources[0].mappings[0].resource_type: no resource type 'user'",
        "sources[1].mappings[0].resource_type: no resource type 'Usr'",
        "sources[1].mappings[0].expression: source 'ok' mapping 'a':",
    ):
        assert sum(expected in line for line in lines) == 1, (expected, lines)
    assert len(lines) == 10


def _documented_mappings() -> list[dict]:
    """Every `[[sources.mappings]]` the docs show: config.example.toml and docs/mappings.md."""
    import re
    import tomllib

    blocks = re.findall(r"```toml\n(.*?)```", (EXAMPLE.parent / "docs" / "mappings.md").read_text(), re.S)
    tables = [tomllib.loads(block) for block in blocks if "[[sources.mappings]]" in block]
    tables.append(tomllib.loads(EXAMPLE.read_text()))
    mappings = []
    for table in tables:
        # `[[sources.mappings]]` alone makes `sources` a table; after `[[sources]]` an array.
        sources = table["sources"] if isinstance(table["sources"], list) else [table["sources"]]
        mappings += [m for source in sources for m in source.get("mappings", [])]
    return mappings


def test_the_documented_mappings_load_and_warn_of_nothing(tmp_path):
    mappings = _documented_mappings()
    assert len(mappings) >= 3
    config = base(tmp_path)
    config["sources"] = [{"slug": f"s{i}", "name": f"S{i}", "mappings": [m]} for i, m in enumerate(mappings)]
    host = load_host(config)
    sources = list(host.sources.values())
    assert host.mappings.unknown_name_warnings(sources) == []
    assert host.mappings.ambiguous_name_warnings(sources) == []


def test_an_undeclared_attribute_a_mapping_names_is_no_typo_and_others_still_warn(tmp_path):
    config = base(tmp_path)
    expression = '{"a": urn_scim_schemas_extension_enterprise_2_0, "b": departmnet}'
    config["sources"] = [
        {
            "slug": "demo",
            "name": "Demo",
            "mappings": [
                {
                    "name": "m",
                    "expression": expression,
                    "undeclared_attributes": ["urn:scim:schemas:extension:enterprise:2.0"],
                }
            ],
        }
    ]
    host = load_host(config)
    [warning] = host.mappings.unknown_name_warnings(list(host.sources.values()))
    assert "reads 'departmnet'" in warning and "undeclared_attributes" in warning
    config["sources"][0]["mappings"][0]["undeclared_attributes"] = ["../x", "urn:x:"]
    assert "sources[0].mappings[0].undeclared_attributes: '../x', 'urn:x:' is neither" in problems_of(config)


def test_token_env_must_be_set_to_serve(tmp_path):
    config = base(tmp_path)
    config["sources"] = [{"slug": "demo", "name": "Demo", "token_env": "NOT_SET_ANYWHERE"}]
    with pytest.raises(ConfigError) as excinfo:
        load_host(config, environ={})
    assert "environment variable NOT_SET_ANYWHERE is not set" in str(excinfo.value)
    with pytest.raises(ConfigError, match="shorter than 32"):
        load_host(config, environ={"NOT_SET_ANYWHERE": "short"})
    # Administering the host does not need the token.
    assert load_host(config, environ={}, strict=False).sources["demo"].env_token_hash is None


def test_invalid_toml_and_missing_file_are_reported(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("[server\nport = 1\n")
    assert main(["-c", str(bad), "check"]) == 1
    assert "not valid TOML" in capsys.readouterr().err
    assert main(["-c", str(tmp_path / "missing.toml"), "check"]) == 1
    assert "config file not found" in capsys.readouterr().err


def test_config_path_from_environment(tmp_path, monkeypatch, capsys):
    config = tmp_path / "env.toml"
    config.write_text('[server]\nport = "x"\n')
    monkeypatch.setenv("SCIMHOST_CONFIG", str(config))
    assert main(["check"]) == 1
    err = capsys.readouterr().err
    assert str(config) in err and "server.port: expected an integer" in err


def test_settings_that_name_a_resource_type_or_source_name_the_known_ones(tmp_path):
    config = base(tmp_path)
    config["schema_extensions"] = [
        {
            "resource_type": "user",
            "schema": {
                "id": "urn:example:params:scim:schemas:extension:acme:2.0:User",
                "name": "Acme",
                "attributes": [],
            },
        }
    ]
    config["events"] = {"sinks": [{"name": "n", "type": "nats", "sources": ["nope"]}]}
    text = problems_of(config)
    assert "schema_extensions[0].resource_type: no resource type 'user' (resource types: User, Group)" in text
    assert "events.sinks[0].sources: no source 'nope' is configured (sources: demo, other)" in text


def test_the_configuration_docs_table_lists_each_table_once_with_all_its_keys():
    """docs/configuration.md's table of tables against the settings dataclasses."""
    from dataclasses import fields

    from scimhost.builtin.bearer import BearerSettings
    from scimhost.builtin.tortoise_storage.settings import TortoiseSettings
    from scimhost.config import (
        SINK_KEYS,
        AdminSettings,
        EventSettings,
        IndexSettings,
        LimitSettings,
        LoggingSettings,
        MappingPoolSettings,
        MappingSettings,
        PluginSettings,
        SchemaExtensionSettings,
        ServerSettings,
        SourceSettings,
    )

    text = (Path(__file__).parent.parent / "docs" / "configuration.md").read_text()
    table = text.split("## Tables", 1)[1].split("\n## ", 1)[0]
    rows = [line.split(" | ", 1) for line in table.splitlines() if line.startswith("| `[")]
    names = [name.strip("| `") for name, _ in rows]
    assert len(names) == len(set(names)), f"listed twice: {sorted(n for n in names if names.count(n) > 1)}"
    keys_of = dict(zip(names, (keys for _, keys in rows), strict=True))
    classes = {
        "[server]": [ServerSettings],
        "[limits]": [LimitSettings],
        "[mappings]": [MappingPoolSettings],
        "[plugins]": [PluginSettings],
        "[storage.tortoise]": [TortoiseSettings],
        "[[sources]]": [SourceSettings, MappingSettings],
        "[admin]": [AdminSettings],
        "[logging]": [LoggingSettings],
        "[bearer]": [BearerSettings],
        "[events]": [EventSettings],
        "[[schema_extensions]]": [SchemaExtensionSettings],
        "[[indexes]]": [IndexSettings],
    }
    for name, settings_classes in classes.items():
        assert name in keys_of, f"{name} is not in the table"
        for cls in settings_classes:
            for f in fields(cls):
                if f.metadata.get("toml", True) and not f.name.startswith("_"):
                    assert f"`{f.name}`" in keys_of[name], f"{name}: `{f.name}` is not listed"
    for key in SINK_KEYS:
        assert f"`{key}`" in keys_of["[events]"], f"[[events.sinks]]: `{key}` is not listed"
