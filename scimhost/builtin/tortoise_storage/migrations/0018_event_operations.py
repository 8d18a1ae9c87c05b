"""A PATCH's operations kept with its event (the SET sink's full patch events carry them)."""

from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("scimhost", "0017_deleted_resources")]

    initial = False

    operations = [
        ops.AddField(
            model_name="Event",
            name="operations",
            field=fields.TextField(null=True, unique=False),
        ),
    ]
