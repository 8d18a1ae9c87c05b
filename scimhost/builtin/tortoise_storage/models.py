"""Tortoise models: the schema of the built-in store (migrations are generated from these)."""

from tortoise import fields, models


class ServiceAccount(models.Model):
    """A source's service account and the hash of its current token."""

    id = fields.IntField(primary_key=True)
    source = fields.CharField(max_length=63, unique=True)
    username = fields.CharField(max_length=150)
    token_hash = fields.CharField(max_length=64, null=True)
    created = fields.DatetimeField()
    token_created = fields.DatetimeField(null=True)

    class Meta:
        table = "scimhost_service_account"
