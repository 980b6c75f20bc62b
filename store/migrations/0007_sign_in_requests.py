"""Console sign-in requests (#18, faults 5 and 6): the form is stored and answered at once,
and a worker sends the link afterwards, so the answer is alike for every address."""

from tortoise import fields, migrations
from tortoise.indexes import Index
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [('models', '0006_unread_mail')]

    initial = False

    operations = [
        ops.CreateModel(
            name='SignInRequest',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('email', fields.CharField(default='', max_length=320)),
                ('browser_hash', fields.CharField(max_length=64)),
                ('dalej', fields.CharField(default='/panel/', description='the console page to go back to after signing in (a /panel/ path)', max_length=500)),
                ('requested_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('person_id', fields.IntField(null=True)),
                ('handled_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'sign_in_request', 'app': 'models', 'indexes': [Index(fields=['handled_at', 'id']), Index(fields=['person_id', 'browser_hash'])], 'pk_attr': 'id', 'table_description': 'A console sign-in form as posted: stored before the page answers, handled after'},
            bases=['Model'],
        ),
    ]
