"""Issue #20's tables — lesson topics, a pupil's own account (`person.student_id`), the
library's reading lists and who subscribed to them — and an index for an address's last
message (the console's person page read the whole outbox, #19)."""

from tortoise import fields, migrations
from tortoise.indexes import Index
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [('models', '0012_case_contacts')]

    initial = False

    operations = [
        ops.AddIndex(
            model_name='Outbox',
            index=Index(fields=['channel', 'recipient', 'id']),
        ),
        ops.AddField(
            model_name='Person',
            name='student_id',
            field=fields.CharField(null=True, db_index=True, max_length=64),
        ),
        ops.CreateModel(
            name='LessonTopic',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=64)),
                ('class_name', fields.CharField(max_length=32)),
                ('subject', fields.CharField(max_length=100)),
                ('date', fields.DateField()),
                ('period', fields.SmallIntField()),
                ('topic', fields.CharField(max_length=500)),
                ('teacher', fields.CharField(default='', max_length=200)),
                ('updated_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'lesson_topic', 'app': 'models', 'indexes': [Index(fields=['class_name', 'date'])], 'pk_attr': 'id', 'table_description': "A lesson's topic as the register recorded it"},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ReadingList',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=64)),
                ('title', fields.CharField(max_length=300)),
                ('description', fields.TextField(default='')),
                ('updated_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'reading_list', 'app': 'models', 'pk_attr': 'id', 'table_description': 'A list the library publishes'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ReadingListItem',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('list_id', fields.CharField(db_index=True, max_length=64)),
                ('key', fields.CharField(max_length=200)),
                ('title', fields.CharField(max_length=500)),
                ('author', fields.CharField(default='', max_length=300)),
                ('year', fields.SmallIntField(null=True)),
                ('isbn', fields.CharField(default='', max_length=20)),
                ('note', fields.CharField(default='', max_length=500)),
                ('position', fields.IntField(default=0)),
                ('added_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'reading_list_item', 'app': 'models', 'unique_together': (('list_id', 'key'),), 'pk_attr': 'id', 'table_description': 'One book on a reading list'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ListSubscription',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('person_id', fields.IntField(db_index=True)),
                ('list_id', fields.CharField(max_length=64)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'list_subscription', 'app': 'models', 'unique_together': (('person_id', 'list_id'),), 'pk_attr': 'id', 'table_description': 'A person subscribed to a reading list'},
            bases=['Model'],
        ),
    ]
