"""Groups and membership rows through HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

from helpers import patch_op, stored_rows

from scimhost.http.keys import HOST


async def member_ids(scim, group_id: str) -> list[str]:
    group = await scim.json("GET", f"/Groups/{group_id}")
    return sorted(m["value"] for m in group.get("members", []))


async def test_group_with_members_and_derived_user_groups(scim):
    alice = await scim.create_user("alice", displayName="Alice A")
    bob = await scim.create_user("bob")
    group = await scim.create_group("Eng", [alice["id"], bob["id"]])
    assert {m["value"]: m["display"] for m in group["members"]} == {alice["id"]: "Alice A", bob["id"]: "bob"}
    for member in group["members"]:
        assert member["type"] == "User"
        assert member["$ref"].endswith(f"/source/scim/demo/v2/Users/{member['value']}")
    alice_now = await scim.json("GET", f"/Users/{alice['id']}")
    assert alice_now["groups"] == [
        {
            "value": group["id"],
            "display": "Eng",
            "$ref": f"https://scim.example.test/source/scim/demo/v2/Groups/{group['id']}",
            "type": "direct",
        }
    ]


async def test_nested_group_member(scim):
    inner = await scim.create_group("Inner")
    assert inner["members"] == [] and await scim.json("GET", f"/Groups/{inner['id']}") == inner
    outer = await scim.create_group("Outer", [inner["id"]])
    assert outer["members"][0]["type"] == "Group"
    assert outer["members"][0]["$ref"].endswith(f"/Groups/{inner['id']}")


async def test_member_must_exist_in_the_same_source(scim, client, issue_token):
    from helpers import ScimClient

    other = ScimClient(client, "other", await issue_token("other"))
    stranger = await other.create_user("stranger")
    body = await scim.json("POST", "/Groups", {"displayName": "G", "members": [{"value": stranger["id"]}]}, expect=400)
    assert body["scimType"] == "invalidValue"
    body = await scim.json("POST", "/Groups", {"displayName": "G", "members": [{"value": "nope"}]}, expect=400)
    assert body["scimType"] == "invalidValue"
    assert (await scim.json("GET", "/Groups"))["totalResults"] == 0
    group = await scim.create_group("G")
    await scim.json(
        "PATCH",
        f"/Groups/{group['id']}",
        patch_op({"op": "add", "path": "members", "value": [{"value": "nope"}]}),
        expect=400,
    )
    await scim.json(
        "PATCH",
        f"/Groups/{group['id']}",
        patch_op({"op": "add", "path": "members", "value": [{"value": group["id"]}]}),
        expect=400,
    )
    own = await scim.create_user("own")
    before = await scim.json("GET", f"/Groups/{group['id']}")
    events = await client.app[HOST].storage.list_events("demo", limit=1000)
    body = await scim.json(
        "PATCH",
        f"/Groups/{group['id']}",
        patch_op({"op": "add", "path": "members", "value": [{"value": own["id"]}, {"value": stranger["id"]}]}),
        expect=400,
    )
    assert stranger["id"] in body["detail"] and own["id"] not in body["detail"]  # the one that is not
    assert await member_ids(scim, group["id"]) == []  # nor the valid one: all or nothing
    assert (await scim.json("GET", f"/Groups/{group['id']}"))["meta"] == before["meta"]
    assert await client.app[HOST].storage.list_events("demo", limit=1000) == events


async def test_display_name_is_unique(scim):
    await scim.create_group("Eng")
    body = await scim.json("POST", "/Groups", {"displayName": "ENG"}, expect=409)
    assert body["scimType"] == "uniqueness"


async def test_member_patch_forms(scim):
    users = [await scim.create_user(f"u{i}") for i in range(4)]
    ids = [u["id"] for u in users]
    group = await scim.create_group("G", ids[:1])
    gid = group["id"]

    response = await scim.request(
        "PATCH",
        f"/Groups/{gid}",
        patch_op({"op": "Add", "path": "members", "value": [{"value": ids[1]}, {"value": ids[2]}]}),
    )
    assert response.status == 204 and response.headers["ETag"] == 'W/"2"'
    assert await member_ids(scim, gid) == sorted(ids[:3])

    # adding a member already present and removing one absent both succeed
    await scim.json(
        "PATCH", f"/Groups/{gid}", patch_op({"op": "add", "path": "members", "value": [{"value": ids[0]}]}), expect=204
    )
    await scim.json(
        "PATCH", f"/Groups/{gid}", patch_op({"op": "remove", "path": f'members[value eq "{ids[3]}"]'}), expect=204
    )
    assert await member_ids(scim, gid) == sorted(ids[:3])

    # Okta: remove by filter; Entra: remove with a value list removes only those listed
    await scim.json(
        "PATCH", f"/Groups/{gid}", patch_op({"op": "remove", "path": f'members[value eq "{ids[0]}"]'}), expect=204
    )
    await scim.json(
        "PATCH",
        f"/Groups/{gid}",
        patch_op({"op": "Remove", "path": "members", "value": [{"value": ids[1]}]}),
        expect=204,
    )
    assert await member_ids(scim, gid) == [ids[2]]

    # path-less add, replace with a list, replace with an empty list
    await scim.json(
        "PATCH", f"/Groups/{gid}", patch_op({"op": "add", "value": {"members": [{"value": ids[3]}]}}), expect=204
    )
    assert await member_ids(scim, gid) == sorted([ids[2], ids[3]])
    await scim.json(
        "PATCH",
        f"/Groups/{gid}",
        patch_op({"op": "replace", "path": "members", "value": [{"value": ids[0]}]}),
        expect=204,
    )
    assert await member_ids(scim, gid) == [ids[0]]
    await scim.json("PATCH", f"/Groups/{gid}", patch_op({"op": "replace", "path": "members", "value": []}), expect=204)
    assert await member_ids(scim, gid) == []
    await scim.json(
        "PATCH",
        f"/Groups/{gid}",
        patch_op({"op": "add", "path": "members", "value": [{"value": ids[0]}, {"value": ids[1]}]}),
        expect=204,
    )
    await scim.json("PATCH", f"/Groups/{gid}", patch_op({"op": "remove", "path": "members"}), expect=204)
    assert await member_ids(scim, gid) == []


async def test_rename_with_id_keeps_members(scim):
    user = await scim.create_user("u")
    group = await scim.create_group("Old", [user["id"]])
    await scim.json(
        "PATCH",
        f"/Groups/{group['id']}",
        patch_op({"op": "replace", "value": {"id": group["id"], "displayName": "New"}}),
        expect=204,
    )
    now = await scim.json("GET", f"/Groups/{group['id']}")
    assert now["displayName"] == "New" and [m["value"] for m in now["members"]] == [user["id"]]
    # renaming to the same name succeeds too
    await scim.json(
        "PATCH",
        f"/Groups/{group['id']}",
        patch_op({"op": "replace", "path": "displayName", "value": "New"}),
        expect=204,
    )


async def test_put_replaces_membership(scim):
    a, b, c = [await scim.create_user(n) for n in "abc"]
    group = await scim.create_group("G", [a["id"], b["id"]])
    replaced = await scim.json(
        "PUT", f"/Groups/{group['id']}", {**group, "members": [{"value": b["id"]}, {"value": c["id"], "$ref": None}]}
    )
    assert sorted(m["value"] for m in replaced["members"]) == sorted([b["id"], c["id"]])


async def test_replacing_members_touches_only_the_difference(scim, client):
    users = [await scim.create_user(f"u{i}") for i in range(6)]
    ids = [u["id"] for u in users]
    group = await scim.create_group("G", ids[:4])
    storage = client.app[HOST].storage
    read = "SELECT id, member_id FROM scimhost_member WHERE group_id = {} ORDER BY id"
    before = {row["member_id"]: row["id"] for row in await stored_rows(storage, read, group["id"])}
    wanted = [ids[5], ids[2], ids[1], ids[4]]
    await scim.json(
        "PATCH",
        f"/Groups/{group['id']}",
        patch_op({"op": "replace", "path": "members", "value": [{"value": i} for i in wanted]}),
        expect=204,
    )
    after = [(row["member_id"], row["id"]) for row in await stored_rows(storage, read, group["id"])]
    # Members that stay keep their rows (and their place); new ones follow, in the order sent.
    assert after[:2] == [(ids[1], before[ids[1]]), (ids[2], before[ids[2]])]
    assert [member for member, _ in after[2:]] == [ids[5], ids[4]]
    # An unknown member in the list refuses the whole replacement and changes nothing.
    error = await scim.json(
        "PUT",
        f"/Groups/{group['id']}",
        {"displayName": "G", "members": [{"value": ids[0]}, {"value": "no-such-user"}]},
        expect=400,
    )
    assert error["scimType"] == "invalidValue"
    assert [(row["member_id"], row["id"]) for row in await stored_rows(storage, read, group["id"])] == after


async def test_deleting_a_user_removes_it_from_its_groups(scim):
    a, b = await scim.create_user("a"), await scim.create_user("b")
    group = await scim.create_group("G", [a["id"], b["id"]])
    await scim.json("DELETE", f"/Users/{a['id']}", expect=204)
    assert await member_ids(scim, group["id"]) == [b["id"]]


async def test_excluded_members_are_not_read(scim, client, monkeypatch):
    user = await scim.create_user("u")
    group = await scim.create_group("G", [user["id"]])
    storage = client.app[HOST].storage
    statements = []
    original_rows = storage.database.rows

    async def spy_rows(query):
        statements.append(query.sql)
        return await original_rows(query)

    monkeypatch.setattr(storage.database, "rows", spy_rows)
    body = await scim.json("GET", f"/Groups/{group['id']}?excludedAttributes=members")
    assert "members" not in body and body["displayName"] == "G"
    listing = await scim.json("GET", "/Groups?excludedAttributes=members")
    assert "members" not in listing["Resources"][0]
    assert statements and not [text for text in statements if "scimhost_member" in text]
    full = await scim.json("GET", f"/Groups/{group['id']}")
    assert [m["value"] for m in full["members"]] == [user["id"]]
    assert [text for text in statements if "scimhost_member" in text]


async def test_big_group_reads_are_streamed_in_batches(scim, client, monkeypatch):
    users = [await scim.create_user(f"user{i}") for i in range(7)]
    group = await scim.create_group("Big", [u["id"] for u in users])
    storage = client.app[HOST].storage
    original = storage.iter_members
    monkeypatch.setattr(storage, "iter_members", lambda source, group_id, **kw: original(source, group_id, batch=3))
    response = await scim.request("GET", f"/Groups/{group['id']}")
    assert response.headers["ETag"] == group["meta"]["version"]
    body = await response.json(content_type=None)
    assert [m["value"] for m in body["members"]] == [u["id"] for u in users]
    assert body["members"][0]["$ref"].endswith(f"/Users/{users[0]['id']}") and body["members"][0]["display"] == "user0"
    assert {k: v for k, v in body.items() if k != "members"} == {k: v for k, v in group.items() if k != "members"}
    only = await scim.json("GET", f"/Groups/{group['id']}?attributes=members.value")
    assert only["members"][0] == {"value": users[0]["id"]} and "displayName" not in only
    response = await scim.request("GET", f"/Groups/{group['id']}", headers={"If-None-Match": group["meta"]["version"]})
    assert response.status == 304
    empty = await scim.create_group("Empty")
    assert (await scim.json("GET", f"/Groups/{empty['id']}"))["members"] == []
    await scim.json("GET", "/Groups/nope", expect=404)


async def test_concurrent_member_patches_lose_nothing(scim):
    users = [await scim.create_user(f"user{i}") for i in range(20)]
    group = await scim.create_group("G")

    async def add(user_id: str):
        await scim.json(
            "PATCH",
            f"/Groups/{group['id']}",
            patch_op({"op": "add", "path": "members", "value": [{"value": user_id}]}),
            expect=204,
        )

    await asyncio.gather(*(add(u["id"]) for u in users))
    assert await member_ids(scim, group["id"]) == sorted(u["id"] for u in users)
    # and a rename racing with member changes loses neither
    await asyncio.gather(
        scim.json(
            "PATCH",
            f"/Groups/{group['id']}",
            patch_op({"op": "replace", "path": "displayName", "value": "Renamed"}),
            expect=204,
        ),
        *(
            scim.json(
                "PATCH",
                f"/Groups/{group['id']}",
                patch_op({"op": "remove", "path": f'members[value eq "{u["id"]}"]'}),
                expect=204,
            )
            for u in users[:10]
        ),
    )
    final = await scim.json("GET", f"/Groups/{group['id']}")
    assert final["displayName"] == "Renamed"
    assert sorted(m["value"] for m in final["members"]) == sorted(u["id"] for u in users[10:])


async def test_group_delete_and_unsupported_methods(scim):
    user = await scim.create_user("u")
    group = await scim.create_group("G", [user["id"]])
    await scim.json("DELETE", f"/Groups/{group['id']}", expect=204)
    await scim.json("GET", f"/Groups/{group['id']}", expect=404)
    assert (await scim.json("GET", f"/Users/{user['id']}"))["groups"] == []
    response = await scim.request("DELETE", "/Groups")
    assert response.status == 405 and "POST" in response.headers["Allow"]
    response = await scim.request("POST", f"/Users/{user['id']}", {"userName": "x"})
    assert response.status == 405
    assert (await response.json(content_type=None))["status"] == "405"


async def test_membership_value_filters_match_one_membership_row(scim):
    """`members[value eq "id"]`, `members[type eq "User" and value eq "id"]` and, on Users,
    `groups[value eq "id"]` are filters real clients send (both terms on the same member)."""
    from urllib.parse import quote

    alice = await scim.create_user("alice")
    bob = await scim.create_user("bob")
    inner = await scim.create_group("Inner", [alice["id"]])
    outer = await scim.create_group("Outer", [inner["id"], bob["id"]])

    async def groups(text: str) -> set[str]:
        body = await scim.json("GET", "/Groups?filter=" + quote(text))
        return {g["displayName"] for g in body["Resources"]}

    assert await groups(f'members[value eq "{alice["id"]}"]') == {"Inner"}
    assert await groups(f'members[type eq "User" and value eq "{bob["id"]}"]') == {"Outer"}
    # Outer has a Group member and the member bob, but bob is no Group: no single row matches.
    assert await groups(f'members[type eq "Group" and value eq "{bob["id"]}"]') == set()
    assert await groups('members[type eq "group"]') == {"Outer"}
    assert await groups(f'members[value eq "{alice["id"]}" or value eq "{bob["id"]}"]') == {"Inner", "Outer"}
    assert await groups('not (members[type eq "Group"])') == {"Inner"}
    users = await scim.json("GET", "/Users?filter=" + quote(f'groups[value eq "{outer["id"]}"]'))
    assert [u["userName"] for u in users["Resources"]] == ["bob"]
    response = await scim.request("GET", "/Groups?filter=" + quote('members[display eq "alice"]'))
    assert response.status == 400


async def test_member_filters_by_type_and_what_rows_cannot_answer(scim):
    from urllib.parse import quote

    alice = await scim.create_user("alice")
    inner = await scim.create_group("Inner", [alice["id"]])
    await scim.create_group("Outer", [inner["id"]])
    body = await scim.json("GET", "/Groups?filter=" + quote('members.type eq "User"'))
    assert [g["displayName"] for g in body["Resources"]] == ["Inner"]
    for text in (
        'members.display eq "alice"',
        "members.$ref pr",
        'groups.display eq "Inner"',
        'groups.type eq "direct"',
    ):
        endpoint = "/Users" if text.startswith("groups") else "/Groups"
        response = await scim.request("GET", f"{endpoint}?filter=" + quote(text))
        assert response.status == 400, text
        assert (await response.json(content_type=None))["scimType"] == "invalidFilter"
    for sort_by in ("members.type", "members.value", "members"):
        response = await scim.request("GET", f"/Groups?sortBy={sort_by}")
        assert response.status == 400, sort_by
