"""Seed a source with N users (names, 2 emails, enterprise attributes) and M groups, fast.

Documents, uniqueness keys and attribute index rows are computed by the same core functions
the server uses (validated_document, index_entries); only the inserts are batched here, many
rows per statement and thousands of users per transaction, instead of one request per user.

    python bench/seed.py -c bench/bench.toml --users 1000000 --groups 100
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from datetime import datetime, timedelta, timezone

import orjson

from scimhost.builtin.tortoise_storage.scope import Scope
from scimhost.host import load_host
from scimhost.scim.query import index_entries
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
        ENTERPRISE: {"employeeNumber": f"E{i:07d}", "department": DEPARTMENTS[i % len(DEPARTMENTS)],
                     "costCenter": f"CC{i % 50}"},
    }


async def seed(config: str, slug: str, users: int, groups: int, batch: int, members: int = 0) -> None:
    host = load_host(config, strict=False)
    storage = host.storage
    await storage.open(migrate=True)
    source = host.sources[slug]
    await storage.ensure_service_account(slug, source.service_account)
    user_type = source.catalog.resource_types["User"]
    group_type = source.catalog.resource_types["Group"]
    db = storage._db()
    sql = storage._sql
    start = time.perf_counter()
    base_time = datetime.now(timezone.utc)

    async def insert(kind, resource_type, docs, offset):
        resources, uniques, attrs = [], [], []
        for n, doc in enumerate(docs):
            rid = str(uuid.uuid4())
            created = base_time + timedelta(microseconds=offset + n)
            display = doc.get("displayName") or doc.get("userName")
            resources.append([rid, slug, kind, doc.get("externalId"), display, orjson.dumps(doc).decode(),
                              None, 1, created, created])
            key = "userName" if kind == "User" else "displayName"
            uniques.append([slug, kind, key, doc[key].lower(), rid])
            attrs += [[rid, slug, kind, e.path, e.item, e.text, e.number] for e in index_entries(doc, resource_type)]

        async def body(tx):
            await tx.execute_many(sql(
                "INSERT INTO scimhost_resource (id, source, resource_type, external_id, display, data, "
                "password_hash, version, created, last_modified) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"), resources)
            await tx.execute_many(sql(
                "INSERT INTO scimhost_unique (source, resource_type, attribute, value, resource_id) "
                "VALUES (?, ?, ?, ?, ?)"), uniques)
            await tx.execute_many(sql(
                "INSERT INTO scimhost_attr (resource_id, source, resource_type, path, item, value_text, value_num) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)"), attrs)
            await storage._count(tx, Scope(slug, kind), len(docs))

        await storage._atomic(body, small=False)

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
        group_id = (await db.execute_query_dict(sql(
            "SELECT id FROM scimhost_resource WHERE source = ? AND resource_type = 'Group' ORDER BY created, id LIMIT 1"
        ), [slug]))[0]["id"]
        user_ids = [row["id"] for row in await db.execute_query_dict(sql(
            "SELECT id FROM scimhost_resource WHERE source = ? AND resource_type = 'User' ORDER BY created, id LIMIT ?"
        ), [slug, members])]

        async def body(tx):
            await tx.execute_many(sql(
                "INSERT INTO scimhost_member (group_id, member_id, member_type, source) VALUES (?, ?, 'User', ?)"
            ), [[group_id, uid, slug] for uid in user_ids])

        await storage._atomic(body, small=False)
        print(f"group {group_id} has {len(user_ids)} members")
    if storage._dialect == "sqlite":
        await db.execute_query("ANALYZE")
    else:
        await db.execute_query("ANALYZE")
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
