"""Concurrent raters against real PostgreSQL: claims and answers from many
threads at once never exceed a quota, never give one task twice to a rater,
and never store an answer twice (STYLE §10, saleor's race-condition tests)."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from django.db import close_old_connections, connection

from apps.studies.models import Participation, Response, Task
from apps.studies.services import assignment_claim_next, rater_join, response_submit
from tests.studies.helpers import launched_study

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _run_threads(target, count: int) -> list[BaseException]:
    errors: list[BaseException] = []
    barrier = threading.Barrier(count)

    def wrapper(i: int) -> None:
        try:
            barrier.wait()
            target(i)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)
        finally:
            close_old_connections()
            connection.close()

    threads = [threading.Thread(target=wrapper, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return errors


def test_concurrent_raters_fill_every_task_exactly_to_its_quota():
    # given 20 forced-choice tasks with quota 3 and 8 raters who each want 10 tasks
    study = launched_study(images_per_class=1, answers_per_task=3, tasks_per_rater=10)
    experiment = study.experiments.get(slug="fc")
    experiment.one_task_per_image = False
    experiment.save()
    participations = [rater_join(experiment=experiment) for _ in range(8)]

    def rater(i: int) -> None:
        participation = Participation.objects.get(pk=participations[i].pk)
        while (assignment := assignment_claim_next(participation=participation)) is not None:
            response_submit(
                participation=participation, assignment_id=str(assignment.public_id), choice=1
            )

    # when they all answer at once
    errors = _run_threads(rater, 8)

    # then 60 answers = 20 tasks x quota 3; no task over quota, no rater twice on a task
    assert errors == []
    counts = Counter(
        Response.objects.filter(task__experiment=experiment).values_list("task_id", flat=True)
    )
    assert sum(counts.values()) == 60 and set(counts.values()) == {3}
    assert set(
        Task.objects.filter(experiment=experiment).values_list("responses_received", flat=True)
    ) == {3}
    pairs = list(Response.objects.values_list("task_id", "rater_id"))
    assert len(pairs) == len(set(pairs))


def test_the_same_answer_sent_concurrently_is_stored_once():
    study = launched_study()
    experiment = study.experiments.get(slug="pw")
    participation = rater_join(experiment=experiment)
    assignment = assignment_claim_next(participation=participation)
    results: list[int] = []

    def submit(_: int) -> None:
        response = response_submit(
            participation=participation, assignment_id=str(assignment.public_id), choice=2
        )
        results.append(response.pk)

    errors = _run_threads(submit, 6)
    assert errors == []
    assert len(set(results)) == 1
    assert Response.objects.count() == 1
    assert Task.objects.get(pk=assignment.task_id).responses_received == 1
    assert Participation.objects.get(pk=participation.pk).answered == 1
