"""What many tests share: configs, a SCIM client over an aiohttp test client, PATCH bodies,
reading the store back."""

from __future__ import annotations

import re
from typing import Any


def make_config(storage_url: str, sources: list[dict] | None = None, **server: Any) -> dict:
    """A parsed config document for the given database and sources."""
    if sources is None:
        sources = [{"slug": "demo", "name": "Demo source"}, {"slug": "other", "name": "Other source"}]
    return {
        "server": {"public_url": "https://scim.example.test", **server},
        "storage": {"backend": "tortoise", "tortoise": {"url": storage_url}},
        "sources": sources,
    }


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class ScimClient:
    """Requests to one source of a test app, with its token, as an identity provider sends them."""

    def __init__(self, client, slug: str, token: str) -> None:
        self.client = client
        self.base = f"/source/scim/{slug}/v2"
        self.headers = bearer(token)

    async def request(self, method: str, path: str, body: Any = None, headers: dict | None = None, **kwargs):
        all_headers = {**self.headers, **(headers or {})}
        if body is not None:
            if not isinstance(body, (bytes, str)):
                import orjson

                body = orjson.dumps(body)
            all_headers.setdefault("Content-Type", "application/scim+json")
        return await self.client.request(method, self.base + path, data=body, headers=all_headers, **kwargs)

    async def json(self, method: str, path: str, body: Any = None, expect: int = 200, **kwargs) -> Any:
        response = await self.request(method, path, body, **kwargs)
        text = await response.text()
        assert response.status == expect, f"{method} {path}: {response.status} {text}"
        import orjson

        return orjson.loads(text) if text else None

    async def create_user(self, user_name: str = "bjensen", **attributes: Any) -> dict:
        body = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": user_name, **attributes}
        return await self.json("POST", "/Users", body, expect=201)

    async def create_group(self, name: str = "Engineering", members: list[str] = ()) -> dict:
        body = {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": name,
            "members": [{"value": m} for m in members],
        }
        return await self.json("POST", "/Groups", body, expect=201)


def patch_op(*operations: dict) -> dict:
    return {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": list(operations)}


async def snapshot(scim: ScimClient) -> dict:
    """Every user and group of the source as it reads them: what bad input must leave unchanged."""
    users = await scim.json("GET", "/Users?count=1000")
    groups = await scim.json("GET", "/Groups?count=1000")
    return {"users": users["Resources"], "groups": groups["Resources"]}


async def stored_rows(storage, sql: str, *values) -> list[dict]:
    """Rows of raw SQL on the tortoise backend, `{}` standing for each bound value in turn."""
    from scimhost.builtin.tortoise_storage.statements import Params

    p = Params(storage.dialect)
    return await storage.database.rows(p.query(sql.format(*(p(value) for value in values))))


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text, 0 when absent."""
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0])) if "{" in line else {}
            if all(found.get(k) == v for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
    return 0.0
