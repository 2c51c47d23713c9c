"""Bringing the provider's records home: one :class:`Submission` per worker's attempt.

Each record is matched to the participation of the same worker in the
publication's experiment (MTurk: ``workerId``; Prolific: the participant
id). A record stays unmatched when nobody of that id joined: it is listed
and never approved automatically.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from apps.core import clock
from apps.recruitment.models import Publication, Submission
from apps.recruitment.providers import provider_for
from apps.studies.models import Participation


@dataclass
class SyncReport:
    publication: Publication
    seen: int = 0
    new: int = 0
    changed: int = 0
    unmatched: list[str] = field(default_factory=list)  # external ids

    @property
    def text(self) -> str:
        return self.line()

    def line(self) -> str:
        text = (
            f"{self.publication}: {self.seen} submissions ({self.new} new, "
            f"{self.changed} changed status)"
        )
        if self.unmatched:
            text += f"; {len(self.unmatched)} match no participation: {', '.join(self.unmatched)}"
        return text


def _participations(publication: Publication) -> dict[str, int]:
    """Worker id -> participation id, for the publication's provider and experiment."""
    return dict(
        Participation.objects.filter(
            experiment_id=publication.experiment_id, rater__source=publication.provider
        ).values_list("rater__external_id", "pk")
    )


def publication_sync(*, publication: Publication) -> SyncReport:
    """Insert or update the publication's submissions from the provider; match participations."""
    report = SyncReport(publication)
    if publication.status == Publication.Status.DRAFT:
        return report
    known = {
        (s.external_id, s.worker_id): s for s in Submission.objects.filter(publication=publication)
    }
    by_worker = _participations(publication)
    now = clock.now()
    for remote in provider_for(publication).remote_submissions(publication):
        report.seen += 1
        participation_id = by_worker.get(remote.worker_id)
        if participation_id is None:
            report.unmatched.append(remote.external_id)
        row = known.get((remote.external_id, remote.worker_id))
        if row is None:
            Submission.objects.create(
                publication=publication,
                participation_id=participation_id,
                worker_id=remote.worker_id,
                external_id=remote.external_id,
                hit_id=remote.hit_id,
                provider_status=remote.status,
                synced_at=now,
            )
            report.new += 1
            continue
        if row.provider_status != remote.status:
            report.changed += 1
        row.provider_status = remote.status
        row.participation_id = row.participation_id or participation_id
        row.synced_at = now
        row.save(update_fields=["provider_status", "participation", "synced_at", "updated_at"])
    return report
