"""The memory backend keeps the storage contract and serves the SCIM API."""

from __future__ import annotations

import pytest
from scimhost_memory import MemoryBackend, MemorySettings

from scimhost.app import create_app
from scimhost.http.keys import HOST
from scimhost.testing import StorageContract


class TestMemoryBackend(StorageContract):
    @pytest.fixture
    async def backend(self, tmp_path):
        backend = MemoryBackend(MemorySettings(), base_dir=tmp_path)
        await backend.open()
        yield backend
        await backend.close()


async def test_the_memory_backend_serves_scim(aiohttp_client):
    app = create_app({
        "server": {"public_url": "https://scim.example.test"},
        "storage": {"backend": "memory"},
        "sources": [{"slug": "demo", "name": "Demo"}],
    })
    client = await aiohttp_client(app)
    token = await app[HOST].issue_token("demo")
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}
    base = "/source/scim/demo/v2"
    user = await (await client.post(base + "/Users", json={
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "bjensen", "title": "Boss"
    }, headers=headers)).json()
    group = await (await client.post(base + "/Groups", json={
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Eng",
        "members": [{"value": user["id"]}],
    }, headers=headers)).json()
    found = await (await client.get(base + '/Users?filter=userName eq "BJENSEN"', headers=headers)).json()
    assert [u["id"] for u in found["Resources"]] == [user["id"]]
    read = await (await client.get(base + f"/Users/{user['id']}", headers=headers)).json()
    assert [g["value"] for g in read["groups"]] == [group["id"]]
    patched = await client.patch(base + f"/Users/{user['id']}", json={
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "title", "value": "CEO"}],
    }, headers=headers)
    assert patched.status == 200 and (await patched.json())["title"] == "CEO"
    assert (await client.delete(base + f"/Users/{user['id']}", headers=headers)).status == 204
    members = await (await client.get(base + f"/Groups/{group['id']}", headers=headers)).json()
    assert members.get("members", []) == []
    events = await app[HOST].storage.list_events("demo")
    assert [e.action for e in events] == ["create", "create", "patch", "delete"]
