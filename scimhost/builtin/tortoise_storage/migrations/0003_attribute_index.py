from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

async def code_point_text_index(apps, schema_editor):
    """PostgreSQL orders text by the database collation; prefix (`sw`) and range filters compare
    by code point (as SQLite does), which only an index in the "C" collation serves."""
    if schema_editor.DIALECT == "postgres":
        await schema_editor.client.execute_script(
            'CREATE INDEX "idx_scimhost_attr_text_c" ON "scimhost_attr" '
            '("source", "resource_type", "path", "value_text" COLLATE "C")'
        )


async def drop_code_point_text_index(apps, schema_editor):
    if schema_editor.DIALECT == "postgres":
        await schema_editor.client.execute_script('DROP INDEX IF EXISTS "idx_scimhost_attr_text_c"')


class Migration(migrations.Migration):
    dependencies = [('scimhost', '0002_resources')]

    initial = False

    operations = [
        ops.CreateModel(
            name='AttributeValue',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('resource', fields.ForeignKeyField('scimhost.Resource', source_field='resource_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.CASCADE)),
                ('source', fields.CharField(max_length=63)),
                ('resource_type', fields.CharField(max_length=64)),
                ('path', fields.CharField(max_length=512)),
                ('item', fields.IntField()),
                ('value_text', fields.TextField(null=True, unique=False)),
                ('value_num', fields.FloatField(null=True)),
            ],
            options={'table': 'scimhost_attr', 'app': 'scimhost', 'indexes': [Index(fields=['source', 'resource_type', 'path', 'value_text']), Index(fields=['source', 'resource_type', 'path', 'value_num']), Index(fields=['resource_id', 'path', 'item'])], 'pk_attr': 'id', 'table_description': 'One value of one attribute of a resource, normalised, for filters pushed into SQL.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ResourceCount',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('source', fields.CharField(max_length=63)),
                ('resource_type', fields.CharField(max_length=64)),
                ('count', fields.BigIntField()),
            ],
            options={'table': 'scimhost_count', 'app': 'scimhost', 'unique_together': (('source', 'resource_type'),), 'pk_attr': 'id', 'table_description': 'How many resources of one type a source has (kept by every create and delete).'},
            bases=['Model'],
        ),
        ops.RunPython(code_point_text_index, drop_code_point_text_index),
    ]
