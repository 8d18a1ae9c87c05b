from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('scimhost', '0006_member_source')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Event',
            fields=[
                ('seq', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('id', fields.CharField(unique=True, max_length=40)),
                ('created', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('source', fields.CharField(max_length=63)),
                ('resource_type', fields.CharField(max_length=64)),
                ('resource_id', fields.CharField(max_length=36)),
                ('external_id', fields.TextField(null=True, unique=False)),
                ('action', fields.CharField(max_length=16)),
                ('version', fields.IntField(null=True)),
                ('actor', fields.TextField(unique=False)),
                ('changed', fields.TextField(unique=False)),
                ('members', fields.TextField(null=True, unique=False)),
                ('resource', fields.TextField(null=True, unique=False)),
                ('record', fields.TextField(null=True, unique=False)),
            ],
            options={'table': 'scimhost_event', 'app': 'scimhost', 'indexes': [Index(fields=['source', 'resource_type', 'resource_id', 'seq']), Index(fields=['source', 'seq']), Index(fields=['created'])], 'pk_attr': 'seq', 'table_description': 'One committed change of a resource, written in the same transaction as the change (the audit trail).'},
            bases=['Model'],
        ),
    ]

