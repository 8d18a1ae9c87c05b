"""Microsoft Entra ID provisioning cycles, in its default PATCH style and with the
`aadOptscim062020` feature flag, as its public documentation shows the requests."""

from __future__ import annotations

import uuid

ENT = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def ops(*operations):
    return {"schemas": [PATCH], "Operations": list(operations)}


def entra_user(user_name: str, external_id: str) -> dict:
    return {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENT],
        "externalId": external_id,
        "userName": user_name,
        "active": True,
        "displayName": "Jeff Bezos",
        "emails": [{"primary": True, "type": "work", "value": user_name}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": "Jeff Bezos", "familyName": "Bezos", "givenName": "Jeff"},
        "roles": [],
        ENT: {"department": "Retail", "employeeNumber": "1"},
    }


async def connection_test(scim):
    # Entra probes with a random userName, spaces as %20: an empty list, never a 404.
    probe = f"userName%20eq%20%22{uuid.uuid4()}%22"
    found = await scim.json("GET", f"/Users?filter={probe}")
    assert found["totalResults"] == 0 and found["Resources"] == []


async def test_entra_default_cycle(scim):
    await connection_test(scim)
    user = await scim.json("POST", "/Users", entra_user("Test_User_ab6490ee@testuser.com", "0a21f0f2"), expect=201)
    uid = user["id"]
    # lookups by userName and externalId
    found = await scim.json("GET", "/Users?filter=userName+eq+%22test_user_ab6490ee%40testuser.com%22")
    assert [u["id"] for u in found["Resources"]] == [uid]
    found = await scim.json("GET", "/Users?filter=externalId%20eq%20%220a21f0f2%22&")
    assert [u["id"] for u in found["Resources"]] == [uid]
    # profile update: capitalised ops, value paths, URN paths, manager as a bare id, string booleans
    manager = await scim.create_user("boss@testuser.com")
    await scim.json(
        "PATCH",
        f"/Users/{uid}",
        ops(
            {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "updated@testuser.com"},
            {"op": "Add", "path": 'phoneNumbers[type eq "mobile"].value', "value": "+1 555 0100"},
            {"op": "Replace", "path": "name.familyName", "value": "updatedFamilyName"},
            {"op": "Add", "path": f"{ENT}:manager", "value": manager["id"]},
            {"op": "Replace", "path": f"{ENT}:department", "value": "Devices"},
        ),
    )
    # deactivate with a string boolean; the user stays readable by id and by filter
    await scim.json("PATCH", f"/Users/{uid}", ops({"op": "Replace", "path": "active", "value": "False"}))
    user = await scim.json("GET", f"/Users/{uid}")
    assert user["active"] is False
    assert user["emails"] == [{"primary": True, "type": "work", "value": "updated@testuser.com"}]
    assert user["phoneNumbers"] == [{"type": "mobile", "value": "+1 555 0100"}]
    assert user[ENT]["manager"] == {"value": manager["id"]} and user[ENT]["department"] == "Devices"
    found = await scim.json("GET", "/Users?filter=active%20eq%20false")
    assert uid in [u["id"] for u in found["Resources"]]
    await scim.json("PATCH", f"/Users/{uid}", ops({"op": "Replace", "path": "active", "value": "True"}))

    # groups: create, look up without members, add and remove a member
    group = await scim.json(
        "POST",
        "/Groups",
        {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "externalId": "8aa1a0c0",
            "displayName": "Group1936",
            "meta": {"resourceType": "Group"},
        },
        expect=201,
    )
    gid = group["id"]
    found = await scim.json("GET", "/Groups?excludedAttributes=members&filter=displayName%20eq%20%22Group1936%22")
    assert [g["id"] for g in found["Resources"]] == [gid] and "members" not in found["Resources"][0]
    await scim.json(
        "PATCH", f"/Groups/{gid}", ops({"op": "Add", "path": "members", "value": [{"value": uid}]}), expect=204
    )
    member_filter = (
        f"/Groups?filter=id%20eq%20%22{gid}%22%20and%20members.value%20eq%20%22{uid}%22&excludedAttributes=members"
    )
    assert (await scim.json("GET", member_filter))["totalResults"] == 1
    await scim.json(
        "PATCH", f"/Groups/{gid}", ops({"op": "Remove", "path": "members", "value": [{"value": uid}]}), expect=204
    )
    assert (await scim.json("GET", member_filter))["totalResults"] == 0
    await scim.json(
        "PATCH", f"/Groups/{gid}", ops({"op": "Replace", "path": "displayName", "value": "1879db59"}), expect=204
    )
    await scim.json("DELETE", f"/Groups/{gid}", expect=204)
    await scim.json("DELETE", f"/Users/{uid}", expect=204)
    await scim.json("GET", f"/Users/{uid}", expect=404)


async def test_entra_feature_flag_cycle(scim):
    """aadOptscim062020: lower-case ops, real booleans, multi-attribute path-less replace with
    dotted and URN keys, and member removal by value filter."""
    await connection_test(scim)
    user = await scim.json("POST", "/Users", entra_user("flag@testuser.com", "ext-flag"), expect=201)
    uid = user["id"]
    await scim.json(
        "PATCH",
        f"/Users/{uid}",
        ops(
            {
                "op": "replace",
                "value": {
                    "displayName": "Flag User",
                    "name.givenName": "Flag",
                    "name.familyName": "User",
                    f"{ENT}:employeeNumber": "42",
                },
            }
        ),
    )
    user = await scim.json("GET", f"/Users/{uid}")
    assert user["displayName"] == "Flag User" and user["name"]["givenName"] == "Flag"
    assert user[ENT]["employeeNumber"] == "42"
    await scim.json("PATCH", f"/Users/{uid}", ops({"op": "replace", "path": "active", "value": False}))
    assert (await scim.json("GET", f"/Users/{uid}"))["active"] is False
    group = await scim.create_group("FlagGroup", [uid])
    await scim.json(
        "PATCH", f"/Groups/{group['id']}", ops({"op": "remove", "path": f'members[value eq "{uid}"]'}), expect=204
    )
    assert "members" not in (await scim.json("GET", f"/Groups/{group['id']}?excludedAttributes=members"))
    assert (await scim.json("GET", f"/Groups/{group['id']}"))["members"] == []
