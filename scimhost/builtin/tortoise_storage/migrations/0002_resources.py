from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('scimhost', '0001_initial')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Resource',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=36)),
                ('source', fields.CharField(max_length=63)),
                ('resource_type', fields.CharField(max_length=64)),
                ('external_id', fields.TextField(null=True, unique=False)),
                ('display', fields.TextField(null=True, unique=False)),
                ('data', fields.TextField(unique=False)),
                ('password_hash', fields.TextField(null=True, unique=False)),
                ('version', fields.IntField()),
                ('created', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('last_modified', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'scimhost_resource', 'app': 'scimhost', 'indexes': [Index(fields=['source', 'resource_type', 'created', 'id'])], 'pk_attr': 'id', 'table_description': 'A User, Group or other resource of one source, with its JSON document.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Member',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('group', fields.ForeignKeyField('scimhost.Resource', source_field='group_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.CASCADE)),
                ('member', fields.ForeignKeyField('scimhost.Resource', source_field='member_id', db_index=True, db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.CASCADE)),
                ('member_type', fields.CharField(max_length=64)),
            ],
            options={'table': 'scimhost_member', 'app': 'scimhost', 'unique_together': (('group', 'member'),), 'pk_attr': 'id', 'table_description': 'One member of one group (membership is rows, never a JSON array).'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='UniqueValue',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('source', fields.CharField(max_length=63)),
                ('resource_type', fields.CharField(max_length=64)),
                ('attribute', fields.CharField(max_length=255)),
                ('value', fields.TextField(unique=False)),
                ('resource', fields.ForeignKeyField('scimhost.Resource', source_field='resource_id', db_index=True, db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.CASCADE)),
            ],
            options={'table': 'scimhost_unique', 'app': 'scimhost', 'unique_together': (('source', 'resource_type', 'attribute', 'value'),), 'pk_attr': 'id', 'table_description': 'A normalised value of a uniqueness-server attribute, kept unique by an index.'},
            bases=['Model'],
        ),
    ]
