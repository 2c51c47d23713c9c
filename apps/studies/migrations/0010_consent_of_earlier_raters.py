"""Raters who started before the consent step existed agreed to the start page they saw:
their participations count as consented when they started, so a study running across
the upgrade does not send them back to the start page."""

from django.db import migrations
from django.db.models import F


def forwards(apps, schema_editor):
    Participation = apps.get_model("studies", "Participation")
    Participation.objects.filter(consented_at__isnull=True).update(consented_at=F("created_at"))


class Migration(migrations.Migration):
    dependencies = [("studies", "0009_participation_check_counts")]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
