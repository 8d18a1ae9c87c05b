from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name='ServiceAccount',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('source', fields.CharField(unique=True, max_length=63)),
                ('username', fields.CharField(max_length=150)),
                ('token_hash', fields.CharField(null=True, max_length=64)),
                ('created', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('token_created', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'scimhost_service_account', 'app': 'scimhost', 'pk_attr': 'id', 'table_description': "A source's service account and the hash of its current token."},
            bases=['Model'],
        ),
    ]
