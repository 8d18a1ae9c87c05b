"""What one source's client can send that the stores cannot hold or must not take: every such
request gets a 4xx SCIM error, on SQLite and PostgreSQL alike, and leaves the store as it was."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from helpers import patch_op, snapshot

from scimhost.scim.limits import MAX_INDEXED_BYTES


async def error_of(response) -> tuple[int, str | None]:
    body = await response.json(content_type=None)
    assert body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"], body
    return response.status, body.get("scimType")


# --- paging numbers beyond what a store takes ---------------------------------------------------

HUGE = ["18446744073709551615", "99999999999999999999999", "9223372036854775808"]


@pytest.mark.parametrize("value", HUGE)
@pytest.mark.parametrize("endpoint", ["/Users", "/Groups"])
async def test_huge_start_index_in_the_query_is_a_page_past_the_end(seeded, endpoint, value):
    scim, _, _ = seeded
    body = await scim.json("GET", f"{endpoint}?startIndex={value}")
    assert body["Resources"] == [] and body["totalResults"] == 1
    body = await scim.json("GET", f"{endpoint}?startIndex={value}&filter=id+pr&sortBy=meta.created")
    assert body["Resources"] == [] and body["totalResults"] == 1


@pytest.mark.parametrize("value", HUGE)
async def test_huge_count_in_the_query_is_capped(seeded, value):
    scim, _, _ = seeded
    body = await scim.json("GET", f"/Users?count={value}")
    assert body["totalResults"] == 1 and len(body["Resources"]) == 1


@pytest.mark.parametrize("value", HUGE + [f'"{v}"' for v in HUGE])
@pytest.mark.parametrize("path", ["/Users/.search", "/.search"])
async def test_huge_paging_numbers_in_search_bodies(seeded, path, value):
    scim, _, _ = seeded
    search = '{"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "startIndex": %s, "count": %s}'
    body = await scim.json("POST", path, (search % (value, value)).encode())
    assert body["Resources"] == []
    body = await scim.json("POST", path, (search % (1, value)).encode())
    assert len(body["Resources"]) == body["totalResults"] >= 1


@pytest.mark.parametrize("value", ["١", "１", "1_0", "0x10", "1e3"])
async def test_paging_numbers_are_ascii_digits_only(seeded, value):
    scim, _, _ = seeded
    response = await scim.request("GET", f"/Users?startIndex={value}")
    assert await error_of(response) == (400, "invalidValue")


# --- values no store can hold ------------------------------------------------------------------


@pytest.mark.parametrize(
    "document",
    [
        {"userName": "x" * (MAX_INDEXED_BYTES + 1)},
        {"userName": "ü" * (MAX_INDEXED_BYTES // 2 + 1)},  # 2 bytes each in UTF-8
        {"userName": "ok", "title": "t" * 3000},
        {"userName": "ok", "emails": [{"value": "e" * 3000 + "@x.example"}]},
        {"userName": "ok", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "d" * 3000}},
        {"userName": "ok", "externalId": "x" * 3000},
    ],
)
async def test_values_too_long_to_index_are_refused_naming_the_attribute(seeded, document):
    scim, user, _ = seeded
    before = await snapshot(scim)
    response = await scim.request("POST", "/Users", document)
    body = await response.json(content_type=None)
    assert (response.status, body["scimType"]) == (400, "invalidValue"), body
    assert "limit of a searchable value" in body["detail"]
    response = await scim.request("PUT", f"/Users/{user['id']}", document)
    assert await error_of(response) == (400, "invalidValue")
    assert await snapshot(scim) == before


async def test_longest_indexable_value_is_stored_and_found(seeded):
    scim, _, _ = seeded
    name = "n" * MAX_INDEXED_BYTES
    created = await scim.create_user(name)
    found = await scim.json("GET", f'/Users?filter=userName eq "{name}"')
    assert [r["id"] for r in found["Resources"]] == [created["id"]]


async def test_a_long_value_through_patch_is_refused(seeded):
    scim, user, _ = seeded
    before = await snapshot(scim)
    response = await scim.request(
        "PATCH", f"/Users/{user['id']}", patch_op({"op": "replace", "path": "title", "value": "t" * 5000})
    )
    assert await error_of(response) == (400, "invalidValue")
    assert await snapshot(scim) == before


@pytest.mark.parametrize(
    "path, body",
    [
        ("/Users", {"userName": "nul\u0000here"}),
        ("/Users", {"userName": "ok", "name": {"givenName": "a\u0000"}}),
        ("/Users", {"userName": "ok", "emails": [{"value": "a@x", "type": "work", "display": "\u0000"}]}),
        ("/Users", {"userName": "ok", "unknown\u0000key": "x"}),
        ("/Groups", {"displayName": "g", "members": [{"value": "\u0000"}]}),
        ("/Users/.search", {"filter": 'userName eq "\u0000"'}),
    ],
)
async def test_nul_characters_in_bodies_are_refused(seeded, path, body):
    scim, _, _ = seeded
    before = await snapshot(scim)
    response = await scim.request("POST", path, body)
    assert await error_of(response) == (400, "invalidValue")
    assert await snapshot(scim) == before


async def test_nul_characters_in_patch_and_put_are_refused(seeded):
    scim, user, group = seeded
    before = await snapshot(scim)
    for method, path, body in [
        ("PATCH", f"/Users/{user['id']}", patch_op({"op": "replace", "path": "title", "value": "a\u0000b"})),
        ("PATCH", f"/Groups/{group['id']}", patch_op({"op": "remove", "path": 'members[value eq "\u0000"]'})),
        ("PUT", f"/Users/{user['id']}", {"userName": "bjensen", "title": "\u0000"}),
    ]:
        response = await scim.request(method, path, body)
        assert await error_of(response) == (400, "invalidValue"), (method, path)
    assert await snapshot(scim) == before


@pytest.mark.parametrize(
    "query",
    ["filter=userName%20eq%20%22%00%22", "sortBy=%00", "attributes=%00", "cursor=%00", "filter=userName%00%20pr"],
)
async def test_nul_characters_in_the_query_are_refused(seeded, query):
    scim, _, _ = seeded
    response = await scim.request("GET", f"/Users?{query}")
    status, scim_type = await error_of(response)
    assert status == 400 and scim_type in ("invalidValue", "invalidFilter")


@pytest.mark.parametrize("resource_id", ["%00", "abc%00def", "%01", "x" * 300])
@pytest.mark.parametrize("endpoint", ["/Users", "/Groups"])
async def test_ids_no_store_can_hold_are_unknown(seeded, endpoint, resource_id):
    scim, _, _ = seeded
    before = await snapshot(scim)
    for method, body in [
        ("GET", None),
        ("DELETE", None),
        ("PUT", {"userName": "x", "displayName": "x"}),
        ("PATCH", patch_op({"op": "replace", "path": "displayName", "value": "x"})),
    ]:
        response = await scim.request(method, f"{endpoint}/{resource_id}", body)
        assert await error_of(response) == (404, None), method
    assert await snapshot(scim) == before


async def test_a_cursor_naming_a_nul_id_is_invalid(seeded):
    import base64

    scim, _, _ = seeded
    cursor = (
        base64.urlsafe_b64encode(orjson.dumps(["after", "2024-01-01T00:00:00+00:00", "\u0000"])).decode().rstrip("=")
    )
    response = await scim.request("GET", f"/Users?cursor={cursor}")
    assert await error_of(response) == (400, "invalidCursor")


# --- required strings --------------------------------------------------------------------------


@pytest.mark.parametrize("blank", ["", "   ", "\t\n"])
async def test_blank_required_strings_are_refused_on_create_put_and_patch(seeded, blank):
    scim, user, group = seeded
    before = await snapshot(scim)
    for method, path, body in [
        ("POST", "/Users", {"userName": blank}),
        ("POST", "/Groups", {"displayName": blank}),
        ("PUT", f"/Users/{user['id']}", {"userName": blank}),
        ("PUT", f"/Groups/{group['id']}", {"displayName": blank}),
        ("PATCH", f"/Users/{user['id']}", patch_op({"op": "replace", "path": "userName", "value": blank})),
        ("PATCH", f"/Users/{user['id']}", patch_op({"op": "replace", "value": {"userName": blank}})),
        ("PATCH", f"/Groups/{group['id']}", patch_op({"op": "replace", "path": "displayName", "value": blank})),
    ]:
        response = await scim.request(method, path, body)
        assert await error_of(response) == (400, "invalidValue"), (method, path, body)
    assert await snapshot(scim) == before


# --- versions ----------------------------------------------------------------------------------


@pytest.mark.parametrize("header", ['W/"١"', '"١"', 'W/"１"', 'W/"1_0"', 'W/" 1"'])
async def test_only_ascii_digits_form_a_version(seeded, header):
    scim, user, _ = seeded
    assert user["meta"]["version"] == 'W/"1"'
    before = await snapshot(scim)
    response = await scim.request(
        "PATCH",
        f"/Users/{user['id']}",
        patch_op({"op": "replace", "path": "title", "value": "new"}),
        headers={"If-Match": header},
    )
    assert response.status == 412
    response = await scim.request("DELETE", f"/Users/{user['id']}", headers={"If-Match": header})
    assert response.status == 412
    assert await snapshot(scim) == before


# --- races -------------------------------------------------------------------------------------


async def test_concurrent_patches_of_one_user_all_succeed(seeded):
    """Without If-Match, every PATCH re-reads and re-applies until it lands: none is refused
    (409 would tell the client the user already exists)."""
    scim, user, _ = seeded
    titles = [f"title {i}" for i in range(25)]

    async def patch(i: int):
        body = patch_op(
            {"op": "replace", "path": "title", "value": titles[i]},
            {"op": "add", "path": "emails", "value": [{"value": f"u{i}@x.example", "type": "other"}]},
        )
        response = await scim.request("PATCH", f"/Users/{user['id']}", body)
        return response.status, await response.text()

    results = await asyncio.gather(*(patch(i) for i in range(25)))
    assert [status for status, _ in results] == [200] * 25, [r for r in results if r[0] != 200][:2]
    stored = await scim.json("GET", f"/Users/{user['id']}")
    assert stored["meta"]["version"] == 'W/"26"'
    assert {e["value"] for e in stored["emails"]} >= {f"u{i}@x.example" for i in range(25)}


async def test_adding_a_member_to_a_group_being_deleted_is_404(seeded):
    scim, user, group = seeded
    others = [await scim.create_user(f"racer{i}") for i in range(10)]
    adds = [
        scim.request(
            "PATCH", f"/Groups/{group['id']}", patch_op({"op": "add", "path": "members", "value": [{"value": u["id"]}]})
        )
        for u in others
    ]
    delete = scim.request("DELETE", f"/Groups/{group['id']}")
    responses = await asyncio.gather(delete, *adds)
    assert responses[0].status == 204
    for response in responses[1:]:
        assert response.status in (204, 404), await response.text()
    for u in others:
        assert (await scim.json("GET", f"/Users/{u['id']}"))["groups"] == [] if "groups" in u else True
    response = await scim.request(
        "PATCH", f"/Groups/{group['id']}", patch_op({"op": "add", "path": "members", "value": [{"value": user["id"]}]})
    )
    assert await error_of(response) == (404, None)


# --- filter values at the edges -----------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        'meta.created gt "0001-01-01T00:00:00+01:00"',  # before the first moment, in UTC
        'meta.lastModified lt "9999-12-31T23:59:59-14:00"',  # after the last one
        'userName eq "\\ud800"',  # a lone surrogate: no UTF-8 text
        'emails[value eq "\\udfff"]',
        'id eq "\\ud800"',
        'userName eq "\\u0000"',
    ],
)
async def test_filter_values_no_store_can_compare_are_invalid_filters(seeded, text):
    scim, _, _ = seeded
    from urllib.parse import quote

    for request in (
        scim.request("GET", f"/Users?filter={quote(text)}"),
        scim.request("POST", "/Users/.search", {"filter": text}),
    ):
        status, scim_type = await error_of(await request)
        assert status == 400 and scim_type in ("invalidFilter", "invalidValue")


async def test_dates_before_the_year_1000_compare_in_time_order(seeded):
    scim, user, _ = seeded
    from urllib.parse import quote

    found = await scim.json("GET", "/Users?filter=" + quote('meta.created gt "0099-01-01T00:00:00Z"'))
    assert [r["id"] for r in found["Resources"]] == [user["id"]]
    found = await scim.json("GET", "/Users?filter=" + quote('meta.created lt "0999-01-01T00:00:00+01:00"'))
    assert found["totalResults"] == 0
    found = await scim.json("GET", "/Users?filter=" + quote('meta.created gt "0001-01-01T00:00:00-01:00"'))
    assert found["totalResults"] == 1
