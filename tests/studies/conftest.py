from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.utils import timezone


class FakeClock:
    """A clock the tests move by hand; services read it through ``apps.core.clock.now``."""

    def __init__(self) -> None:
        self.current: datetime = timezone.now()

    def now(self) -> datetime:
        return self.current

    def advance(self, seconds: float) -> datetime:
        self.current += timedelta(seconds=seconds)
        return self.current


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr("apps.core.clock.now", fake.now)
    return fake


@pytest.fixture(autouse=True)
def _fresh_rank_floors():
    """Each test starts with no per-process rank floor (a few tests reorder ranks by hand)."""
    from apps.studies.allocation import lock_objects

    lock_objects._FLOORS.clear()
    yield
    lock_objects._FLOORS.clear()
