"""What a study archive holds: the format, the rows in load order, the encoder."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import Model, QuerySet

from apps.analysis.models import AnalysisRun
from apps.pipeline.models import ModelFamily, ModelVariant, SourceImage, Stimulus
from apps.recruitment.models import Publication, Submission
from apps.studies.models import (
    Assignment,
    CheckItem,
    Experiment,
    Participation,
    PracticeAnswer,
    Rater,
    Response,
    Slot,
    Study,
    Task,
)

FORMAT = "xai-crowd-study-archive"
FORMAT_VERSION = 1
ROWS_PER_FILE = 5000
EXPORT_CSV = "export/responses.csv"
# Publication options never carry provider credentials today; drop any key that looks like one.
SECRET_WORDS = ("secret", "token", "password", "api_key", "apikey", "credential")


class ArchiveError(Exception):
    """An export or import that cannot go on; the message names the problem."""


class ArchiveEncoder(DjangoJSONEncoder):
    """Django's encoder cuts datetimes to milliseconds; an archive keeps every microsecond."""

    def default(self, o: Any) -> Any:
        if isinstance(o, dt.datetime):
            return o.isoformat()
        if isinstance(o, dt.time):
            return o.isoformat()
        return super().default(o)


def latest_runs(study: Study) -> list[AnalysisRun]:
    """The newest finished analysis run of each kind (with and without excluded raters)."""
    runs = []
    for include_excluded in (False, True):
        run = (
            AnalysisRun.objects.filter(
                study=study, status=AnalysisRun.Status.DONE, include_excluded=include_excluded
            )
            .order_by("-finished_at", "-pk")
            .first()
        )
        if run is not None:
            runs.append(run)
    return runs


def row_sets(study: Study) -> list[tuple[type[Model], Callable[[], QuerySet]]]:
    """(model, rows of ``study``) in an order that loads without dangling references.

    ``Participation.current_assignment`` points forward to an assignment; it
    has no database constraint, so participations load before slots and
    assignments (a slot's holder is a participation).
    """
    family = study.family_id
    in_study = {"experiment__study": study}
    runs = [run.pk for run in latest_runs(study)]
    return [
        (ModelFamily, lambda: ModelFamily.objects.filter(pk=family)),
        (ModelVariant, lambda: ModelVariant.objects.filter(family=family)),
        (SourceImage, lambda: SourceImage.objects.filter(family=family)),
        (Stimulus, lambda: Stimulus.objects.filter(image__family=family)),
        (Study, lambda: Study.objects.filter(pk=study.pk)),
        (Experiment, lambda: Experiment.objects.filter(study=study)),
        (Task, lambda: Task.objects.filter(**in_study)),
        (
            Rater,
            lambda: Rater.objects.filter(
                pk__in=Participation.objects.filter(**in_study).values("rater_id")
            ),
        ),
        (Participation, lambda: Participation.objects.filter(**in_study)),
        (Slot, lambda: Slot.objects.filter(**in_study)),
        (Assignment, lambda: Assignment.objects.filter(participation__experiment__study=study)),
        (Response, lambda: Response.objects.filter(task__experiment__study=study)),
        (CheckItem, lambda: CheckItem.objects.filter(participation__experiment__study=study)),
        (
            PracticeAnswer,
            lambda: PracticeAnswer.objects.filter(participation__experiment__study=study),
        ),
        (Publication, lambda: Publication.objects.filter(study=study)),
        (Submission, lambda: Submission.objects.filter(publication__study=study)),
        (AnalysisRun, lambda: AnalysisRun.objects.filter(pk__in=runs)),
    ]


class HashingWriter:
    """A text sink that forwards to ``out`` (if any) and keeps the sha256 of what went by."""

    def __init__(self, out: Any = None) -> None:
        self.out = out
        self.digest = hashlib.sha256()
        self.bytes = 0

    def write(self, text: str) -> int:
        data = text.encode("utf-8")
        self.digest.update(data)
        self.bytes += len(data)
        if self.out is not None:
            self.out.write(text)
        return len(text)

    @property
    def sha256(self) -> str:
        return self.digest.hexdigest()
