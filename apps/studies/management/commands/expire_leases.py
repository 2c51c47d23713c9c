"""Free answer slots whose lease ran out (what Celery beat does every minute)."""

from django.core.management.base import BaseCommand

from apps.core import clock
from apps.studies.allocation import leases_expire


class Command(BaseCommand):
    help = "Free the answer slots whose lease ran out (raters who left a task)."

    def handle(self, *args, **options) -> None:
        freed = leases_expire(now=clock.now())
        self.stdout.write(f"{freed} expired lease(s) freed.")
