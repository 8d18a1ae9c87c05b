from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [('scimhost', '0005_member_order_index')]

    initial = False

    # Membership rows name their source, so every statement on them is scoped like the rest
    # (scope.py). Existing rows take the source of their group.
    operations = [
        ops.AddField(
            model_name='Member',
            name='source',
            field=fields.CharField(max_length=63, null=True, unique=False),
        ),
        ops.RunSQL(
            "UPDATE scimhost_member SET source = "
            "(SELECT g.source FROM scimhost_resource g WHERE g.id = scimhost_member.group_id)"
        ),
    ]
