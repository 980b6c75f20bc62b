from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0003_trust')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Attendance',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=64)),
                ('student_id', fields.CharField(db_index=True, max_length=64)),
                ('date', fields.DateField()),
                ('period', fields.SmallIntField()),
                ('status', fields.CharField(max_length=10)),
                ('subject', fields.CharField(null=True, max_length=100)),
                ('announced_status', fields.CharField(null=True, description='the status guardians were last told (None: not yet), and an excused absence that was', max_length=10)),
                ('batch_id', fields.BigIntField(null=True, db_index=True, description='the gathering batch that will announce it (EMIL_ATTENDANCE_GATHER_MINUTES)')),
                ('updated_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'attendance', 'app': 'models', 'pk_attr': 'id', 'table_description': "The attendance entry of a student for one lesson, as the register last described it."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='AttendanceBatch',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('student_id', fields.CharField(max_length=64)),
                ('due_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('sent_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'attendance_batch', 'app': 'models', 'indexes': [Index(fields=['sent_at', 'due_at']), Index(fields=['student_id', 'sent_at'])], 'pk_attr': 'id', 'table_description': 'Entries of one child arriving close together, told to guardians as one message'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='DigestItem',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('person_id', fields.IntField()),
                ('kind', fields.CharField(max_length=16)),
                ('key', fields.CharField(max_length=200)),
                ('lines', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('sent_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'digest_item', 'app': 'models', 'unique_together': (('person_id', 'key'),), 'indexes': [Index(fields=['person_id', 'sent_at'])], 'pk_attr': 'id', 'table_description': 'A school notice waiting for the daily digest of a guardian (preference: digest).'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Homework',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=64)),
                ('class_name', fields.CharField(db_index=True, max_length=32)),
                ('subject', fields.CharField(max_length=100)),
                ('kind', fields.CharField(max_length=10)),
                ('title', fields.CharField(max_length=300)),
                ('due', fields.DateField()),
                ('description', fields.TextField(default='', unique=False)),
                ('updated_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'homework', 'app': 'models', 'pk_attr': 'id', 'table_description': 'Homework, a test (sprawdzian) or a quiz (kartkówka) for a class.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Remark',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=64)),
                ('student_id', fields.CharField(db_index=True, max_length=64)),
                ('kind', fields.CharField(max_length=10)),
                ('text', fields.CharField(max_length=2000)),
                ('teacher', fields.CharField(max_length=200)),
                ('recorded_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('updated_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'remark', 'app': 'models', 'pk_attr': 'id', 'table_description': "A remark of a teacher (uwaga): positive, negative or neutral."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='SchoolMessage',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=64)),
                ('class_name', fields.CharField(null=True, max_length=32)),
                ('student_id', fields.CharField(null=True, max_length=64)),
                ('title', fields.CharField(max_length=300)),
                ('body', fields.TextField(unique=False)),
                ('sender', fields.CharField(max_length=200)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'school_message', 'app': 'models', 'pk_attr': 'id', 'table_description': 'A message from the school to the guardians of a class or of one student.'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='Person',
            name='notices',
            field=fields.JSONField(null=True, description='per notice type: instant, digest or off (absent: instant, and grades also follow', encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads),
        ),
    ]
