"""Filters run in the database give exactly what the in-memory evaluator gives, on generated
users and generated filters, on SQLite and PostgreSQL."""

from __future__ import annotations

import random
import urllib.parse

import pytest
from helpers import patch_op, stored_rows

from scimhost.http.keys import HOST
from scimhost.scim.evaluate import match_resource
from scimhost.scim.filter import parse_filter
from scimhost.scim.index import index_entries
from scimhost.scim.query import resolve_filter
from scimhost.scim.query_eval import Candidate, matches

ENT = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
WORDS = ["alpha", "Beta", "gamma", "DELTA", "al", "be", "ta", "Ga", "x"]
DATES = ["2024-01-01T00:00:00Z", "2024-06-15T12:30:00+02:00", "2023-12-31T23:59:59Z"]


def random_user(rng: random.Random, index: int) -> dict:
    user: dict = {"userName": f"{rng.choice(WORDS)}{index}"}
    if rng.random() < 0.7:
        user["name"] = {"givenName": rng.choice(WORDS), "familyName": rng.choice(WORDS)}
    if rng.random() < 0.6:
        user["title"] = rng.choice(WORDS)
    if rng.random() < 0.7:
        user["active"] = rng.random() < 0.5
    if rng.random() < 0.8:
        user["emails"] = [
            {
                "value": f"{rng.choice(WORDS)}@{rng.choice(['work.com', 'home.org'])}",
                "type": rng.choice(["work", "home", "other"]),
            }
            for _ in range(rng.randint(1, 3))
        ]
    if rng.random() < 0.5:
        user["externalId"] = rng.choice(WORDS)
    if rng.random() < 0.6:
        user[ENT] = {"employeeNumber": str(rng.randint(1, 5)), "department": rng.choice(WORDS)}
    return user


STRING_PATHS = [
    "userName",
    "title",
    "name.givenName",
    "name.familyName",
    "emails.value",
    "emails.type",
    "emails",
    "externalId",
    f"{ENT}:employeeNumber",
    f"{ENT}:department",
    "displayName",
]


def random_filter(rng: random.Random, depth: int = 0) -> str:
    roll = rng.random()
    if depth < 2 and roll < 0.15:
        return f"({random_filter(rng, depth + 1)} and {random_filter(rng, depth + 1)})"
    if depth < 2 and roll < 0.3:
        return f"({random_filter(rng, depth + 1)} or {random_filter(rng, depth + 1)})"
    if depth < 2 and roll < 0.38:
        return f"not ({random_filter(rng, depth + 1)})"
    if roll < 0.45:
        return rng.choice(["active eq true", "active eq false", 'active eq "True"', "active ne true", "active pr"])
    if roll < 0.55:
        inner = f'type eq "{rng.choice(["work", "home"])}" and value {rng.choice(["co", "sw", "ew"])} "{rng.choice(WORDS).lower()}"'
        if rng.random() < 0.3:
            inner = 'not (type eq "work") or value ew ".org"'
        return f"emails[{inner}]"
    if roll < 0.6:
        return f'meta.created {rng.choice(["gt", "lt", "ge"])} "{rng.choice(DATES)}"'
    path = rng.choice(STRING_PATHS)
    op = rng.choice(["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le", "pr"])
    if op == "pr":
        return f"{path} pr"
    value = rng.choice(WORDS + ["", "ALPHA", "work.com", "3"])
    return f'{path} {op} "{value}"'


async def candidates(client, resource_type: str, ids: list[str]) -> list[tuple[str, Candidate]]:
    """The stored resources as the resolved-query evaluator sees them: (id, candidate)."""
    storage = client.app[HOST].storage
    catalog = client.app[HOST].sources["demo"].catalog.resource_types[resource_type]
    result = []
    for resource_id in ids:
        stored = await storage.get_resource("demo", resource_type, resource_id)
        result.append(
            (
                resource_id,
                Candidate(
                    id=stored.id,
                    created=stored.created,
                    last_modified=stored.last_modified,
                    entries=index_entries(stored.document, catalog),
                    members=[(m["value"], m["type"]) for m in stored.members or []],
                    groups=[g["value"] for g in stored.groups or []],
                ),
            )
        )
    return result


def evaluated(client, resource_type: str, text: str, stored: list[tuple[str, Candidate]]) -> list[str]:
    """The ids the resolved filter selects, evaluated in memory on the stored index entries."""
    catalog = client.app[HOST].sources["demo"].catalog.resource_types[resource_type]
    query = resolve_filter(parse_filter(text), catalog)
    return sorted(resource_id for resource_id, candidate in stored if matches(query, candidate))


async def test_database_filters_agree_with_the_evaluator(scim, client):
    rng = random.Random(7644)
    for index in range(40):
        body = random_user(rng, index)
        await scim.json("POST", "/Users", body, expect=201)
    everyone = (await scim.json("GET", "/Users?count=1000"))["Resources"]
    assert len(everyone) == 40
    user_type = client.app[HOST].sources["demo"].catalog.resource_types["User"]
    stored = await candidates(client, "User", [u["id"] for u in everyone])

    checked = 0
    for _ in range(150):
        text = random_filter(rng)
        expected = sorted(u["userName"] for u in everyone if match_resource(parse_filter(text), u, user_type))
        response = await scim.json("GET", "/Users?count=1000&filter=" + urllib.parse.quote(text))
        got = sorted(u["userName"] for u in response["Resources"])
        assert got == expected, text
        assert response["totalResults"] == len(expected)
        # The resolved-query evaluator (a backend's reference) agrees on the index entries.
        assert evaluated(client, "User", text, stored) == sorted(u["id"] for u in response["Resources"]), text
        checked += bool(expected)
    assert checked > 30  # the generated filters do select something


async def test_membership_filters_agree_with_the_resolved_query_evaluator(scim, client):
    rng = random.Random(7643)
    users = [await scim.create_user(f"member{i}") for i in range(8)]
    groups = []
    for index in range(5):
        chosen = rng.sample(users, rng.randint(0, 4))
        group = await scim.create_group(f"team{index}", [u["id"] for u in chosen])
        groups.append(group)
    nested = await scim.create_group("nested", [groups[0]["id"], users[0]["id"]])
    groups.append(nested)
    stored_groups = await candidates(client, "Group", [g["id"] for g in groups])
    stored_users = await candidates(client, "User", [u["id"] for u in users])
    some_user, some_group = users[rng.randrange(8)]["id"], groups[0]["id"]
    group_filters = [
        "members pr",
        "not (members pr)",
        f'members.value eq "{some_user}"',
        f'members[value eq "{some_user}"]',
        f'members[value eq "{some_group}" and type eq "Group"]',
        'members[type eq "Group"]',
        f'members[value ne "{some_user}"]',
        f'members.value gt "{some_user}"',
        'displayName sw "team" and members pr',
        f'not (members[value eq "{some_user}"]) and displayName co "t"',
    ]
    for text in group_filters:
        response = await scim.json("GET", "/Groups?count=1000&filter=" + urllib.parse.quote(text))
        assert evaluated(client, "Group", text, stored_groups) == sorted(g["id"] for g in response["Resources"]), text
    user_filters = [
        "groups pr",
        "not (groups pr)",
        f'groups.value eq "{some_group}"',
        f'groups[value eq "{some_group}"]',
        f'groups[value sw "{some_group[:3]}"] or userName eq "member7"',
    ]
    for text in user_filters:
        response = await scim.json("GET", "/Users?count=1000&filter=" + urllib.parse.quote(text))
        assert evaluated(client, "User", text, stored_users) == sorted(u["id"] for u in response["Resources"]), text


async def test_filters_agree_after_replacing_and_patching(scim, client):
    """Writes update only the index rows that changed; filters must still see exactly the
    stored documents, old values gone and new ones found."""
    rng = random.Random(9865)
    created = [await scim.json("POST", "/Users", random_user(rng, index), expect=201) for index in range(30)]
    for index, user in enumerate(created):
        roll = rng.random()
        if roll < 0.4:
            replacement = random_user(rng, index)
            replacement["userName"] = rng.choice([user["userName"], f"renamed{index}"])
            await scim.json("PUT", f"/Users/{user['id']}", replacement)
        elif roll < 0.8:
            path = rng.choice(["title", "name.givenName", "externalId", "emails", "userName"])
            value = (
                [{"value": f"{rng.choice(WORDS)}@home.org", "type": "home"}]
                if path == "emails"
                else f"patched{index}"
                if path == "userName"
                else rng.choice(WORDS)
            )
            op = rng.choice(["replace", "add", "remove"]) if path not in ("userName",) else "replace"
            operation = {"op": op, "path": path} if op == "remove" else {"op": op, "path": path, "value": value}
            await scim.json("PATCH", f"/Users/{user['id']}", patch_op(operation))
    everyone = (await scim.json("GET", "/Users?count=1000"))["Resources"]
    user_type = client.app[HOST].sources["demo"].catalog.resource_types["User"]
    for _ in range(150):
        text = random_filter(rng)
        expected = sorted(u["userName"] for u in everyone if match_resource(parse_filter(text), u, user_type))
        response = await scim.json("GET", "/Users?count=1000&filter=" + urllib.parse.quote(text))
        assert sorted(u["userName"] for u in response["Resources"]) == expected, text
    # Unique values moved with the writes: every old userName that is no longer used is free.
    taken = {u["userName"] for u in everyone}
    for user in created:
        if user["userName"] not in taken:
            await scim.create_user(user["userName"])


async def test_a_one_attribute_patch_keeps_the_other_index_rows(scim, client):
    user = await scim.create_user("keeper", title="old", name={"givenName": "Kay", "familyName": "Keeper"})
    storage = client.app[HOST].storage

    async def index_rows() -> dict:
        read = "SELECT id, path, value_text FROM scimhost_attr WHERE resource_id = {} ORDER BY id"
        return {row["path"]: (row["id"], row["value_text"]) for row in await stored_rows(storage, read, user["id"])}

    before = await index_rows()
    await scim.json("PATCH", f"/Users/{user['id']}", patch_op({"op": "replace", "path": "title", "value": "new"}))
    after = await index_rows()
    assert after.keys() == before.keys()
    assert after["title"][1] == "new" and after["title"][0] != before["title"][0]
    assert {p: v for p, v in after.items() if p != "title"} == {p: v for p, v in before.items() if p != "title"}


@pytest.mark.parametrize(
    "text",
    [
        'nosuch eq "x"',
        "active gt true",
        'name eq "x"',
        'emails[nosuch eq "x"]',
        "password pr",
        'meta.location eq "x"',
        'userName eq "x" and',
        "userName eq 1e999",
        'members[display eq "x"]',
    ],
)
async def test_bad_filters_are_400_invalid_filter(scim, text):
    for endpoint in ("/Users", "/Groups"):
        error = await scim.json("GET", f"{endpoint}?filter=" + urllib.parse.quote(text), expect=400)
        assert error["scimType"] == "invalidFilter"


async def test_group_and_membership_filters(scim):
    alice = await scim.create_user("alice")
    bob = await scim.create_user("bob")
    eng = await scim.create_group("Eng", [alice["id"]])
    await scim.create_group("Ops", [alice["id"], bob["id"]])
    found = await scim.json("GET", "/Groups?filter=" + urllib.parse.quote('displayName eq "eng"'))
    assert [g["id"] for g in found["Resources"]] == [eng["id"]]
    found = await scim.json("GET", "/Groups?filter=" + urllib.parse.quote(f'members.value eq "{bob["id"]}"'))
    assert [g["displayName"] for g in found["Resources"]] == ["Ops"]
    found = await scim.json("GET", "/Users?filter=" + urllib.parse.quote(f'groups.value eq "{eng["id"]}"'))
    assert [u["userName"] for u in found["Resources"]] == ["alice"]
    nothing = await scim.json("GET", "/Users?filter=" + urllib.parse.quote('userName eq "random-probe-8f2c"'))
    assert nothing["totalResults"] == 0 and nothing["Resources"] == []


async def test_filter_with_paging_counts_in_the_database(scim):
    for index in range(7):
        await scim.create_user(f"user{index}", title="same")
    page = await scim.json("GET", "/Users?count=2&startIndex=3&filter=" + urllib.parse.quote('title eq "SAME"'))
    assert page["totalResults"] == 7 and page["itemsPerPage"] == 2
    assert [u["userName"] for u in page["Resources"]] == ["user2", "user3"]


async def test_total_results_at_page_boundaries(scim):
    for index in range(3):
        await scim.create_user(f"edge{index}", title="edge")
    await scim.create_user("other", title="other")
    query = "/Users?filter=" + urllib.parse.quote('title eq "edge"')
    for count, start, listed in [(2, 1, 2), (3, 1, 3), (4, 1, 3), (2, 3, 1), (2, 4, 0), (0, 1, 0)]:
        page = await scim.json("GET", f"{query}&count={count}&startIndex={start}")
        assert (page["totalResults"], len(page.get("Resources", []))) == (3, listed), (count, start)
    everyone = await scim.json("GET", "/Users?count=4")
    assert everyone["totalResults"] == 4
    first = await scim.json("GET", "/Users?count=3")
    assert first["totalResults"] == 4 and len(first["Resources"]) == 3


TYPED = "urn:example:params:scim:schemas:extension:typed:2.0:User"


async def test_every_attribute_type_filters_like_the_evaluator(aiohttp_client, storage_url):
    from helpers import ScimClient, make_config

    from scimhost.app import create_app

    config = make_config(storage_url)
    config["schema_extensions"] = [
        {
            "resource_type": "User",
            "schema": {
                "id": TYPED,
                "attributes": [
                    {"name": "level", "type": "integer"},
                    {"name": "score", "type": "decimal"},
                    {"name": "since", "type": "dateTime"},
                    {"name": "vip", "type": "boolean"},
                    {"name": "code", "type": "string", "caseExact": True},
                    {"name": "site", "type": "reference"},
                    {"name": "tags", "type": "string", "multiValued": True},
                ],
            },
        }
    ]
    app = create_app(config)
    client = await aiohttp_client(app)
    scim = ScimClient(client, "demo", await app[HOST].issue_token("demo"))
    rng = random.Random(7643)
    for index in range(30):
        typed = {
            "level": rng.randint(-3, 3),
            "score": rng.choice([0.5, 1.25, -2.0, 10.0]),
            "since": rng.choice(DATES),
            "vip": rng.random() < 0.5,
            "code": rng.choice(["Ab", "ab", "AB"]),
            "site": rng.choice(["https://a.example/x", "https://B.example/y"]),
            "tags": rng.sample(["red", "Green", "blue"], rng.randint(0, 3)),
        }
        typed = {k: v for k, v in typed.items() if rng.random() < 0.85}
        await scim.create_user(f"t{index}", **{TYPED: typed})
    everyone = (await scim.json("GET", "/Users?count=1000"))["Resources"]
    user_type = app[HOST].sources["demo"].catalog.resource_types["User"]
    filters = [f"{TYPED}:level {op} {n}" for op in ("eq", "ne", "gt", "ge", "lt", "le") for n in (-1, 0, 2)] + [
        f"{TYPED}:score gt 1",
        f"{TYPED}:score le -2",
        f"{TYPED}:score eq 1.25",
        f'{TYPED}:since gt "2024-01-01T00:00:00Z"',
        f'{TYPED}:since le "2024-06-15T10:30:00Z"',
        f'{TYPED}:since eq "2024-06-15T10:30:00Z"',
        f"{TYPED}:vip eq true",
        f'{TYPED}:vip eq "False"',
        f"{TYPED}:vip pr",
        f"not ({TYPED}:vip eq true)",
        f'{TYPED}:code eq "ab"',
        f'{TYPED}:code eq "AB"',
        f'{TYPED}:code sw "A"',
        f'{TYPED}:code gt "B"',
        f'{TYPED}:site co "b.example"',
        f'{TYPED}:tags eq "green"',
        f'{TYPED}:tags co "e"',
        f"{TYPED}:tags pr",
        f'{TYPED}:tags[value eq "red"]',
        f'{TYPED}:level gt 0 and {TYPED}:vip eq true or {TYPED}:tags ew "UE"',
    ]
    for text in filters:
        expected = sorted(u["userName"] for u in everyone if match_resource(parse_filter(text), u, user_type))
        found = await scim.json("GET", "/Users?count=1000&filter=" + urllib.parse.quote(text))
        assert sorted(u["userName"] for u in found["Resources"]) == expected, text
    error = await scim.json("GET", "/Users?filter=" + urllib.parse.quote(f'{TYPED}:level co "1"'), expect=400)
    assert error["scimType"] == "invalidFilter"
