"""Soft-deleted resources, kept aside until restored or purged (a source's on_delete = "soft")."""

from tortoise import fields, migrations
from tortoise.indexes import Index
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("scimhost", "0016_credentials")]

    initial = False

    operations = [
        ops.CreateModel(
            name="DeletedResource",
            fields=[
                ("id", fields.CharField(primary_key=True, unique=True, db_index=True, max_length=36)),
                ("source", fields.CharField(max_length=63)),
                ("resource_type", fields.CharField(max_length=64)),
                ("external_id", fields.TextField(null=True, unique=False)),
                ("name_key", fields.TextField(null=True, unique=False)),
                ("data", fields.TextField(unique=False)),
                ("record", fields.TextField(null=True, unique=False)),
                ("version", fields.IntField()),
                ("created", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ("deleted", fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={
                "table": "scimhost_deleted_resource",
                "app": "scimhost",
                "indexes": [
                    Index(fields=["source", "resource_type", "deleted"]),
                    Index(fields=["source", "resource_type", "external_id"]),
                    Index(fields=["source", "resource_type", "name_key"]),
                ],
                "pk_attr": "id",
                "table_description": "A soft-deleted resource, kept aside (no index or unique rows) until restored or purged.",
            },
            bases=["Model"],
        ),
    ]
