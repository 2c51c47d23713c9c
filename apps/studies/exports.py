"""The response CSV: one row per answer, the contract with the analysis app.

Streams from the database in chunks (``iterator``) so memory stays flat for
studies of millions of answers.
"""

from __future__ import annotations

import csv
import heapq
from collections.abc import Iterable, Iterator
from datetime import UTC
from typing import IO

from django.db.models import F

from apps.studies.csv_contract import (
    CHECK_ATTENTION,
    CHECK_CATCH,
    EXPECTED_A,
    RESPONSE_COLUMNS,
)
from apps.studies.models import CheckItem, Experiment, Response, Study
from apps.studies.scales import forced_choice_answer, pairwise_encode


def _time(moment) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class _Study:
    """What every row needs of the study: experiments, variant labels, class names."""

    def __init__(self, study: Study) -> None:
        self.slug = study.slug
        self.experiments = {e.pk: e for e in study.experiments.all()}
        self.labels: dict[int, str] = dict(study.family.variants.values_list("pk", "label"))
        self.class_names = list(study.family.class_names)

    def head(self, experiment: Experiment, task_id, image_id, class_index, rater_id, source):
        pairwise = experiment.kind == Experiment.Kind.PAIRWISE
        return [
            self.slug,
            experiment.slug,
            experiment.kind,
            str(experiment.scale_points) if pairwise else "",
            str(task_id),
            str(image_id),
            self.class_names[class_index],
            str(rater_id),
            source,
        ]


_TASK_FIELDS = (
    "task_id",
    "task__experiment_id",
    "task__image_id",
    "task__image__class_index",
    "rater__public_id",
    "rater__source",
    "task__stimulus_a__variant_id",
    "task__stimulus_b__variant_id",
)


def _answer_rows(study: Study, s: _Study, chunk_size: int) -> Iterator[tuple[object, list[str]]]:
    """(submitted_at, row) for every answer to a task, catch trials included."""
    rows = (
        Response.objects.filter(task__experiment__study=study)
        .order_by("submitted_at", "pk")
        .values_list(
            *_TASK_FIELDS,
            "task__left_is_a",
            "task__is_catch",
            "answer",
            "answer_raw",
            "response_ms",
            "submitted_at",
            "late",
            "over_quota",
            "reopened",
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
        is_catch,
        answer,
        answer_raw,
        response_ms,
        submitted_at,
        late,
        over_quota,
        reopened,
    ) in rows:
        experiment: Experiment = s.experiments[experiment_id]
        pairwise = experiment.kind == Experiment.Kind.PAIRWISE
        expected = ""
        if is_catch:
            expected = EXPECTED_A if pairwise else s.class_names[class_index]
        yield (
            submitted_at,
            [
                *s.head(experiment, task_id, image_id, class_index, rater_id, source),
                s.labels[variant_a],
                s.labels[variant_b] if pairwise else "",
                ("a" if left_is_a else "b") if pairwise else "",
                answer,
                answer_raw,
                "" if response_ms is None else str(response_ms),
                _time(submitted_at),
                "true" if late else "false",
                "true" if over_quota else "false",
                CHECK_CATCH if is_catch else "",
                "",
                expected,
                "true" if reopened else "false",
            ],
        )


def _expected_answer(experiment: Experiment, class_names: list[str], item) -> str:
    """The ``answer`` an attention check instructed (encoded as the answer column is)."""
    if experiment.kind == Experiment.Kind.PAIRWISE:
        assert experiment.scale_points is not None
        return str(
            pairwise_encode(
                scale_points=experiment.scale_points,
                choice=item["instructed_choice"],
                left_is_a=item["left_is_a"],
            )
        )
    return forced_choice_answer(class_names=class_names, choice=item["instructed_choice"])


def _check_rows(study: Study, s: _Study, chunk_size: int) -> Iterator[tuple[object, list[str]]]:
    """(submitted_at, row) for every answered attention check and consistency probe."""
    rows = (
        CheckItem.objects.filter(participation__experiment__study=study, submitted_at__isnull=False)
        .order_by("submitted_at", "pk")
        .values(
            "kind",
            "left_is_a",
            "instructed_choice",
            "answer",
            "answer_raw",
            "response_ms",
            "submitted_at",
            **{f"x_{name}": F(name) for name in _TASK_FIELDS},
        )
        .iterator(chunk_size=chunk_size)
    )
    for item in rows:
        experiment: Experiment = s.experiments[item["x_task__experiment_id"]]
        pairwise = experiment.kind == Experiment.Kind.PAIRWISE
        attention = item["kind"] == CheckItem.Kind.ATTENTION
        left_is_a = item["left_is_a"]
        yield (
            item["submitted_at"],
            [
                *s.head(
                    experiment,
                    item["x_task_id"],
                    item["x_task__image_id"],
                    item["x_task__image__class_index"],
                    item["x_rater__public_id"],
                    item["x_rater__source"],
                ),
                s.labels[item["x_task__stimulus_a__variant_id"]],
                s.labels[item["x_task__stimulus_b__variant_id"]] if pairwise else "",
                ("a" if left_is_a else "b") if pairwise else "",
                item["answer"],
                item["answer_raw"],
                "" if item["response_ms"] is None else str(item["response_ms"]),
                _time(item["submitted_at"]),
                "false",
                "false",
                CHECK_ATTENTION if attention else "",
                "" if attention else str(item["x_task_id"]),
                _expected_answer(experiment, s.class_names, item) if attention else "",
                "false",
            ],
        )


def response_rows(*, study: Study, chunk_size: int = 5000) -> Iterator[list[str]]:
    """Yield one list per answer, in ``RESPONSE_COLUMNS`` order, oldest first.

    Answers to tasks (catch trials included, ``check_kind`` "catch") and the
    answers to the rater's attention checks and consistency probes, merged by
    time. Practice answers are never exported.
    """
    s = _Study(study)
    merged = heapq.merge(
        _answer_rows(study, s, chunk_size),
        _check_rows(study, s, chunk_size),
        key=lambda pair: pair[0],
    )
    for _, row in merged:
        yield row


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
