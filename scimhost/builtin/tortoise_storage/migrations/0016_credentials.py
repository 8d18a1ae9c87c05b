"""Credentials of auth scheme plugins (client secrets, issued access tokens), hashed, per source."""

from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("scimhost", "0015_failed_requests")]

    initial = False

    operations = [
        ops.CreateModel(
            name="Credential",
            fields=[
                ("id", fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ("source", fields.CharField(max_length=63)),
                ("kind", fields.CharField(max_length=63)),
                ("credential_id", fields.CharField(max_length=128)),
                ("secret_hash", fields.CharField(max_length=64)),
                ("created", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ("expires", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ("session", fields.BooleanField(default=False)),
                ("last_used", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={
                "table": "scimhost_credential",
                "app": "scimhost",
                "unique_together": (("source", "kind", "credential_id"),),
                "pk_attr": "id",
                "table_description": "A credential an auth scheme plugin keeps for a source: the hash of its secret part.",
            },
            bases=["Model"],
        ),
    ]
