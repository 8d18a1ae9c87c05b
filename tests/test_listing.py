"""Sorting, index and cursor paging, and /.search, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import urllib.parse

import pytest

SEARCH = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"


def q(text: str) -> str:
    return urllib.parse.quote(text)


async def test_sort_by_attribute_sub_attribute_and_primary_value(scim):
    await scim.create_user(
        "carol", name={"familyName": "Zeta"}, emails=[{"value": "z@x"}, {"value": "a@x", "primary": True}]
    )
    await scim.create_user("alice", name={"familyName": "beta"}, emails=[{"value": "m@x"}])
    await scim.create_user("Bob")
    names = lambda page: [u["userName"] for u in page["Resources"]]  # noqa: E731
    assert names(await scim.json("GET", "/Users?sortBy=userName")) == ["alice", "Bob", "carol"]
    assert names(await scim.json("GET", "/Users?sortBy=userName&sortOrder=descending")) == ["carol", "Bob", "alice"]
    # a resource without the value sorts last
    assert names(await scim.json("GET", "/Users?sortBy=name.familyName")) == ["alice", "carol", "Bob"]
    # the primary email (a@x) sorts carol first
    assert names(await scim.json("GET", "/Users?sortBy=emails.value")) == ["carol", "alice", "Bob"]
    assert names(await scim.json("GET", "/Users?sortBy=meta.created&sortOrder=descending")) == ["Bob", "alice", "carol"]
    error = await scim.json("GET", "/Users?sortBy=nosuch", expect=400)
    assert error["scimType"] == "invalidValue"
    await scim.json("GET", "/Users?sortBy=userName&sortOrder=sideways", expect=400)


async def test_cursor_walks_a_changing_set_without_skipping_or_repeating(scim):
    users = [await scim.create_user(f"user{i:02}") for i in range(7)]
    seen = []
    page = await scim.json("GET", "/Users?count=3&cursor=")
    assert "startIndex" not in page and page["totalResults"] == 7 and "previousCursor" not in page
    seen += [u["userName"] for u in page["Resources"]]
    # the set changes between pages: one already seen is deleted, one new is created
    await scim.json("DELETE", f"/Users/{users[0]['id']}", expect=204)
    await scim.create_user("user99")
    while "nextCursor" in page:
        page = await scim.json("GET", f"/Users?count=3&cursor={q(page['nextCursor'])}")
        seen += [u["userName"] for u in page["Resources"]]
    assert seen == [f"user{i:02}" for i in range(7)] + ["user99"]
    back = await scim.json("GET", f"/Users?count=3&cursor={q(page['previousCursor'])}")
    assert [u["userName"] for u in back["Resources"]] == ["user03", "user04", "user05"]
    assert "nextCursor" in back and "previousCursor" in back
    error = await scim.json("GET", "/Users?cursor=not-a-cursor", expect=400)
    assert error["scimType"] == "invalidCursor"
    await scim.json("GET", "/Users?cursor=&sortBy=userName", expect=400)


async def test_cursor_paging_with_a_filter(scim):
    for i in range(5):
        await scim.create_user(f"u{i}", title="even" if i % 2 == 0 else "odd")
    even = q('title eq "even"')
    page = await scim.json("GET", f"/Users?count=2&cursor=&filter={even}")
    names = [u["userName"] for u in page["Resources"]]
    page = await scim.json("GET", f"/Users?count=2&cursor={q(page['nextCursor'])}&filter={even}")
    names += [u["userName"] for u in page["Resources"]]
    assert names == ["u0", "u2", "u4"] and "nextCursor" not in page


async def test_search_per_resource_type(scim):
    await scim.create_user("alice", title="x")
    await scim.create_user("bob", title="y")
    body = {"schemas": [SEARCH], "filter": 'title eq "x"', "attributes": ["userName"], "count": 10}
    found = await scim.json("POST", "/Users/.search", body)
    assert found["totalResults"] == 1
    assert found["Resources"][0]["userName"] == "alice" and "title" not in found["Resources"][0]
    error = await scim.json("POST", "/Users/.search", {"schemas": ["urn:wrong"]}, expect=400)
    assert error["scimType"] == "invalidSyntax"
    await scim.json("POST", "/Users/.search", {"schemas": [SEARCH], "filter": "bad filter"}, expect=400)


async def test_search_at_the_root_spans_resource_types(scim):
    await scim.create_user("shared-name", displayName="Team")
    await scim.create_user("other")
    await scim.create_group("Team")
    found = await scim.json("POST", "/.search", {"schemas": [SEARCH], "filter": 'displayName eq "team"'})
    assert found["totalResults"] == 2
    assert sorted(r["meta"]["resourceType"] for r in found["Resources"]) == ["Group", "User"]
    # userName exists only on Users: Groups have no value, so `eq` on it is false for them
    found = await scim.json("POST", "/.search", {"schemas": [SEARCH], "filter": 'userName eq "other"'})
    assert found["totalResults"] == 1
    paged = await scim.json("POST", "/.search", {"schemas": [SEARCH], "startIndex": 2, "count": 2})
    assert paged["totalResults"] == 3 and len(paged["Resources"]) == 2
    error = await scim.json("POST", "/.search", {"schemas": [SEARCH], "filter": 'nosuch eq "x"'}, expect=400)
    assert error["scimType"] == "invalidFilter"


def _found(page: dict) -> list[tuple[str, str]]:
    return [(r["meta"]["resourceType"], r.get("userName") or r["displayName"]) for r in page["Resources"]]


async def test_root_search_treats_an_attribute_a_type_lacks_as_without_value(scim):
    """RFC 7644 §3.4.2.2: per resource type, a comparison on an attribute the type does not
    define is false (`not` of it true) and the rest of the filter still decides."""
    await scim.create_user("xavier", displayName="Xavier")
    await scim.create_user("yvonne")
    await scim.create_group("xenon")
    await scim.create_group("Yak")

    async def search(filter_text: str, **extra) -> dict:
        return await scim.json("POST", "/.search", {"schemas": [SEARCH], "filter": filter_text, **extra})

    either = await search('userName sw "x" or displayName sw "x"')
    assert sorted(_found(either)) == [("Group", "xenon"), ("User", "xavier")] and either["totalResults"] == 2
    assert sorted(_found(await search("not (userName pr)"))) == [("Group", "Yak"), ("Group", "xenon")]
    assert sorted(_found(await search('userName ne "xavier"'))) == [
        ("Group", "Yak"),
        ("Group", "xenon"),
        ("User", "yvonne"),
    ]
    assert _found(await search('members[value eq "nobody"] or userName eq "yvonne"')) == [("User", "yvonne")]
    assert _found(await search('emails[type eq "work"] and displayName sw "y"')) == []
    assert (await search('userName sw "x" or displayName sw "x"', count=0))["totalResults"] == 2
    # a path that no resource type defines is still an error, even beside a known one
    for bad in ('userName eq "x" or nosuch eq "y"', 'emails[nosuch eq "x"]', "name.nosuch pr"):
        error = await scim.json("POST", "/.search", {"schemas": [SEARCH], "filter": bad}, expect=400)
        assert error["scimType"] == "invalidFilter", bad
    # a comparison a type cannot make on an attribute it does define stays an error
    error = await scim.json("POST", "/.search", {"schemas": [SEARCH], "filter": "userName gt true"}, expect=400)
    assert error["scimType"] == "invalidFilter"


async def test_root_search_sorts_across_resource_types(scim, monkeypatch):
    """sortBy at the root merges the types; a type lacking the attribute has no values, which
    sort last when ascending and first when descending (RFC 7644 §3.4.2.3)."""
    await scim.create_user("bob", displayName="Delta")
    await scim.create_group("Bravo")
    await scim.create_user("amy", displayName="alpha")
    await scim.create_group("Charlie")
    await scim.create_user("cid")  # no displayName

    async def search(**body) -> list[tuple[str, str]]:
        return _found(await scim.json("POST", "/.search", {"schemas": [SEARCH], **body}))

    users = [("User", "amy"), ("User", "bob"), ("User", "cid")]
    groups = [("Group", "Bravo"), ("Group", "Charlie")]
    assert await search(sortBy="userName") == users + groups
    assert await search(sortBy="userName", sortOrder="descending") == groups + users[::-1]
    merged = [("User", "amy"), ("Group", "Bravo"), ("Group", "Charlie"), ("User", "bob"), ("User", "cid")]
    assert await search(sortBy="displayName") == merged
    assert await search(sortBy="displayName", sortOrder="descending") == [("User", "cid")] + merged[3::-1]
    assert await search(sortBy="displayName", startIndex=2, count=2) == merged[1:3]
    assert await search(sortBy="displayName", startIndex=5, count=5) == merged[4:]
    assert await search(sortBy="displayName", startIndex=6) == []
    assert await search(sortBy="meta.created", sortOrder="descending") == [
        ("User", "cid"),
        ("Group", "Charlie"),
        ("User", "amy"),
        ("Group", "Bravo"),
        ("User", "bob"),
    ]
    only = await scim.json(
        "POST", "/.search", {"schemas": [SEARCH], "sortBy": "displayName", "filter": 'displayName sw "b"'}
    )
    assert _found(only) == [("Group", "Bravo")] and only["totalResults"] == 1
    error = await scim.json("POST", "/.search", {"schemas": [SEARCH], "sortBy": "nosuch"}, expect=400)
    assert error["scimType"] == "invalidValue"
    # past the end: an empty page; deeper than the merge reads: refused, not slow
    assert await search(sortBy="displayName", startIndex=10_000) == []
    monkeypatch.setattr("scimhost.source_search.MAX_SORTED_DEPTH", 3)
    error = await scim.json(
        "POST", "/.search", {"schemas": [SEARCH], "sortBy": "displayName", "startIndex": 2, "count": 3}, expect=400
    )
    assert error["scimType"] == "invalidValue"


@pytest.mark.parametrize("query", ["count=abc", "startIndex=1.5"])
async def test_bad_paging_values(scim, query):
    error = await scim.json("GET", f"/Users?{query}", expect=400)
    assert error["scimType"] == "invalidValue"


async def test_client_query_string_quirks(scim):
    await scim.create_user("bjensen")
    for query in (
        "?filter=userName+eq+%22bjensen%22",
        "?filter=userName%20eq%20%22bjensen%22&",
        '?filter=userName eq "bjensen"&unknownParam=1',
    ):
        found = await scim.json("GET", "/Users" + query)
        assert found["totalResults"] == 1, query


async def test_configured_limits(aiohttp_client, storage_url):
    from helpers import ScimClient, make_config, patch_op

    from scimhost.app import create_app
    from scimhost.http.keys import HOST

    config = make_config(storage_url)
    config["limits"] = {
        "max_results": 3,
        "default_page_size": 2,
        "max_filter_length": 40,
        "max_filter_depth": 2,
        "max_patch_operations": 2,
    }
    app = create_app(config)
    client = await aiohttp_client(app)
    scim = ScimClient(client, "demo", await app[HOST].issue_token("demo"))
    users = [await scim.create_user(f"u{i}") for i in range(5)]
    assert len((await scim.json("GET", "/Users"))["Resources"]) == 2
    capped = await scim.json("GET", "/Users?count=50")
    assert capped["itemsPerPage"] == 3 and capped["totalResults"] == 5
    spc = await scim.json("GET", "/ServiceProviderConfig")
    assert spc["filter"]["maxResults"] == 3 and spc["pagination"]["defaultPageSize"] == 2
    error = await scim.json("GET", "/Users?filter=" + q('userName eq "' + "x" * 40 + '"'), expect=400)
    assert error["scimType"] == "invalidFilter" and "longer than 40" in error["detail"]
    error = await scim.json("GET", "/Users?filter=" + q('(((a eq "1")))'), expect=400)
    assert "nested deeper than 2" in error["detail"]
    ops = [{"op": "add", "path": "title", "value": str(i)} for i in range(3)]
    await scim.json("PATCH", f"/Users/{users[0]['id']}", patch_op(*ops), expect=413)


@pytest.mark.parametrize("attribute", ["meta.created", "meta.lastModified"])
async def test_a_timestamp_as_rendered_finds_its_resource(scim, attribute):
    """Filters compare meta timestamps at the precision responses show (milliseconds)."""
    from urllib.parse import quote

    first = await scim.create_user("first")
    await asyncio.sleep(0.01)
    second = await scim.create_user("second")
    key = attribute.split(".")[1]
    moment = second["meta"][key]

    async def names(op: str) -> list[str]:
        body = await scim.json("GET", "/Users?filter=" + quote(f'{attribute} {op} "{moment}"'))
        return sorted(u["userName"] for u in body["Resources"])

    assert await names("eq") == ["second"]
    assert await names("ne") == ["first"]
    assert await names("ge") == ["second"]
    assert await names("le") == ["first", "second"]
    assert await names("gt") == []
    assert await names("lt") == ["first"]
    assert first["meta"][key] < moment
