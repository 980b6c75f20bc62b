from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0001_initial')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Leadership',
            fields=[
                ('name', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=64)),
                ('holder', fields.CharField(max_length=64)),
                ('until', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'leadership', 'app': 'models', 'pk_attr': 'name', 'table_description': 'Who holds a cluster-wide role (the Telegram sender and poller) and until when.'},
            bases=['Model'],
        ),
    ]
