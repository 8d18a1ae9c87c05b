"""An index of the unfinished deliveries only, for the dispatcher's claim.

The claim walked a sink's deliveries in event order from the first one ever written, done ones
included, to find the due heads: its cost grew with the sink's history (80% of the server's CPU
after 15 000 writes in a benchmark, the dispatcher falling further behind as it grew). An index
of the pending and in-flight rows by key makes it one pass over the backlog; the claim names
`state IN ('pending', 'inflight')` so that both databases can use it.
"""

from tortoise import migrations
from tortoise.migrations import operations as ops

NAME = "idx_scimhost_delivery_unfinished_key"


async def create_index(apps, schema_editor):
    await schema_editor.client.execute_script(
        f'CREATE INDEX "{NAME}" ON "scimhost_delivery" ("sink", "key", "event_seq") '
        "WHERE \"state\" IN ('pending', 'inflight')"
    )


async def drop_index(apps, schema_editor):
    await schema_editor.client.execute_script(f'DROP INDEX IF EXISTS "{NAME}"')


class Migration(migrations.Migration):
    dependencies = [("scimhost", "0011_numbers_index")]

    initial = False

    operations = [ops.RunPython(create_index, drop_index)]
