from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('scimhost', '0003_attribute_index')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Resource',
            name='record',
            field=fields.TextField(null=True, unique=False),
        ),
    ]
