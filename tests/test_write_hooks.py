"""`validate_resource` vetoes writes; `resource_event` hears committed ones, failures logged."""

from __future__ import annotations

import types

from helpers import ScimClient, make_config, patch_op

from scimhost.app import create_app
from scimhost.hookspecs import hookimpl
from scimhost.http.keys import HOST
from scimhost.scim.errors import ScimError


def make_plugin(events: list):
    plugin = types.SimpleNamespace()

    @hookimpl
    def validate_resource(source, resource_type, resource, previous):
        if resource.get("title") == "forbidden":
            raise ScimError(400, f"titles like that are not allowed in {source.slug}", "invalidValue")

    @hookimpl
    async def resource_event(event):
        events.append((event.action, event.resource_type, event.version))

    plugin.validate_resource = validate_resource
    plugin.resource_event = resource_event
    return plugin


def failing_plugin():
    plugin = types.SimpleNamespace()

    @hookimpl
    def resource_event(event):
        raise RuntimeError("webhook down")

    plugin.resource_event = resource_event
    return plugin


async def test_write_hooks(aiohttp_client, storage_url, caplog):
    events: list = []
    app = create_app(make_config(storage_url), plugins=[("policy", make_plugin(events)), ("flaky", failing_plugin())])
    client = await aiohttp_client(app)
    scim = ScimClient(client, "demo", await app[HOST].issue_token("demo"))

    error = await scim.json("POST", "/Users", {"userName": "x", "title": "forbidden"}, expect=400)
    assert "not allowed in demo" in error["detail"]
    assert (await scim.json("GET", "/Users"))["totalResults"] == 0

    user = await scim.create_user("x")
    await scim.json(
        "PATCH", f"/Users/{user['id']}", patch_op({"op": "add", "path": "title", "value": "forbidden"}), expect=400
    )
    await scim.json("PATCH", f"/Users/{user['id']}", patch_op({"op": "add", "path": "title", "value": "fine"}))
    await scim.json("DELETE", f"/Users/{user['id']}", expect=204)
    assert events == [("create", "User", 'W/"1"'), ("patch", "User", 'W/"2"'), ("delete", "User", None)]
    assert "resource_event of plugin 'flaky' failed" in caplog.text
