"""OneLogin, JumpCloud and Google Workspace provisioning cycles: probe, create, look up,
update, deactivate, reactivate, delete; group create, look up, rename, member add and remove,
empty push, delete, each in the client's own request shapes."""

from __future__ import annotations

PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"


def ops(*operations):
    return {"schemas": [PATCH], "Operations": list(operations)}


async def test_onelogin_cycle(scim):
    # probe: spaces as +, a trailing &, an unknown parameter
    assert (await scim.json("GET", "/Users?filter=userName+eq+%22probe%40onelogin.example%22&foo=bar&"))[
        "totalResults"
    ] == 0
    user = await scim.json(
        "POST",
        "/Users",
        {
            "schemas": [USER],
            "userName": "jdoe@onelogin.example",
            "externalId": "12345",
            "name": {"givenName": "John", "familyName": "Doe"},
            "emails": [{"value": "jdoe@onelogin.example", "primary": True}],
            "active": True,
            "groups": [{"$ref": None, "value": "x"}],
        },
        expect=201,
    )
    uid = user["id"]
    for query in (
        "?filter=userName+eq+%22JDOE%40onelogin.example%22&",
        "?filter=externalId+eq+%2212345%22&sortOrder=ascending",
    ):
        assert [u["id"] for u in (await scim.json("GET", "/Users" + query))["Resources"]] == [uid]
    # updates by PUT, nulls for cleared attributes; deactivate and reactivate the same way
    body = {
        "schemas": [USER],
        "userName": "jdoe@onelogin.example",
        "title": "Engineer",
        "nickName": None,
        "active": False,
    }
    assert (await scim.json("PUT", f"/Users/{uid}", body))["active"] is False
    assert (await scim.json("PUT", f"/Users/{uid}", {**body, "active": True}))["title"] == "Engineer"
    # groups (roles): create with members carrying $ref null, look up, rename, add/remove, empty
    group = await scim.json(
        "POST",
        "/Groups",
        {"schemas": [GROUP], "displayName": "OneLogin Role", "members": [{"value": uid, "$ref": None}]},
        expect=201,
    )
    gid = group["id"]
    assert (await scim.json("GET", "/Groups?filter=displayName+eq+%22OneLogin+Role%22"))["totalResults"] == 1
    await scim.json(
        "PATCH", f"/Groups/{gid}", ops({"op": "replace", "path": "displayName", "value": "Role 2"}), expect=204
    )
    await scim.json(
        "PATCH", f"/Groups/{gid}", ops({"op": "remove", "path": "members", "value": [{"value": uid}]}), expect=204
    )
    await scim.json(
        "PATCH", f"/Groups/{gid}", ops({"op": "add", "path": "members", "value": [{"value": uid}]}), expect=204
    )
    await scim.json("PUT", f"/Groups/{gid}", {"schemas": [GROUP], "displayName": "Role 2", "members": []})
    assert (await scim.json("GET", f"/Groups/{gid}"))["members"] == []
    await scim.json("DELETE", f"/Groups/{gid}", expect=204)
    await scim.json("DELETE", f"/Users/{uid}", expect=204)
    assert (await scim.json("GET", "/Users?filter=userName+eq+%22jdoe%40onelogin.example%22"))["totalResults"] == 0


async def test_jumpcloud_cycle(scim):
    assert (await scim.json("GET", '/Users?filter=userName%20eq%20"probe@jc.example"'))["totalResults"] == 0
    alice = await scim.json(
        "POST",
        "/Users",
        {
            "schemas": [USER],
            "userName": "alice@jc.example",
            "active": True,
            "name": {"givenName": "Alice", "familyName": "A"},
            "emails": [{"value": "alice@jc.example", "type": "work", "primary": True}],
        },
        expect=201,
    )
    bob = await scim.create_user("bob@jc.example")
    assert (await scim.json("GET", '/Users?filter=userName%20eq%20"ALICE@jc.example"'))["totalResults"] == 1
    await scim.json(
        "PATCH", f"/Users/{alice['id']}", ops({"op": "replace", "path": "name.familyName", "value": "Anders"})
    )
    await scim.json("PATCH", f"/Users/{bob['id']}", ops({"op": "replace", "path": "active", "value": False}))
    await scim.json("PATCH", f"/Users/{bob['id']}", ops({"op": "replace", "path": "active", "value": True}))
    group = await scim.json(
        "POST",
        "/Groups",
        {"schemas": [GROUP], "displayName": "jc-group", "members": [{"value": alice["id"]}]},
        expect=201,
    )
    gid = group["id"]
    assert (await scim.json("GET", '/Groups?filter=displayName%20eq%20"jc-group"'))["totalResults"] == 1
    # JumpCloud replays changes: a present member added, an absent one removed, the same name set
    for _ in range(2):
        await scim.json(
            "PATCH",
            f"/Groups/{gid}",
            ops({"op": "add", "path": "members", "value": [{"value": alice["id"]}]}),
            expect=204,
        )
        await scim.json(
            "PATCH", f"/Groups/{gid}", ops({"op": "remove", "path": f'members[value eq "{bob["id"]}"]'}), expect=204
        )
        await scim.json(
            "PATCH", f"/Groups/{gid}", ops({"op": "replace", "path": "displayName", "value": "jc-group"}), expect=204
        )
    assert [m["value"] for m in (await scim.json("GET", f"/Groups/{gid}"))["members"]] == [alice["id"]]
    await scim.json(
        "PATCH", f"/Groups/{gid}", ops({"op": "replace", "path": "displayName", "value": "jc-renamed"}), expect=204
    )
    await scim.json("PATCH", f"/Groups/{gid}", ops({"op": "replace", "path": "members", "value": []}), expect=204)
    assert (await scim.json("GET", f"/Groups/{gid}"))["members"] == []
    await scim.json("DELETE", f"/Groups/{gid}", expect=204)
    await scim.json("DELETE", f"/Users/{bob['id']}", expect=204)


async def test_google_workspace_cycle(scim):
    assert (await scim.json("GET", '/Users?filter=userName eq "ada@gw.example"'))["totalResults"] == 0
    user = await scim.json(
        "POST",
        "/Users",
        {
            "schemas": [USER],
            "userName": "ada@gw.example",
            "externalId": "g-100",
            "name": {"givenName": "Ada", "familyName": "Lovelace"},
            "active": True,
            "emails": [{"value": "ada@gw.example", "type": "work", "primary": True}],
        },
        expect=201,
    )
    uid = user["id"]
    assert (await scim.json("GET", '/Users?filter=externalId eq "g-100"'))["Resources"][0]["id"] == uid
    await scim.json(
        "PATCH",
        f"/Users/{uid}",
        ops(
            {"op": "replace", "path": "name.familyName", "value": "King"},
            {"op": "replace", "path": "active", "value": False},
        ),
    )
    current = await scim.json("GET", f"/Users/{uid}")
    assert current["name"]["familyName"] == "King" and current["active"] is False
    await scim.json("PATCH", f"/Users/{uid}", ops({"op": "replace", "path": "active", "value": True}))
    group = await scim.json("POST", "/Groups", {"schemas": [GROUP], "displayName": "gw-team"}, expect=201)
    gid = group["id"]
    assert (await scim.json("GET", '/Groups?filter=displayName eq "gw-team"&excludedAttributes=members'))[
        "totalResults"
    ] == 1
    await scim.json(
        "PATCH", f"/Groups/{gid}", ops({"op": "add", "path": "members", "value": [{"value": uid}]}), expect=204
    )
    await scim.json(
        "PATCH", f"/Groups/{gid}", ops({"op": "replace", "value": {"displayName": "gw-team-2"}}), expect=204
    )
    await scim.json("PATCH", f"/Groups/{gid}", ops({"op": "remove", "path": f'members[value eq "{uid}"]'}), expect=204)
    await scim.json("PATCH", f"/Groups/{gid}", ops({"op": "replace", "path": "members", "value": []}), expect=204)
    await scim.json("DELETE", f"/Groups/{gid}", expect=204)
    await scim.json("DELETE", f"/Users/{uid}", expect=204)
    assert (await scim.json("GET", '/Users?filter=userName eq "ada@gw.example"'))["totalResults"] == 0
