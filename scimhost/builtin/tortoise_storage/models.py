"""Tortoise models: the schema of the built-in store (migrations are generated from these).

Docstrings become SQL table comments: no semicolons in them (tortoise splits SQL scripts there).
"""

from tortoise import fields, models
from tortoise.indexes import Index


class ServiceAccount(models.Model):
    """A source's service account, the hash of its current token and of the one it replaced."""

    id = fields.IntField(primary_key=True)
    source = fields.CharField(max_length=63, unique=True)
    username = fields.CharField(max_length=150)
    token_hash = fields.CharField(max_length=64, null=True)
    created = fields.DatetimeField()
    token_created = fields.DatetimeField(null=True)
    # The replaced token keeps working until previous_expires (a rotation's grace period).
    previous_hash = fields.CharField(max_length=64, null=True)
    previous_expires = fields.DatetimeField(null=True)

    class Meta:
        table = "scimhost_service_account"


class Resource(models.Model):
    """A User, Group or other resource of one source, with its JSON document."""

    id = fields.CharField(max_length=36, primary_key=True)
    source = fields.CharField(max_length=63)
    resource_type = fields.CharField(max_length=64)
    external_id = fields.TextField(null=True)
    # The name members and group lists show: displayName, else userName.
    display = fields.TextField(null=True)
    data = fields.TextField()
    # The directory record the source's property mappings made (JSON).
    record = fields.TextField(null=True)
    password_hash = fields.TextField(null=True)
    version = fields.IntField()
    created = fields.DatetimeField()
    last_modified = fields.DatetimeField()
    # The index configuration its index rows and unique values were computed under.
    index_fingerprint = fields.CharField(max_length=64, null=True)

    class Meta:
        table = "scimhost_resource"
        indexes = (("source", "resource_type", "created", "id"),)


class UniqueValue(models.Model):
    """A normalised value of a uniqueness-server attribute, kept unique by an index."""

    id = fields.BigIntField(primary_key=True)
    source = fields.CharField(max_length=63)
    resource_type = fields.CharField(max_length=64)
    attribute = fields.CharField(max_length=255)
    value = fields.TextField()
    resource: fields.ForeignKeyRelation[Resource] = fields.ForeignKeyField(
        "scimhost.Resource", related_name=False, on_delete=fields.CASCADE, db_index=True
    )

    class Meta:
        table = "scimhost_unique"
        unique_together = (("source", "resource_type", "attribute", "value"),)


class Member(models.Model):
    """One member of one group (membership is rows, never a JSON array)."""

    id = fields.BigIntField(primary_key=True)
    group: fields.ForeignKeyRelation[Resource] = fields.ForeignKeyField(
        "scimhost.Resource", related_name=False, on_delete=fields.CASCADE
    )
    member: fields.ForeignKeyRelation[Resource] = fields.ForeignKeyField(
        "scimhost.Resource", related_name=False, on_delete=fields.CASCADE, db_index=True
    )
    member_type = fields.CharField(max_length=64)
    # The group's source (and its members'): every statement on these rows is scoped by it.
    source = fields.CharField(max_length=63, null=True)

    class Meta:
        table = "scimhost_member"
        unique_together = (("group", "member"),)
        # A group's members in the order they joined, a batch at a time (keyset on id): with
        # only the unique (group, member) index, SQLite chose to walk every membership row in
        # id order, 7-10 ms for a small group once one group held 100 000 members.
        indexes = (("group_id", "id"),)


class AttributeValue(models.Model):
    """One value of one attribute of a resource, normalised, for filters pushed into SQL."""

    id = fields.BigIntField(primary_key=True)
    resource: fields.ForeignKeyRelation[Resource] = fields.ForeignKeyField(
        "scimhost.Resource", related_name=False, on_delete=fields.CASCADE
    )
    source = fields.CharField(max_length=63)
    resource_type = fields.CharField(max_length=64)
    # Lower-cased attribute path, urn-qualified for extensions: emails.value, name.givenname
    path = fields.CharField(max_length=512)
    # Which value of a multi-valued attribute, so a value filter matches within one value.
    item = fields.IntField()
    value_text = fields.TextField(null=True)
    value_num = fields.FloatField(null=True)

    class Meta:
        table = "scimhost_attr"
        indexes = (
            # drivers: equality, prefixes and ranges on one attribute (numbers: a partial index of
            # the rows with a number, which migration 0011 creates in SQL)
            ("source", "resource_type", "path", "value_text"),
            # conditions: the index rows of one resource (and the cascade on delete)
            ("resource_id", "path", "item"),
        )


class ResourceCount(models.Model):
    """How many resources of one type a source has (kept by every create and delete).

    An unfiltered list reads this instead of counting a million rows."""

    id = fields.IntField(primary_key=True)
    source = fields.CharField(max_length=63)
    resource_type = fields.CharField(max_length=64)
    count = fields.BigIntField()

    class Meta:
        table = "scimhost_count"
        unique_together = (("source", "resource_type"),)


class Event(models.Model):
    """One committed change of a resource, written in the same transaction as the change (the audit trail)."""

    # Commit order per resource (each write holds the resource's row when it inserts its event).
    seq = fields.BigIntField(primary_key=True)
    # "evt_" and 32 hex digits: the id consumers deduplicate on.
    id = fields.CharField(max_length=40, unique=True)
    created = fields.DatetimeField()
    source = fields.CharField(max_length=63)
    resource_type = fields.CharField(max_length=64)
    resource_id = fields.CharField(max_length=36)
    external_id = fields.TextField(null=True)
    action = fields.CharField(max_length=16)
    # meta.version after the write (null on delete).
    version = fields.IntField(null=True)
    # JSON: who (scheme, account, request id, client address), what changed, member changes,
    # and the resource and directory record after the write (null on delete).
    actor = fields.TextField()
    changed = fields.TextField()
    members = fields.TextField(null=True)
    resource = fields.TextField(null=True)
    record = fields.TextField(null=True)
    # A PATCH's operations as sent, writeOnly values left out (JSON).
    operations = fields.TextField(null=True)

    class Meta:
        table = "scimhost_event"
        indexes = (
            # a resource's history, and a source's events in order
            ("source", "resource_type", "resource_id", "seq"),
            ("source", "seq"),
            # retention: the oldest first
            ("created",),
        )


class Delivery(models.Model):
    """One event to deliver to one sink: the work queue of the dispatcher."""

    id = fields.BigIntField(primary_key=True)
    sink = fields.CharField(max_length=63)
    event_seq = fields.BigIntField()
    source = fields.CharField(max_length=63)
    # The ordering key (resource type and id): one delivery per key is in flight at a time.
    key = fields.CharField(max_length=128)
    # pending, inflight, done or dead
    state = fields.CharField(max_length=16)
    attempts = fields.IntField()
    next_attempt = fields.DatetimeField()
    lease_until = fields.DatetimeField(null=True)
    last_status = fields.IntField(null=True)
    last_error = fields.TextField(null=True)
    done_at = fields.DatetimeField(null=True)
    # Whether every earlier delivery of its key is finished, as the dispatcher has found:
    # 1 it may be sent, 0 it waits for an earlier one, NULL not yet looked at (as written).
    head = fields.SmallIntField(null=True)

    class Meta:
        table = "scimhost_delivery"
        unique_together = (("sink", "event_seq"),)
        indexes = (
            # due work of a sink
            ("sink", "state", "next_attempt"),
            # the head of each key: the oldest unfinished delivery
            ("sink", "key", "event_seq"),
        )


class SinkState(models.Model):
    """A sink paused by an operator or by its receiver (410 Gone), with the reason."""

    name = fields.CharField(max_length=63, primary_key=True)
    paused = fields.BooleanField()
    reason = fields.TextField(null=True)
    updated = fields.DatetimeField()

    class Meta:
        table = "scimhost_sink_state"


class Lease(models.Model):
    """Which process runs a singleton job (the dispatcher) and until when, renewed while it lives."""

    name = fields.CharField(max_length=63, primary_key=True)
    owner = fields.CharField(max_length=128)
    until = fields.DatetimeField()

    class Meta:
        table = "scimhost_lease"


class SourceActivity(models.Model):
    """Requests and errors a source received, per minute, summed over every serving process."""

    id = fields.BigIntField(primary_key=True)
    source = fields.CharField(max_length=63)
    minute = fields.DatetimeField()
    requests = fields.IntField()
    errors = fields.IntField()
    # The newest error of the minute: when, the status and what the client was told.
    last_error_at = fields.DatetimeField(null=True)
    last_error = fields.TextField(null=True)

    class Meta:
        table = "scimhost_source_activity"
        unique_together = (("source", "minute"),)


class FailedRequest(models.Model):
    """A request a source's client was answered with an error, for the admin page's list."""

    id = fields.BigIntField(primary_key=True)
    source = fields.CharField(max_length=63)
    at = fields.DatetimeField()
    method = fields.CharField(max_length=16)
    path = fields.TextField()
    status = fields.IntField()
    scim_type = fields.CharField(max_length=64, null=True)
    detail = fields.TextField()
    request_id = fields.CharField(max_length=128, null=True)

    class Meta:
        table = "scimhost_failed_request"
        indexes = (("source", "at"),)


class Credential(models.Model):
    """A credential an auth scheme plugin keeps for a source: the hash of its secret part."""

    id = fields.BigIntField(primary_key=True)
    source = fields.CharField(max_length=63)
    kind = fields.CharField(max_length=63)
    credential_id = fields.CharField(max_length=128)
    secret_hash = fields.CharField(max_length=64)
    created = fields.DatetimeField()
    expires = fields.DatetimeField(null=True)
    session = fields.BooleanField(default=False)
    last_used = fields.DatetimeField(null=True)

    class Meta:
        table = "scimhost_credential"
        unique_together = (("source", "kind", "credential_id"),)


class DeletedResource(models.Model):
    """A soft-deleted resource, kept aside (no index or unique rows) until restored or purged."""

    id = fields.CharField(max_length=36, primary_key=True)
    source = fields.CharField(max_length=63)
    resource_type = fields.CharField(max_length=64)
    external_id = fields.TextField(null=True)
    # userName or displayName as stored, lower-cased: what a source may restore by.
    name_key = fields.TextField(null=True)
    data = fields.TextField()
    record = fields.TextField(null=True)
    version = fields.IntField()
    created = fields.DatetimeField()
    deleted = fields.DatetimeField()

    class Meta:
        table = "scimhost_deleted_resource"
        indexes = (
            Index(fields=["source", "resource_type", "deleted"]),
            Index(fields=["source", "resource_type", "external_id"]),
            Index(fields=["source", "resource_type", "name_key"]),
        )


class Intent(models.Model):
    """A write in another resource store, recorded before it and settled into its event after."""

    id = fields.CharField(max_length=40, primary_key=True)
    source = fields.CharField(max_length=63)
    resource_type = fields.CharField(max_length=64)
    key = fields.CharField(max_length=1024)
    action = fields.CharField(max_length=16)
    resource_id = fields.CharField(max_length=128, null=True)
    before_version = fields.BigIntField(null=True)
    external_id = fields.TextField(null=True)
    event = fields.TextField()
    opened = fields.DatetimeField()

    class Meta:
        table = "scimhost_intent"
        unique_together = (("source", "resource_type", "key"),)
