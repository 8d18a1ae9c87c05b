"""Intents of writes made in another resource store (an LDAP directory): the outbox role's
half of a write whose resource lives elsewhere."""

from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("scimhost", "0019_index_fingerprint")]

    initial = False

    operations = [
        ops.CreateModel(
            name="Intent",
            fields=[
                ("id", fields.CharField(max_length=40, primary_key=True, unique=True, db_index=True)),
                ("source", fields.CharField(max_length=63)),
                ("resource_type", fields.CharField(max_length=64)),
                ("key", fields.CharField(max_length=1024)),
                ("action", fields.CharField(max_length=16)),
                ("resource_id", fields.CharField(max_length=128, null=True)),
                ("before_version", fields.BigIntField(null=True)),
                ("external_id", fields.TextField(null=True, unique=False)),
                ("event", fields.TextField(unique=False)),
                ("opened", fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={
                "table": "scimhost_intent",
                "app": "scimhost",
                "unique_together": (("source", "resource_type", "key"),),
                "pk_attr": "id",
                "table_description": "A write in another resource store, recorded before it and settled into its event after.",
            },
            bases=["Model"],
        ),
    ]
