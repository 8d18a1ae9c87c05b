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
    app = create_app(
        {
            "server": {"public_url": "https://scim.example.test"},
            "storage": {"backend": "memory"},
            "sources": [{"slug": "demo", "name": "Demo"}],
        }
    )
    client = await aiohttp_client(app)
    token = await app[HOST].issue_token("demo")
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}
    base = "/source/scim/demo/v2"
    user = await (
        await client.post(
            base + "/Users",
            json={"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "bjensen", "title": "Boss"},
            headers=headers,
        )
    ).json()
    group = await (
        await client.post(
            base + "/Groups",
            json={
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "displayName": "Eng",
                "members": [{"value": user["id"]}],
            },
            headers=headers,
        )
    ).json()
    found = await (await client.get(base + '/Users?filter=userName eq "BJENSEN"', headers=headers)).json()
    assert [u["id"] for u in found["Resources"]] == [user["id"]]
    read = await (await client.get(base + f"/Users/{user['id']}", headers=headers)).json()
    assert [g["value"] for g in read["groups"]] == [group["id"]]
    patched = await client.patch(
        base + f"/Users/{user['id']}",
        json={
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "title", "value": "CEO"}],
        },
        headers=headers,
    )
    assert patched.status == 200 and (await patched.json())["title"] == "CEO"
    assert (await client.delete(base + f"/Users/{user['id']}", headers=headers)).status == 204
    members = await (await client.get(base + f"/Groups/{group['id']}", headers=headers)).json()
    assert members.get("members", []) == []
    events = await app[HOST].storage.list_events("demo")
    assert [e.action for e in events] == ["create", "create", "patch", "delete"]


class BasicMemoryBackend(MemoryBackend):
    """A backend declaring no optional feature: what a minimal third-party backend looks like."""

    name = "memory-basic"
    features = frozenset()


class TestBasicMemoryBackend(StorageContract):
    """The contract's feature tests are skipped, each naming the feature it needs."""

    @pytest.fixture
    async def backend(self, tmp_path):
        backend = BasicMemoryBackend(MemorySettings(), base_dir=tmp_path)
        await backend.open()
        yield backend
        await backend.close()


async def test_missing_features_are_declared_and_refused_with_400(aiohttp_client):
    import types

    from scimhost.hookspecs import hookimpl

    plugin = types.SimpleNamespace(register_storage_backends=hookimpl(lambda: [BasicMemoryBackend]))
    app = create_app(
        {
            "storage": {"backend": "memory-basic"},
            "sources": [{"slug": "demo", "name": "Demo"}],
        },
        plugins=[("basic", plugin)],
    )
    client = await aiohttp_client(app)
    headers = {"Authorization": f"Bearer {await app[HOST].issue_token('demo')}"}
    base = "/source/scim/demo/v2"
    config = await (await client.get(base + "/ServiceProviderConfig", headers=headers)).json()
    assert config["sort"]["supported"] is False and config["pagination"]["cursor"] is False
    for query in ("sortBy=userName", "cursor=", "cursor=&count=5"):
        response = await client.get(base + "/Users?" + query, headers=headers)
        body = await response.json(content_type=None)
        assert response.status == 400 and body["scimType"] == "invalidValue", query
    assert (await client.get(base + "/Users?count=5&startIndex=1", headers=headers)).status == 200


def test_the_contract_names_the_feature_it_skips(pytestconfig):
    import subprocess
    import sys
    from pathlib import Path

    here = Path(__file__)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", f"{here}::TestBasicMemoryBackend"],
        capture_output=True,
        text=True,
        cwd=here.parent.parent,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-2000:]
    assert "the backend does not declare the 'sort' feature" in result.stdout
    assert "the backend does not declare the 'cursor_paging' feature" in result.stdout
