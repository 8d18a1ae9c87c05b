"""Plugins load through real entry points; failures name the plugin and stop the host."""

from __future__ import annotations

import json
import re
import textwrap
import uuid
from pathlib import Path

import pytest
from helpers import bearer, make_config

from scimhost import hookspecs
from scimhost.app import create_app
from scimhost.cli import main
from scimhost.config import ConfigError
from scimhost.host import load_host
from scimhost.plugins import PluginLoadError, load_plugins
from scimhost.registry import RegistryError, build_registry

DOCS = Path(__file__).parent.parent / "docs" / "plugin-hooks.md"

APIKEY_PLUGIN = """
import hmac
from dataclasses import dataclass, field

from scimhost.auth import AuthScheme, Principal
from scimhost.config import SettingsTable
from scimhost.hookspecs import hookimpl


@dataclass(frozen=True)
class ApiKeySettings:
    keys: dict[str, str] = field(default_factory=dict)


class ApiKeyScheme(AuthScheme):
    name = "apikey"
    challenge = 'ApiKey realm="test"'

    async def authenticate(self, source, headers):
        expected = self.settings.plugin_tables["apikey"].keys.get(source.slug, "")
        presented = headers.get("X-Api-Key", "")
        if expected and hmac.compare_digest(presented.encode(), expected.encode()):
            return Principal(source.slug, "apikey-client", self.name)
        return None

    def describe(self):
        return {"type": "apikey", "name": "API key", "description": "X-Api-Key header"}


@hookimpl
def register_auth_schemes():
    return [ApiKeyScheme]


@hookimpl
def register_settings():
    return [SettingsTable("apikey", ApiKeySettings, "API keys by source slug")]
"""


class FakeSite:
    """A folder on sys.path holding distributions (dist-info + modules), as pip would leave them."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = root
        self.root.mkdir()
        monkeypatch.syspath_prepend(str(root))

    def install(self, dist: str, version: str, entry_points: dict[str, str], modules: dict[str, str]) -> None:
        for module, source in modules.items():
            (self.root / f"{module}.py").write_text(textwrap.dedent(source))
        info = self.root / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        lines = "".join(f"{name} = {value}\n" for name, value in entry_points.items())
        (info / "entry_points.txt").write_text(f"[scimhost]\n{lines}")


@pytest.fixture
def site(tmp_path, monkeypatch) -> FakeSite:
    return FakeSite(tmp_path / "site", monkeypatch)


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def test_builtins_are_loaded_through_entry_points():
    pm, report = load_plugins()
    assert not report.failures
    by_name = {p.name: p for p in report.loaded}
    for name in ("bearer", "tortoise", "errors"):
        assert by_name[name].distribution == "scimhost"
        assert by_name[name].version
    assert "register_auth_schemes" in by_name["bearer"].hooks
    registry = build_registry(pm)
    assert set(registry.storage_backends) >= {"tortoise"}
    assert registry.providers[("auth scheme", "bearer")] == "bearer"


async def test_installed_plugin_adds_an_auth_scheme_and_a_settings_table(site, storage_url, aiohttp_client):
    module = unique("scimhost_apikey")
    site.install("scimhost-apikey", "1.2.3", {"apikey": module}, {module: APIKEY_PLUGIN})
    config = make_config(storage_url, [{"slug": "demo", "name": "Demo", "auth": ["apikey", "bearer"]}])
    config["apikey"] = {"keys": {"demo": "k" * 32}}
    app = create_app(config)
    client = await aiohttp_client(app)

    url = "/source/scim/demo/v2/ServiceProviderConfig"
    response = await client.get(url, headers={"X-Api-Key": "k" * 32})
    assert response.status == 200
    body = await response.json(content_type=None)
    assert [s["type"] for s in body["authenticationSchemes"]] == ["apikey", "oauthbearertoken"]

    response = await client.get(url, headers={"X-Api-Key": "wrong"})
    assert response.status == 401
    assert response.headers["WWW-Authenticate"] == 'ApiKey realm="test", Bearer realm="scimhost"'

    from scimhost.http.keys import HOST

    token = await app[HOST].issue_token("demo")
    assert (await client.get(url, headers=bearer(token))).status == 200
    info = {p.name: p for p in app[HOST].plugin_report.loaded}["apikey"]
    assert (info.distribution, info.version) == ("scimhost-apikey", "1.2.3")


def test_plugin_settings_table_is_validated(site, tmp_path):
    module = unique("scimhost_apikey")
    site.install("scimhost-apikey", "1.2.3", {"apikey": module}, {module: APIKEY_PLUGIN})
    config = make_config(f"sqlite://{tmp_path}/x.sqlite3")
    config["apikey"] = {"keys": {"demo": 5}, "extra": True}
    with pytest.raises(Exception) as excinfo:
        load_host(config)
    assert "apikey.keys.demo: expected a string" in str(excinfo.value)
    assert "apikey.extra: unknown key" in str(excinfo.value)


def test_broken_plugin_is_reported_by_name_distribution_and_version(site, tmp_path):
    module = unique("scimhost_broken")
    site.install("scimhost-broken", "0.9", {"broken": module}, {module: "import no_such_module_here\n"})
    with pytest.raises(PluginLoadError) as excinfo:
        create_app(make_config(f"sqlite://{tmp_path}/x.sqlite3"))
    message = str(excinfo.value)
    assert "'broken'" in message and "scimhost-broken 0.9" in message
    assert "ModuleNotFoundError" in message and module in message


def test_broken_plugin_stops_serve_and_check_and_shows_in_plugins(site, tmp_path, capsys):
    module = unique("scimhost_broken")
    site.install("scimhost-broken", "0.9", {"broken": module}, {module: "raise RuntimeError('boom')\n"})
    config = tmp_path / "scimhost.toml"
    config.write_text('[[sources]]\nslug = "demo"\nname = "Demo"\n[storage.tortoise]\nurl = "sqlite://./db.sqlite3"\n')
    assert main(["-c", str(config), "serve", "--port", "0"]) == 1
    assert "plugin 'broken' (scimhost-broken 0.9" in capsys.readouterr().err
    assert main(["-c", str(config), "check"]) == 1
    assert "RuntimeError: boom" in capsys.readouterr().err
    assert main(["-c", str(config), "plugins", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    failure = report["failures"][0]
    assert failure["name"] == "broken" and failure["distribution"] == "scimhost-broken"
    assert failure["version"] == "0.9" and "boom" in failure["error"]
    assert "bearer" in [p["name"] for p in report["plugins"]]


def test_disabled_plugin_is_not_loaded(site, tmp_path):
    module = unique("scimhost_broken")
    site.install("scimhost-broken", "0.9", {"broken": module}, {module: "raise RuntimeError('boom')\n"})
    config = make_config(f"sqlite://{tmp_path}/x.sqlite3")
    config["plugins"] = {"disable": ["broken"]}
    host = load_host(config)
    assert host.plugin_report.disabled == ["broken"]
    assert "broken" not in [p.name for p in host.plugin_report.loaded]


def test_disabling_the_storage_plugin_is_an_error_not_a_silent_fallback(tmp_path):
    config = make_config(f"sqlite://{tmp_path}/x.sqlite3")
    config["plugins"] = {"disable": ["tortoise"]}
    with pytest.raises(Exception) as excinfo:
        load_host(config)
    assert "storage.backend: no storage backend named 'tortoise'" in str(excinfo.value)


def test_same_backend_name_from_two_plugins_names_both(site):
    module = unique("scimhost_otherdb")
    source = """
        from scimhost.builtin.tortoise_storage.backend import TortoiseBackend
        from scimhost.hookspecs import hookimpl

        class Impostor(TortoiseBackend):
            pass

        @hookimpl
        def register_storage_backends():
            return [Impostor]
    """
    site.install("scimhost-otherdb", "1.0", {"otherdb": module}, {module: source})
    pm, report = load_plugins()
    assert not report.failures
    with pytest.raises(RegistryError) as excinfo:
        build_registry(pm)
    assert "storage backend 'tortoise' is registered by plugins 'otherdb' and 'tortoise'" in str(excinfo.value)


def test_same_plugin_name_from_two_distributions_is_a_failure(site):
    first, second = unique("scimhost_a"), unique("scimhost_b")
    site.install("dist-a", "1.0", {"samename": first}, {first: ""})
    site.install("dist-b", "2.0", {"samename": second}, {second: ""})
    _, report = load_plugins()
    assert len(report.failures) == 1
    assert "also used by" in report.failures[0].error


def test_misspelled_hook_is_a_failure(site):
    module = unique("scimhost_typo")
    source = """
        from scimhost.hookspecs import hookimpl

        @hookimpl
        def register_auth_scheme():
            return []
    """
    site.install("scimhost-typo", "1.0", {"typo": module}, {module: source})
    _, report = load_plugins()
    assert [f.name for f in report.failures] == ["typo"]
    assert "register_auth_scheme" in report.failures[0].error


def test_every_hook_is_documented():
    documented = set(re.findall(r"^### `(\w+)\(", DOCS.read_text(), flags=re.M))
    declared = {name for name in dir(hookspecs) if hasattr(getattr(hookspecs, name), "scimhost_spec")}
    assert declared, "no hook specs found"
    assert declared - documented == set(), f"hooks missing from {DOCS.name}"
    assert documented - declared == set(), f"{DOCS.name} documents hooks that do not exist"


def test_every_hook_is_documented_with_its_signature():
    """Each heading shows the spec's parameter names, in order, and its return annotation."""
    import inspect

    headings = dict(re.findall(r"^### `((\w+)\(.*\) -> .+)`$", DOCS.read_text(), flags=re.M))
    documented = {name: heading for heading, name in headings.items()}
    for name in dir(hookspecs):
        spec = getattr(hookspecs, name)
        if not hasattr(spec, "scimhost_spec"):
            continue
        signature = inspect.signature(spec)
        expected = f"{name}({', '.join(signature.parameters)}) -> {signature.return_annotation}"
        assert documented.get(name) == expected, f"{DOCS.name}: {documented.get(name)!r} is not {expected!r}"


def test_a_first_party_plugin_that_is_not_installed_is_named_with_its_install_line(tmp_path):
    config = make_config(f"sqlite://{tmp_path}/x.sqlite3")
    config["plugins"] = {"disable": ["webhook", "nats", "memory", "oauth"]}  # as after the README's run command
    config["events"] = {"sinks": [{"name": "hr", "type": "webhook", "url": "http://127.0.0.1:9/e"}]}
    config["storage"] = {"backend": "memory"}
    config["sources"][0]["auth"] = ["oauth"]
    with pytest.raises(ConfigError) as excinfo:
        load_host(config)
    text = str(excinfo.value)
    for kind, name, distribution in [
        ("event sink type", "webhook", "scimhost-webhook"),
        ("storage backend named", "memory", "scimhost-memory"),
        ("auth scheme named", "oauth", "scimhost-oauth"),
    ]:
        assert f"no {kind} {name!r}" in text
        assert f"provided by the distribution {distribution}: pip install ./plugins/{distribution}" in text
