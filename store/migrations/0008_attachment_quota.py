"""Attachment quotas (#18, fault 3): what a case and the store hold is a COUNT and a SUM
over `attachment.size`. An index on (case_id, size) answers both from the index alone, so
counting never reads the rows, whose blobs fill their pages; it takes the place of the
index on case_id, which it starts with."""

from tortoise import migrations
from tortoise.indexes import Index
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [('models', '0007_sign_in_requests')]

    initial = False

    operations = [
        ops.RemoveIndex(
            model_name='Attachment',
            fields=['case_id'],
        ),
        ops.AddIndex(
            model_name='Attachment',
            index=Index(fields=['case_id', 'size']),
        ),
    ]
