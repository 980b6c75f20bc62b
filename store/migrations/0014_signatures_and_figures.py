"""Issue #20's remaining tables: the verdicts of signed documents that came with cases,
the schools' figures as computed cells (the page reads them instead of counting a school
year per request), and saved catalogue queries behind reading lists."""

from tortoise import fields, migrations
from tortoise.fields.base import OnDelete
from tortoise.indexes import Index
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [('models', '0013_school_and_library')]

    initial = False

    operations = [
        ops.AddField(
            model_name='ReadingList',
            name='query',
            field=fields.CharField(null=True, max_length=500),
        ),
        ops.AddField(
            model_name='ReadingList',
            name='refreshed_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.CreateModel(
            name='DocumentSignature',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('case', fields.ForeignKeyField('models.Case', source_field='case_id', db_constraint=True, to_field='number', related_name='signatures', on_delete=OnDelete.CASCADE)),
                ('attachment', fields.ForeignKeyField('models.Attachment', source_field='attachment_id', db_constraint=True, to_field='id', related_name='signatures', on_delete=OnDelete.CASCADE)),
                ('signed_attachment_id', fields.IntField(null=True)),
                ('kind', fields.CharField(max_length=16)),
                ('status', fields.CharField(max_length=16)),
                ('signer', fields.CharField(default='', max_length=300)),
                ('signed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('qualified', fields.BooleanField(default=False)),
                ('detail', fields.CharField(default='', max_length=500)),
                ('checked_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'document_signature', 'app': 'models', 'indexes': [Index(fields=['case_id', 'status'])], 'pk_attr': 'id', 'table_description': 'What the verification of one signature found'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='FigureCell',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('year', fields.SmallIntField()),
                ('figure', fields.CharField(max_length=32)),
                ('row_label', fields.CharField(max_length=100)),
                ('column_label', fields.CharField(max_length=100)),
                ('position', fields.IntField(default=0)),
                ('value', fields.FloatField()),
                ('pupils', fields.IntField()),
                ('computed_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'figure_cell', 'app': 'models', 'indexes': [Index(fields=['year', 'figure'])], 'pk_attr': 'id', 'table_description': 'One cell of the schools\' figures'},
            bases=['Model'],
        ),
    ]
