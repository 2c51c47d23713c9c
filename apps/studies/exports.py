"""The response CSV: one row per answer, the contract with the analysis app.

Streams from the database in chunks (``iterator``) so memory stays flat for
studies of millions of answers.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from datetime import UTC
from typing import IO

from apps.studies.csv_contract import RESPONSE_COLUMNS
from apps.studies.models import Experiment, Response, Study


def response_rows(*, study: Study, chunk_size: int = 5000) -> Iterator[list[str]]:
    """Yield one list per answer, in ``RESPONSE_COLUMNS`` order, oldest first."""
    experiments = {e.pk: e for e in study.experiments.all()}
    labels: dict[int, str] = dict(study.family.variants.values_list("pk", "label"))
    class_names = list(study.family.class_names)
    rows = (
        Response.objects.filter(task__experiment__study=study)
        .order_by("submitted_at", "pk")
        .values_list(
            "task_id",
            "task__experiment_id",
            "task__image_id",
            "task__image__class_index",
            "rater__public_id",
            "rater__source",
            "task__stimulus_a__variant_id",
            "task__stimulus_b__variant_id",
            "task__left_is_a",
            "answer",
            "answer_raw",
            "response_ms",
            "submitted_at",
            "late",
            "over_quota",
        )
        .iterator(chunk_size=chunk_size)
    )
    for (
        task_id,
        experiment_id,
        image_id,
        class_index,
        rater_id,
        source,
        variant_a,
        variant_b,
        left_is_a,
        answer,
        answer_raw,
        response_ms,
        submitted_at,
        late,
        over_quota,
    ) in rows:
        experiment: Experiment = experiments[experiment_id]
        pairwise = experiment.kind == Experiment.Kind.PAIRWISE
        yield [
            study.slug,
            experiment.slug,
            experiment.kind,
            str(experiment.scale_points) if pairwise else "",
            str(task_id),
            str(image_id),
            class_names[class_index],
            str(rater_id),
            source,
            labels[variant_a],
            labels[variant_b] if pairwise else "",
            ("a" if left_is_a else "b") if pairwise else "",
            answer,
            answer_raw,
            "" if response_ms is None else str(response_ms),
            submitted_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "true" if late else "false",
            "true" if over_quota else "false",
        ]


class _Echo:
    """A file-like object whose write returns the line, for streaming responses."""

    def write(self, value: str) -> str:
        return value


def response_csv_lines(*, study: Study) -> Iterator[str]:
    writer = csv.writer(_Echo(), lineterminator="\n")
    yield writer.writerow(RESPONSE_COLUMNS)
    for row in response_rows(study=study):
        yield writer.writerow(row)


def write_responses_csv(*, study: Study, out: IO[str]) -> int:
    """Write the CSV to ``out``; returns the number of answer rows."""
    count = -1
    for count, line in enumerate(response_csv_lines(study=study)):  # noqa: B007
        out.write(line)
    return max(count, 0)


def iter_lines(lines: Iterable[str]) -> Iterator[bytes]:
    for line in lines:
        yield line.encode("utf-8")
