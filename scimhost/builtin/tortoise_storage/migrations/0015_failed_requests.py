"""The failed requests of each source, listed on the admin page (pruned with the activity)."""

from tortoise import fields, migrations
from tortoise.indexes import Index
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("scimhost", "0014_sqlite_resource_statistics")]

    initial = False

    operations = [
        ops.CreateModel(
            name="FailedRequest",
            fields=[
                ("id", fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ("source", fields.CharField(max_length=63)),
                ("at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ("method", fields.CharField(max_length=16)),
                ("path", fields.TextField(unique=False)),
                ("status", fields.IntField()),
                ("scim_type", fields.CharField(null=True, max_length=64)),
                ("detail", fields.TextField(unique=False)),
                ("request_id", fields.CharField(null=True, max_length=128)),
            ],
            options={
                "table": "scimhost_failed_request",
                "app": "scimhost",
                "indexes": [Index(fields=["source", "at"])],
                "pk_attr": "id",
                "table_description": "A request a source's client was answered with an error, for the admin page's list.",
            },
            bases=["Model"],
        ),
    ]
