"""The one clock the rater loop reads, so tests can move time.

Services call ``clock.now()`` (never ``timezone.now()`` directly) wherever a
lease is written or compared; a test replaces it with ``monkeypatch.setattr``
(``tests.studies.conftest.clock``) to expire leases without sleeping.
"""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone


def now() -> datetime:
    return timezone.now()
