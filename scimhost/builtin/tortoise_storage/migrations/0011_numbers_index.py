"""The numbers index holds only index rows that have a number.

Most attributes are strings: the (source, resource_type, path, value_num) index held an entry
with a NULL number for every index row, about 25 per user, each written on every create and
each on its own leaf page among the paths (a sixth of a create's pages). Every statement that
reads value_num compares it (`=`, `<`, `>`, ...), which implies it is not NULL, so both
databases use the partial index for it.
"""

from tortoise import migrations
from tortoise.migrations import operations as ops

NAME = "idx_scimhost_attr_number"
STAT = "1000000 1000000 500000 100000 2"  # as migration 0010: rows with a number only


async def create_numbers_index(apps, schema_editor):
    client = schema_editor.client
    await client.execute_script(
        f'CREATE INDEX "{NAME}" ON "scimhost_attr" ("source", "resource_type", "path", "value_num") '
        'WHERE "value_num" IS NOT NULL'
    )
    if schema_editor.DIALECT == "sqlite":
        await client.execute_query("DELETE FROM sqlite_stat1 WHERE idx = ?", [NAME])
        await client.execute_query(
            "INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES ('scimhost_attr', ?, ?)", [NAME, STAT]
        )


async def drop_numbers_index(apps, schema_editor):
    await schema_editor.client.execute_script(f'DROP INDEX IF EXISTS "{NAME}"')


class Migration(migrations.Migration):
    dependencies = [("scimhost", "0010_sqlite_planner_statistics")]

    initial = False

    operations = [
        ops.RemoveIndex(model_name="AttributeValue", fields=["source", "resource_type", "path", "value_num"]),
        ops.RunPython(create_numbers_index, drop_numbers_index),
    ]
