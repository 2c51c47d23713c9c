"""Slots updated in place: the lease columns leave their index, the table keeps room.

A claim writes ``holder`` and ``lease_expires_at``; with neither indexed and
free room on the page (fillfactor 60), PostgreSQL makes that a HOT update:
no new index entries for later claims to walk past. SQLite has no fillfactor.
The (rater, image) index goes too: the study-wide image check now reaches
the rater's assignments through their participations.
"""

from django.db import migrations

FILLFACTOR = 60


def set_fillfactor(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"ALTER TABLE studies_slot SET (fillfactor = {FILLFACTOR})")


def reset_fillfactor(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE studies_slot RESET (fillfactor)")


class Migration(migrations.Migration):

    dependencies = [
        ('studies', '0004_hot_path_keys'),
    ]

    operations = [
        migrations.RunPython(set_fillfactor, reset_fillfactor),
        migrations.RemoveIndex(
            model_name='assignment',
            name='assignment_rater_image',
        ),
        migrations.RemoveIndex(
            model_name='slot',
            name='slot_lease_expiry',
        ),
    ]
