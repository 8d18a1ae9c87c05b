"""Users through HTTP: create, read, replace, patch, delete, ETags, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from helpers import patch_op, stored_rows

from scimhost.http.keys import HOST
from scimhost.passwords import verify_password

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


async def test_create_returns_201_with_location_etag_and_meta(scim):
    response = await scim.request("POST", "/Users", {"userName": "bjensen", "name": {"givenName": "Barbara"}})
    assert response.status == 201
    assert response.headers["Content-Type"].startswith("application/scim+json")
    body = await response.json(content_type=None)
    location = f"https://scim.example.test/source/scim/demo/v2/Users/{body['id']}"
    assert response.headers["Location"] == location == body["meta"]["location"]
    assert response.headers["ETag"] == body["meta"]["version"] == 'W/"1"'
    assert body["meta"]["resourceType"] == "User"
    assert body["meta"]["created"] == body["meta"]["lastModified"]
    assert body["schemas"] == ["urn:ietf:params:scim:schemas:core:2.0:User"]
    assert body["groups"] == []
    assert await scim.json("GET", f"/Users/{body['id']}") == body


async def test_read_only_input_is_ignored_and_undeclared_input_kept(scim):
    user = await scim.create_user(
        "bjensen",
        id="chosen-by-client",
        meta={"version": 'W/"99"'},
        groups=[{"value": "x"}],
        favouriteColour="green",
        nickName=None,
        schemas=["urn:ietf:params:scim:schemas:core:2.0:User", "urn:example:unknown"],
        **{"urn:example:unknown": {"a": 1}},
    )
    assert user["id"] != "chosen-by-client"
    assert user["meta"]["version"] == 'W/"1"'
    assert user["groups"] == []
    assert "nickName" not in user
    # Undeclared attributes are kept as sent (the default `unknown_attributes = "keep"`).
    assert user["favouriteColour"] == "green" and user["urn:example:unknown"] == {"a": 1}
    assert user["schemas"] == ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:example:unknown"]


async def test_attribute_names_are_case_insensitive_and_stored_canonically(scim):
    user = await scim.create_user("x", **{"NAME": {"GIVENNAME": "Bo"}, "Emails": [{"VALUE": "b@x", "Type": "WORK"}]})
    assert user["name"] == {"givenName": "Bo"}
    assert user["emails"] == [{"value": "b@x", "type": "work"}]


async def test_string_booleans_are_accepted(scim):
    user = await scim.create_user("x", active="False", emails=[{"value": "a@x", "primary": "True"}])
    assert user["active"] is False
    assert user["emails"][0]["primary"] is True


async def test_password_is_hashed_and_never_returned(scim, client):
    user = await scim.create_user("x", password="S3cret!pass")
    assert "password" not in user
    fetched = await scim.json("GET", f"/Users/{user['id']}?attributes=password,userName")
    assert "password" not in fetched
    storage = client.app[HOST].storage
    rows = await stored_rows(storage, "SELECT password_hash, data FROM scimhost_resource WHERE id = {}", user["id"])
    assert "S3cret" not in rows[0]["data"] and "S3cret" not in rows[0]["password_hash"]
    assert verify_password("S3cret!pass", rows[0]["password_hash"])
    # A PUT without a password keeps it; a PATCH sets a new one.
    await scim.json("PUT", f"/Users/{user['id']}", {"userName": "x"})
    rows = await stored_rows(storage, "SELECT password_hash FROM scimhost_resource WHERE id = {}", user["id"])
    assert verify_password("S3cret!pass", rows[0]["password_hash"])
    await scim.json("PATCH", f"/Users/{user['id']}", patch_op({"op": "replace", "path": "password", "value": "n3w"}))
    rows = await stored_rows(storage, "SELECT password_hash FROM scimhost_resource WHERE id = {}", user["id"])
    assert verify_password("n3w", rows[0]["password_hash"])


async def test_user_name_is_unique_case_insensitively(scim):
    await scim.create_user("BJensen")
    body = await scim.json("POST", "/Users", {"userName": "bjensen"}, expect=409)
    assert body["scimType"] == "uniqueness" and body["status"] == "409"
    listing = await scim.json("GET", "/Users")
    assert listing["totalResults"] == 1


async def test_user_names_are_unique_per_source_only(scim, client, issue_token):
    from helpers import ScimClient

    other = ScimClient(client, "other", await issue_token("other"))
    await scim.create_user("same")
    await other.create_user("same")
    assert (await other.json("GET", "/Users"))["totalResults"] == 1


async def test_resources_of_one_source_are_invisible_to_another(scim, client, issue_token):
    from helpers import ScimClient

    other = ScimClient(client, "other", await issue_token("other"))
    user = await scim.create_user("mine")
    await other.json("GET", f"/Users/{user['id']}", expect=404)
    await other.json("DELETE", f"/Users/{user['id']}", expect=404)
    await other.json(
        "PATCH", f"/Users/{user['id']}", patch_op({"op": "replace", "path": "title", "value": "x"}), expect=404
    )
    assert (await scim.json("GET", f"/Users/{user['id']}"))["userName"] == "mine"


async def test_required_user_name(scim):
    body = await scim.json("POST", "/Users", {"name": {"givenName": "x"}}, expect=400)
    assert body["scimType"] == "invalidValue" and "userName" in body["detail"]


async def test_put_replaces_and_ignores_echoed_read_only_attributes(scim):
    user = await scim.create_user("bjensen", title="Boss", name={"givenName": "B"})
    echoed = {**user, "title": None, "displayName": "Babs Jensen"}
    replaced = await scim.json("PUT", f"/Users/{user['id']}", echoed)
    assert "title" not in replaced
    assert replaced["displayName"] == "Babs Jensen" and replaced["name"] == {"givenName": "B"}
    assert replaced["meta"]["version"] == 'W/"2"'
    assert replaced["meta"]["created"] == user["meta"]["created"]


async def test_put_to_a_taken_user_name_is_409_and_changes_nothing(scim):
    await scim.create_user("alice")
    bob = await scim.create_user("bob")
    body = await scim.json("PUT", f"/Users/{bob['id']}", {"userName": "ALICE"}, expect=409)
    assert body["scimType"] == "uniqueness"
    assert await scim.json("GET", f"/Users/{bob['id']}") == bob


async def test_renaming_frees_the_old_user_name(scim):
    user = await scim.create_user("old")
    await scim.json("PATCH", f"/Users/{user['id']}", patch_op({"op": "replace", "path": "userName", "value": "new"}))
    await scim.create_user("old")


async def test_patch_operations(scim):
    user = await scim.create_user(
        "bjensen", emails=[{"value": "w@x", "type": "work"}, {"value": "h@x", "type": "home"}], active=True
    )
    uid = user["id"]
    patched = await scim.json(
        "PATCH",
        f"/Users/{uid}",
        patch_op(
            {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "new@x"},
            {"op": "Add", "path": "name.familyName", "value": "Jensen"},
            {"op": "remove", "path": 'emails[type eq "home"]'},
            {"op": "replace", "value": {"active": "False", f"{ENTERPRISE}:department": "R&D"}},
        ),
    )
    assert patched["emails"] == [{"value": "new@x", "type": "work"}]
    assert patched["name"] == {"familyName": "Jensen"}
    assert patched["active"] is False
    assert patched[ENTERPRISE] == {"department": "R&D"}
    assert ENTERPRISE in patched["schemas"]
    assert patched["meta"]["version"] == 'W/"2"'
    assert await scim.json("GET", f"/Users/{uid}") == patched


async def test_patch_that_fails_midway_changes_nothing(scim):
    user = await scim.create_user("bjensen", title="Boss")
    body = await scim.json(
        "PATCH",
        f"/Users/{user['id']}",
        patch_op(
            {"op": "replace", "path": "title", "value": "Intern"},
            {"op": "replace", "path": "name.nosuch", "value": "x"},
        ),
        expect=400,
    )
    assert body["scimType"] == "invalidPath" and "Operations[1]" in body["detail"]
    assert await scim.json("GET", f"/Users/{user['id']}") == user


@pytest.mark.parametrize(
    "operation, scim_type",
    [
        ({"op": "remove"}, "noTarget"),
        ({"op": "replace", "path": 'emails[type eq "home"]'}, "invalidValue"),
        ({"op": "replace", "path": "id", "value": "other-id"}, "mutability"),
        ({"op": "replace", "path": "meta.created", "value": "2020-01-01T00:00:00Z"}, "mutability"),
        ({"op": "replace", "path": "emails[type eq]", "value": "x"}, "invalidFilter"),
        ({"op": "replace", "path": "name..x", "value": "x"}, "invalidPath"),
        ({"op": "remove", "path": 'emails[type eq "home"]'}, "noTarget"),
        ({"op": "move", "path": "title", "value": "x"}, "invalidSyntax"),
        ({"op": "replace", "path": "active", "value": "maybe"}, "invalidValue"),
        (
            {
                "op": "replace",
                "path": "emails",
                "value": [{"value": "a", "primary": True}, {"value": "b", "primary": True}],
            },
            "invalidValue",
        ),
        ({"op": "replace", "path": "groups", "value": []}, "mutability"),
    ],
)
async def test_patch_errors_have_the_rfc_scim_type(scim, operation, scim_type):
    user = await scim.create_user("bjensen", emails=[{"value": "w@x", "type": "work"}])
    body = await scim.json("PATCH", f"/Users/{user['id']}", patch_op(operation), expect=400)
    assert body["scimType"] == scim_type, body
    assert await scim.json("GET", f"/Users/{user['id']}") == user


async def test_patch_echoing_the_unchanged_id_is_accepted(scim):
    user = await scim.create_user("bjensen")
    patched = await scim.json(
        "PATCH", f"/Users/{user['id']}", patch_op({"op": "replace", "path": "id", "value": user["id"]})
    )
    assert patched["meta"]["version"] == user["meta"]["version"]  # nothing changed: no new version


async def test_etags_if_match_and_if_none_match(scim):
    user = await scim.create_user("bjensen")
    uid, tag = user["id"], user["meta"]["version"]
    response = await scim.request("GET", f"/Users/{uid}", headers={"If-None-Match": tag})
    assert response.status == 304 and response.headers["ETag"] == tag
    assert (await scim.request("GET", f"/Users/{uid}", headers={"If-None-Match": 'W/"7"'})).status == 200

    stale = {"If-Match": 'W/"7"'}
    body = await scim.json("PUT", f"/Users/{uid}", {"userName": "x"}, headers=stale, expect=412)
    assert body["status"] == "412"
    await scim.json(
        "PATCH", f"/Users/{uid}", patch_op({"op": "add", "path": "title", "value": "t"}), headers=stale, expect=412
    )
    await scim.json("DELETE", f"/Users/{uid}", headers=stale, expect=412)
    assert await scim.json("GET", f"/Users/{uid}") == user

    updated = await scim.json("PUT", f"/Users/{uid}", {"userName": "x"}, headers={"If-Match": tag})
    assert updated["meta"]["version"] != tag
    await scim.json("DELETE", f"/Users/{uid}", headers={"If-Match": updated["meta"]["version"]}, expect=204)


async def test_delete_then_404(scim):
    user = await scim.create_user("bjensen")
    response = await scim.request("DELETE", f"/Users/{user['id']}")
    assert response.status == 204
    for method in ("GET", "DELETE"):
        body = await scim.json(method, f"/Users/{user['id']}", expect=404)
        assert body["status"] == "404"
    await scim.json("PUT", f"/Users/{user['id']}", {"userName": "x"}, expect=404)
    await scim.create_user("bjensen")  # the userName is free again


async def test_manager_as_bare_string_is_returned_as_object(scim):
    manager = await scim.create_user("boss")
    user = await scim.create_user("worker", **{ENTERPRISE: {"manager": manager["id"]}})
    assert user[ENTERPRISE]["manager"] == {"value": manager["id"]}


async def test_projection_attributes_and_excluded(scim):
    user = await scim.create_user(
        "bjensen",
        name={"givenName": "B", "familyName": "J"},
        title="T",
        **{ENTERPRISE: {"department": "D", "costCenter": "C"}},
    )
    uid = user["id"]
    some = await scim.json("GET", f"/Users/{uid}?attributes=name.givenName,{ENTERPRISE}:department")
    assert set(some) == {"schemas", "id", "name", ENTERPRISE}
    assert some["name"] == {"givenName": "B"} and some[ENTERPRISE] == {"department": "D"}
    fewer = await scim.json("GET", f"/Users/{uid}?excludedAttributes=title,name.familyName,meta")
    assert "title" not in fewer and "meta" not in fewer and fewer["name"] == {"givenName": "B"}
    assert fewer["id"] == uid  # returned: always


async def test_list_pages_in_creation_order(scim):
    for index in range(5):
        await scim.create_user(f"user{index}")
    page = await scim.json("GET", "/Users?startIndex=2&count=2")
    assert page["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:ListResponse"]
    assert page["totalResults"] == 5 and page["startIndex"] == 2 and page["itemsPerPage"] == 2
    assert [u["userName"] for u in page["Resources"]] == ["user1", "user2"]
    assert (await scim.json("GET", "/Users?count=0"))["Resources"] == []
    assert (await scim.json("GET", "/Users?startIndex=0&count=1"))["startIndex"] == 1
    assert (await scim.json("GET", "/Users?startIndex=99"))["Resources"] == []


@pytest.mark.parametrize("op", ["replace", "Replace", "add"])
async def test_replacing_a_complex_attribute_keeps_sub_attributes_not_given(scim, op):
    """RFC 7644 §3.5.2.3: replace of a complex attribute changes only the sub-attributes given,
    by path, path-less, and in an extension object."""
    enterprise = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
    user = await scim.create_user(
        "merge",
        name={"givenName": "Barbara", "familyName": "Jensen"},
        **{enterprise: {"department": "Sales", "costCenter": "CC1"}},
    )
    patched = await scim.json(
        "PATCH", f"/Users/{user['id']}", patch_op({"op": op, "path": "name", "value": {"givenName": "qwer"}})
    )
    assert patched["name"] == {"givenName": "qwer", "familyName": "Jensen"}
    patched = await scim.json(
        "PATCH", f"/Users/{user['id']}", patch_op({"op": op, "value": {"name": {"familyName": "J"}}})
    )
    assert patched["name"] == {"givenName": "qwer", "familyName": "J"}
    patched = await scim.json(
        "PATCH", f"/Users/{user['id']}", patch_op({"op": op, "path": enterprise, "value": {"department": "Ops"}})
    )
    assert patched[enterprise] == {"department": "Ops", "costCenter": "CC1"}
    patched = await scim.json(
        "PATCH", f"/Users/{user['id']}", patch_op({"op": op, "value": {enterprise: {"costCenter": "CC2"}}})
    )
    assert patched[enterprise] == {"department": "Ops", "costCenter": "CC2"}
