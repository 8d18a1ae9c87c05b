from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('scimhost', '0008_deliveries')]

    initial = False

    operations = [
        ops.CreateModel(
            name='SourceActivity',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('source', fields.CharField(max_length=63)),
                ('minute', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('requests', fields.IntField()),
                ('errors', fields.IntField()),
                ('last_error_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('last_error', fields.TextField(null=True, unique=False)),
            ],
            options={'table': 'scimhost_source_activity', 'app': 'scimhost', 'unique_together': (('source', 'minute'),), 'pk_attr': 'id', 'table_description': 'Requests and errors a source received, per minute, summed over every serving process.'},
            bases=['Model'],
        ),
        ops.AlterModelOptions(
            name='ServiceAccount',
            options={'table': 'scimhost_service_account', 'app': 'scimhost', 'pk_attr': 'id', 'table_description': "A source's service account, the hash of its current token and of the one it replaced."},
        ),
        ops.AddField(
            model_name='ServiceAccount',
            name='previous_expires',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='ServiceAccount',
            name='previous_hash',
            field=fields.CharField(null=True, max_length=64),
        ),
    ]

