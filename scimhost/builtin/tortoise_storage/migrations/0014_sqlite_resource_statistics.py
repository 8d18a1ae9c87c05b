"""SQLite: the shape of the resources table too, so a lookup starts from the ids it found.

With statistics for the attribute index only (migration 0010), SQLite judged the resources'
(source, resource_type, created, id) index by its two equality terms and the ORDER BY it
serves, and answered `r.id IN (ids the attribute index found)` by walking every resource of the
source: an initial sync's `userName eq` lookup grew from 1.3 ms to 6 ms over 10 000 users.
These rows say what holds at any size (every resource of a table in one source, about two
resource types, ids unique), so the lookup probes the primary key for each id instead.
"""

from tortoise import migrations
from tortoise.migrations import operations as ops

# indexed columns -> sqlite_stat1 `stat` of scimhost_resource, for a directory of a million users.
SHAPES = {
    ("source", "resource_type", "created", "id"): "1000000 1000000 500000 1 1",
    ("id",): "1000000 1",
}


async def write_shapes(apps, schema_editor):
    if schema_editor.DIALECT != "sqlite":
        return  # PostgreSQL: the backend has stale tables analyzed (planner_statistics.py)
    client = schema_editor.client
    await client.execute_script("ANALYZE sqlite_schema")  # sqlite_stat1 exists already; scans nothing
    for index in await client.execute_query_dict("PRAGMA index_list('scimhost_resource')"):
        rows = await client.execute_query_dict(f"PRAGMA index_info('{index['name']}')")
        stat = SHAPES.get(tuple(row["name"] for row in rows))
        if stat is not None:
            await client.execute_query("DELETE FROM sqlite_stat1 WHERE tbl = 'scimhost_resource' AND idx = ?", [index["name"]])
            await client.execute_query(
                "INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES ('scimhost_resource', ?, ?)", [index["name"], stat]
            )


async def forget_shapes(apps, schema_editor):
    if schema_editor.DIALECT == "sqlite":
        await schema_editor.client.execute_script("DELETE FROM sqlite_stat1 WHERE tbl = 'scimhost_resource'")


class Migration(migrations.Migration):
    dependencies = [("scimhost", "0013_delivery_heads")]

    initial = False

    operations = [ops.RunPython(write_shapes, forget_shapes)]
