from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('scimhost', '0007_event_log')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Delivery',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('sink', fields.CharField(max_length=63)),
                ('event_seq', fields.BigIntField()),
                ('source', fields.CharField(max_length=63)),
                ('key', fields.CharField(max_length=128)),
                ('state', fields.CharField(max_length=16)),
                ('attempts', fields.IntField()),
                ('next_attempt', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('lease_until', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('last_status', fields.IntField(null=True)),
                ('last_error', fields.TextField(null=True, unique=False)),
                ('done_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'scimhost_delivery', 'app': 'scimhost', 'unique_together': (('sink', 'event_seq'),), 'indexes': [Index(fields=['sink', 'state', 'next_attempt']), Index(fields=['sink', 'key', 'event_seq'])], 'pk_attr': 'id', 'table_description': 'One event to deliver to one sink: the work queue of the dispatcher.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Lease',
            fields=[
                ('name', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=63)),
                ('owner', fields.CharField(max_length=128)),
                ('until', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'scimhost_lease', 'app': 'scimhost', 'pk_attr': 'name', 'table_description': 'Which process runs a singleton job (the dispatcher) and until when, renewed while it lives.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='SinkState',
            fields=[
                ('name', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=63)),
                ('paused', fields.BooleanField()),
                ('reason', fields.TextField(null=True, unique=False)),
                ('updated', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'scimhost_sink_state', 'app': 'scimhost', 'pk_attr': 'name', 'table_description': 'A sink paused by an operator or by its receiver (410 Gone), with the reason.'},
            bases=['Model'],
        ),
    ]

