"""Seed a source with N users (names, 2 emails, enterprise attributes) and M groups, fast.

Documents, uniqueness keys and attribute index rows are computed by the same core functions
the server uses (validated_document, index_entries); only the inserts are batched here, many
rows per statement and thousands of users per transaction, instead of one request per user.

    python bench/seed.py -c bench/bench.toml --users 1000000 --groups 100
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import time
import uuid
from datetime import UTC, datetime, timedelta

import orjson

from scimhost.builtin.tortoise_storage.statements import Params, Work
from scimhost.host import load_host
from scimhost.scim.index import index_entries
from scimhost.scim.validation import validated_document

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
DEPARTMENTS = ["Sales", "Engineering", "Support", "Finance", "Legal", "Marketing"]


def user_document(i: int) -> dict:
    return {
        "userName": f"user{i:07d}@example.com",
        "externalId": f"ext-{i:07d}",
        "name": {"givenName": f"Given{i % 997}", "familyName": f"Family{i % 1009}"},
        "displayName": f"User {i}",
        "active": i % 10 != 0,
        "emails": [
            {"value": f"user{i:07d}@work.example.com", "type": "work", "primary": True},
            {"value": f"user{i:07d}@home.example.org", "type": "home"},
        ],
        ENTERPRISE: {
            "employeeNumber": f"E{i:07d}",
            "department": DEPARTMENTS[i % len(DEPARTMENTS)],
            "costCenter": f"CC{i % 50}",
        },
    }


async def seed(config: str, slug: str, users: int, groups: int, batch: int, members: int = 0) -> None:
    # bench.toml names a webhook sink whose secret bench/load.py sets; seeding delivers nothing.
    os.environ.setdefault("SCIMHOST_BENCH_SECRET", "whsec_" + base64.b64encode(os.urandom(32)).decode())
    host = load_host(config, strict=False)
    storage = host.storage
    await storage.open(migrate=True)
    source = host.sources[slug]
    await storage.ensure_service_account(slug, source.service_account)
    user_type = source.catalog.resource_types["User"]
    group_type = source.catalog.resource_types["Group"]
    database = storage.database

    def insert_rows(table: str, columns: str, rows: list[list]) -> Work[None]:
        for start in range(0, len(rows), 200):  # well under either database's bound-value limit
            p = Params(database.dialect)
            values = ", ".join(f"({p.each(row)})" for row in rows[start : start + 200])
            yield p.command(f"INSERT INTO {table} ({columns}) VALUES {values}")

    start = time.perf_counter()
    base_time = datetime.now(UTC)

    async def insert(kind, resource_type, docs, offset):
        resources, uniques, attrs = [], [], []
        for n, doc in enumerate(docs):
            rid = str(uuid.uuid4())
            created = base_time + timedelta(microseconds=offset + n)
            display = doc.get("displayName") or doc.get("userName")
            resources.append(
                [rid, slug, kind, doc.get("externalId"), display, orjson.dumps(doc).decode(), None, 1, created, created]
            )
            key = "userName" if kind == "User" else "displayName"
            uniques.append([slug, kind, key, doc[key].lower(), rid])
            attrs += [[rid, slug, kind, e.path, e.item, e.text, e.number] for e in index_entries(doc, resource_type)]

        def work() -> Work[None]:
            yield from insert_rows(
                "scimhost_resource",
                "id, source, resource_type, external_id, display, data, password_hash, version, created, last_modified",
                resources,
            )
            yield from insert_rows("scimhost_unique", "source, resource_type, attribute, value, resource_id", uniques)
            yield from insert_rows(
                "scimhost_attr", "resource_id, source, resource_type, path, item, value_text, value_num", attrs
            )
            p = Params(database.dialect)
            yield p.command(
                f"INSERT INTO scimhost_count (source, resource_type, count) VALUES ({p.each((slug, kind, len(docs)))}) "
                f"ON CONFLICT (source, resource_type) DO UPDATE SET count = scimhost_count.count + {p(len(docs))}"
            )

        await database.run(work(), small=False)

    for offset in range(0, users, batch):
        docs = [validated_document(user_document(i), user_type) for i in range(offset, min(users, offset + batch))]
        await insert("User", user_type, docs, offset)
        if (offset // batch) % 20 == 0:
            done = offset + len(docs)
            print(f"{done} users, {time.perf_counter() - start:.0f}s", flush=True)
    docs = [validated_document({"displayName": f"Group {g}"}, group_type) for g in range(groups)]
    await insert("Group", group_type, docs, users)
    if members and groups:
        # The first group holds the first `members` users: membership rows, as the server keeps them.
        p = Params(database.dialect)
        group_id = (
            await database.rows(
                p.query(
                    f"SELECT id FROM scimhost_resource WHERE source = {p(slug)} AND resource_type = 'Group' "
                    "ORDER BY created, id LIMIT 1"
                )
            )
        )[0]["id"]
        p = Params(database.dialect)
        user_ids = [
            row["id"]
            for row in await database.rows(
                p.query(
                    f"SELECT id FROM scimhost_resource WHERE source = {p(slug)} AND resource_type = 'User' "
                    f"ORDER BY created, id LIMIT {p(members)}"
                )
            )
        ]
        rows = [[group_id, uid, "User", slug] for uid in user_ids]
        await database.run(
            insert_rows("scimhost_member", "group_id, member_id, member_type, source", rows), small=False
        )
        print(f"group {group_id} has {len(user_ids)} members")
    await database.execute(Params(database.dialect).command("ANALYZE"), small=False)
    print(f"seeded {users} users and {groups} groups in {time.perf_counter() - start:.1f}s")
    await storage.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-c", "--config", required=True)
    parser.add_argument("--source", default="bench")
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--groups", type=int, default=100)
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--group-members", type=int, default=0, help="members of the first group")
    args = parser.parse_args()
    asyncio.run(seed(args.config, args.source, args.users, args.groups, args.batch, args.group_members))


if __name__ == "__main__":
    main()
