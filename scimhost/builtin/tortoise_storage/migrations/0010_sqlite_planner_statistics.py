"""SQLite: planner statistics of the shape of the data, so a fresh database plans like a big one.

SQLite never gathers statistics by itself. Without them it prefers the index matching more
equality terms, and a statement on one resource's index rows (`source = ? AND resource_type = ?
AND resource_id = ?`) walked the (source, resource_type, path, value) index, every row of the
source, instead of the resource_id index: a PATCH or a filter cost grew with the directory
(half a millisecond at 500 users). These rows tell the planner the shape instead: about 25
index rows and 2 unique values per resource, every row of a table in one source. They hold at
any size; an operator's ANALYZE replaces them with measured ones, which say the same.
"""

from tortoise import migrations
from tortoise.migrations import operations as ops

# (table, indexed columns) -> sqlite_stat1 `stat`: the rows, then the rows per distinct value of
# each leading prefix of the columns, for a directory of a million users.
SHAPES = {
    ("scimhost_attr", ("resource_id", "path", "item")): "25000000 25 2 1",
    ("scimhost_attr", ("source", "resource_type", "path", "value_text")): "25000000 25000000 12500000 1000000 2",
    ("scimhost_attr", ("source", "resource_type", "path", "value_num")): "25000000 25000000 12500000 1000000 2",
    ("scimhost_unique", ("source", "resource_type", "attribute", "value")): "2000000 2000000 1000000 1000000 1",
    ("scimhost_unique", ("resource_id",)): "2000000 2",
}


async def write_shapes(apps, schema_editor):
    if schema_editor.DIALECT != "sqlite":
        return  # PostgreSQL's autovacuum keeps statistics
    client = schema_editor.client
    await client.execute_script("ANALYZE sqlite_schema")  # creates sqlite_stat1, scanning nothing
    for table in {table for table, _ in SHAPES}:
        for index in await client.execute_query_dict(f"PRAGMA index_list('{table}')"):
            columns = tuple(row["name"] for row in await client.execute_query_dict(f"PRAGMA index_info('{index['name']}')"))
            stat = SHAPES.get((table, columns))
            if stat is not None:
                await client.execute_query("DELETE FROM sqlite_stat1 WHERE tbl = ? AND idx = ?", [table, index["name"]])
                await client.execute_query(
                    "INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES (?, ?, ?)", [table, index["name"], stat]
                )


async def forget_shapes(apps, schema_editor):
    if schema_editor.DIALECT == "sqlite":
        await schema_editor.client.execute_script(
            "DELETE FROM sqlite_stat1 WHERE tbl IN ('scimhost_attr', 'scimhost_unique')"
        )


class Migration(migrations.Migration):
    dependencies = [("scimhost", "0009_token_grace_and_activity")]

    initial = False

    operations = [ops.RunPython(write_shapes, forget_shapes)]
