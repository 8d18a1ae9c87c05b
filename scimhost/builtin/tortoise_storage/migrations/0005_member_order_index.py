from tortoise import migrations
from tortoise.indexes import Index
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [('scimhost', '0004_directory_record')]

    initial = False

    operations = [
        ops.AddIndex(model_name='Member', index=Index(fields=['group_id', 'id'])),
    ]
