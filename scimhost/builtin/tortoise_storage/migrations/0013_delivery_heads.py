"""Each delivery says whether it is the head of its resource, so a claim reads only due heads.

A claim found each resource's oldest unfinished delivery by one pass over the sink's whole
backlog (migration 0012): with thousands pending after a burst of writes, every claim of a few
deliveries read all of them, the dispatcher spent most of the server's time claiming and fell
further behind. Now the dispatcher marks deliveries as it first sees them (`head` 1 when no
earlier delivery of the resource is unfinished, else 0) and promotes the next one when a head
finishes; writes leave `head` NULL and never touch another delivery. A claim is then a range
of the due heads' index, whatever the backlog. (The waiting deliveries' index serves the
claim's periodic check that each of them still has an unfinished delivery before it.)
"""

from tortoise import fields, migrations
from tortoise.migrations import operations as ops

UNEXAMINED = "idx_scimhost_delivery_unexamined"
DUE_HEADS = "idx_scimhost_delivery_due_heads"
WAITING = "idx_scimhost_delivery_waiting"


async def create_indexes(apps, schema_editor):
    await schema_editor.client.execute_script(
        f'CREATE INDEX "{UNEXAMINED}" ON "scimhost_delivery" ("sink", "event_seq") '
        "WHERE \"head\" IS NULL AND \"state\" = 'pending';\n"
        f'CREATE INDEX "{DUE_HEADS}" ON "scimhost_delivery" ("sink", "next_attempt", "event_seq") '
        "WHERE \"head\" = 1 AND \"state\" = 'pending';\n"
        f'CREATE INDEX "{WAITING}" ON "scimhost_delivery" ("sink", "event_seq") '
        "WHERE \"head\" = 0 AND \"state\" = 'pending'"
    )


async def drop_indexes(apps, schema_editor):
    await schema_editor.client.execute_script(
        f'DROP INDEX IF EXISTS "{UNEXAMINED}";\nDROP INDEX IF EXISTS "{DUE_HEADS}";\nDROP INDEX IF EXISTS "{WAITING}"'
    )


class Migration(migrations.Migration):
    dependencies = [("scimhost", "0012_unfinished_deliveries_index")]

    initial = False

    operations = [
        ops.AddField(model_name="Delivery", name="head", field=fields.SmallIntField(null=True)),
        ops.RunPython(create_indexes, drop_indexes),
    ]
