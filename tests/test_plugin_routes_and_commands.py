"""Plugins extend the HTTP surface (`register_routes`) and the command line (`register_commands`)."""

from __future__ import annotations

import json
import types

import pytest
from helpers import bearer, make_config
from test_plugins import site, unique  # noqa: F401 (a fixture)

from scimhost.app import create_app
from scimhost.cli import main
from scimhost.hookspecs import hookimpl
from scimhost.http.keys import HOST, PRINCIPAL, SOURCE
from scimhost.plugin_routes import PluginRoute
from scimhost.registry import RegistryError


async def whoami(request):
    principal = request.get(PRINCIPAL)
    return _json({"source": request[SOURCE].slug, "account": principal.account if principal else None})


async def open_door(request):
    await request.read()
    return _json({"source": request[SOURCE].slug, "account": None})


async def well_known(request):
    return _json({"host": "yes"})


def _json(body):
    from aiohttp import web

    return web.json_response(body)


def routes_plugin(*routes: PluginRoute):
    plugin = types.SimpleNamespace()
    plugin.register_routes = hookimpl(lambda: list(routes))
    return plugin


ROUTES = (
    PluginRoute("GET", "/whoami", whoami),
    PluginRoute("POST", "/open", open_door, authenticated=False),
    PluginRoute("GET", "/.well-known/example", well_known, scope="host"),
)


async def test_a_plugins_source_routes_are_scoped_and_authenticated_like_scim_endpoints(aiohttp_client, storage_url):
    config = make_config(storage_url, max_body_bytes=2048)
    client = await aiohttp_client(create_app(config, plugins=[("extra", routes_plugin(*ROUTES))]))
    host = client.app[HOST]
    demo, other = await host.issue_token("demo"), await host.issue_token("other")

    refused = await client.get("/source/scim/demo/v2/whoami")
    assert refused.status == 401 and "WWW-Authenticate" in refused.headers
    assert (await refused.json(content_type=None))["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    assert (await client.get("/source/scim/demo/v2/whoami", headers=bearer(other))).status == 401  # another's token
    opened = await client.get("/source/scim/demo/v2/whoami", headers=bearer(demo))
    assert opened.status == 200 and await opened.json() == {"source": "demo", "account": "scimhost-source-demo"}
    assert (await client.get("/source/scim/nosuch/v2/whoami", headers=bearer(demo))).status == 404

    # An open route reaches its handler without credentials, with the source the path names,
    # and the body limit still applies.
    door = await client.post("/source/scim/other/v2/open", data=b"x")
    assert door.status == 200 and await door.json() == {"source": "other", "account": None}
    assert (await client.post("/source/scim/nosuch/v2/open")).status == 404
    assert (await client.post("/source/scim/demo/v2/open", data=b"x" * 4096)).status == 413

    assert await (await client.get("/.well-known/example")).json() == {"host": "yes"}
    metrics = host.metrics.exposition([])[0].decode()
    assert 'resource_type="whoami"' in metrics and 'resource_type="open"' in metrics


@pytest.mark.parametrize(
    ("route", "problem"),
    [
        (PluginRoute("GET", "/Users", whoami), "the route GET /source/scim/{slug}/v2/Users is already served"),
        (PluginRoute("GET", "/healthz", whoami, scope="host"), "the route GET /healthz is already served"),
        (PluginRoute("FETCH", "/x", whoami), "method 'FETCH' is not one of"),
        (PluginRoute("GET", "x", whoami), "must start with '/'"),
        (PluginRoute("GET", "/{slug}/x", whoami), "below the source's base URL already"),
        (PluginRoute("GET", "/x", whoami, scope="host", authenticated=False), "a host route has no source"),
    ],
)
def test_a_route_that_clashes_or_is_malformed_is_refused_naming_its_plugin(storage_url, route, problem):
    with pytest.raises(RegistryError) as refused:
        create_app(make_config(storage_url), plugins=[("clumsy", routes_plugin(route))])
    assert "plugin 'clumsy'" in str(refused.value) and problem in str(refused.value)


COMMANDS_MODULE = """
    from scimhost.cli.plugin_commands import PluginCommand
    from scimhost.hookspecs import hookimpl


    def greet(args):
        print(f"hello {args.name} (config {args.config})")
        return 0


    def configure(parser, common):
        parser.add_argument("--name", default="world")
        parser.set_defaults(func=greet)


    def configure_nested(parser, common):
        sub = parser.add_subparsers(dest="nested", required=True)
        create = sub.add_parser("create", parents=[common])
        create.add_argument("slug")
        create.set_defaults(func=lambda args: print(f"created for {args.slug}") or 0)


    @hookimpl
    def register_commands():
        return [
            PluginCommand("greet", "say hello", configure),
            PluginCommand("things", "nested commands", configure_nested),
            PluginCommand("serve", "a clash", configure),
        ]
"""


def test_a_plugin_adds_commands_to_the_cli(site, tmp_path, capsys):  # noqa: F811
    module = unique("scimhost_greeter")
    site.install("scimhost-greeter", "1.0", {"greeter": module}, {module: COMMANDS_MODULE})
    config = tmp_path / "scimhost.toml"
    config.write_text('[[sources]]\nslug = "demo"\nname = "Demo"\n')

    assert main(["-c", str(config), "greet", "--name", "ops"]) == 0
    captured = capsys.readouterr()
    assert f"hello ops (config {config})" in captured.out
    assert "plugin 'greeter': the command 'serve' is a built-in one; ignored" in captured.err
    assert main(["things", "create", "demo", "-c", str(config)]) == 0  # shared options after, too
    assert "created for demo" in capsys.readouterr().out
    assert main(["-c", str(config), "plugins", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    [greeter] = [p for p in report["plugins"] if p["name"] == "greeter"]
    assert greeter["distribution"] == "scimhost-greeter" and "register_commands" in greeter["hooks"]

    # A disabled plugin adds nothing.
    config.write_text('[plugins]\ndisable = ["greeter"]\n[[sources]]\nslug = "demo"\nname = "Demo"\n')
    with pytest.raises(SystemExit) as exited:
        main(["-c", str(config), "greet"])
    assert exited.value.code == 2 and "invalid choice: 'greet'" in capsys.readouterr().err
