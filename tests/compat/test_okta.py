"""Okta provisioning cycle, as Okta's SCIM 2.0 documentation shows the requests."""

from __future__ import annotations

PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


async def test_okta_cycle(scim):
    # connection test and lookup before create: startIndex/count and a random userName
    found = await scim.json("GET", "/Users?filter=userName%20eq%20%22test.user%40okta.local%22&startIndex=1&count=100")
    assert found["totalResults"] == 0 and found["Resources"] == []
    user = await scim.json(
        "POST",
        "/Users",
        {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "test.user@okta.local",
            "name": {"givenName": "Test", "familyName": "User"},
            "emails": [{"primary": True, "value": "test.user@okta.local", "type": "work"}],
            "displayName": "Test User",
            "locale": "en-US",
            "externalId": "00ujl29u0le5T6Aj10h7",
            "groups": [],
            "password": "1mz050nq",
            "active": True,
        },
        expect=201,
    )
    uid = user["id"]
    assert "password" not in user
    # a duplicate userName is a 409 uniqueness error
    duplicate = await scim.json("POST", "/Users", {"userName": "TEST.USER@okta.local"}, expect=409)
    assert duplicate["scimType"] == "uniqueness"
    # profile update: Okta PUTs the whole resource as it read it
    fetched = await scim.json("GET", f"/Users/{uid}")
    fetched["name"]["givenName"] = "Another"
    updated = await scim.json("PUT", f"/Users/{uid}", fetched)
    assert updated["name"]["givenName"] == "Another" and updated["groups"] == []
    # deactivate and reactivate with PATCH replace of active
    await scim.json(
        "PATCH", f"/Users/{uid}", {"schemas": [PATCH], "Operations": [{"op": "replace", "value": {"active": False}}]}
    )
    assert (await scim.json("GET", f"/Users/{uid}"))["active"] is False
    await scim.json(
        "PATCH", f"/Users/{uid}", {"schemas": [PATCH], "Operations": [{"op": "replace", "value": {"active": True}}]}
    )

    # group push: create empty, rename with id in the body, add and remove members
    group = await scim.json(
        "POST",
        "/Groups",
        {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": "Test SCIMv2",
            "members": [],
        },
        expect=201,
    )
    gid = group["id"]
    assert (await scim.json("POST", "/Groups", {"displayName": "test scimv2"}, expect=409))["scimType"] == "uniqueness"
    await scim.json(
        "PATCH",
        f"/Groups/{gid}",
        {
            "schemas": [PATCH],
            "Operations": [
                {"op": "add", "path": "members", "value": [{"value": uid, "display": "test.user@okta.local"}]},
            ],
        },
        expect=204,
    )
    await scim.json(
        "PATCH",
        f"/Groups/{gid}",
        {
            "schemas": [PATCH],
            "Operations": [
                {"op": "replace", "value": {"id": gid, "displayName": "Test SCIMv2 renamed"}},
            ],
        },
        expect=204,
    )
    group = await scim.json("GET", f"/Groups/{gid}")
    assert group["displayName"] == "Test SCIMv2 renamed" and [m["value"] for m in group["members"]] == [uid]
    found = await scim.json(
        "GET", "/Groups?filter=displayName%20eq%20%22Test%20SCIMv2%20renamed%22&startIndex=1&count=100"
    )
    assert [g["id"] for g in found["Resources"]] == [gid]
    await scim.json(
        "PATCH",
        f"/Groups/{gid}",
        {
            "schemas": [PATCH],
            "Operations": [
                {"op": "remove", "path": f'members[value eq "{uid}"]'},
            ],
        },
        expect=204,
    )
    # empty-group push: replace members with an empty list
    await scim.json(
        "PATCH",
        f"/Groups/{gid}",
        {
            "schemas": [PATCH],
            "Operations": [
                {"op": "add", "path": "members", "value": [{"value": uid}]},
                {"op": "replace", "path": "members", "value": []},
            ],
        },
        expect=204,
    )
    assert (await scim.json("GET", f"/Groups/{gid}"))["members"] == []
    await scim.json("DELETE", f"/Groups/{gid}", expect=204)
    # Okta never deletes users: the deactivated user stays readable
    assert (await scim.json("GET", f"/Users/{uid}"))["userName"] == "test.user@okta.local"
