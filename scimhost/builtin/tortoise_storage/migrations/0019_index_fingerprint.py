"""The fingerprint of the index configuration a resource's index rows were computed under: an
update whose fingerprint matches writes the difference without reading the rows back."""

from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("scimhost", "0018_event_operations")]

    initial = False

    operations = [
        ops.AddField(
            model_name="Resource",
            name="index_fingerprint",
            field=fields.CharField(max_length=64, null=True, unique=False),
        ),
    ]
