"""Many raters at once against real PostgreSQL (STYLE §10, saleor's race tests).

Threads, each with its own database connection, drain whole experiments:
every task ends with exactly its quota of in-quota answers, no rater gets a
task or an image twice, every rater reaches the end, and every answer a
rater was told is stored is in the database.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from datetime import timedelta

import pytest
from django.db import close_old_connections, connection
from django.utils import timezone

from apps.studies.models import Assignment, Participation, Response, Slot, Task
from apps.studies.services import State, assignment_next, response_submit
from tests.studies.helpers import join, launched_study

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
        thread.join(120)
    return errors


def _drain(participation_id: int, acknowledged: list, *, seed: int, deadline: float) -> State:
    """One rater's loop: answer every task given, wait when told, stop at the end."""
    rng = random.Random(seed)
    step = assignment_next(participation_id=participation_id)
    while time.monotonic() < deadline:
        if step.state == State.TASK:
            choice = rng.randint(0, 4)
            outcome = response_submit(
                participation_id=participation_id,
                assignment_id=str(step.assignment.public_id),
                choice=choice,
            )
            acknowledged.append((outcome.response.pk, step.assignment.task_id, choice))
            step = outcome.next
        elif step.state == State.WAIT:
            time.sleep(0.02)
            step = assignment_next(participation_id=participation_id)
        else:
            return step.state
    raise AssertionError(f"participation {participation_id} did not finish in time")


def _assert_drained(experiment, participations, acknowledged) -> None:
    quota = experiment.answers_per_task
    in_quota = Counter(
        Response.objects.filter(task__experiment=experiment, slot__isnull=False).values_list(
            "task_id", flat=True
        )
    )
    # every task exactly its quota; every slot answered exactly once
    assert in_quota == {t: quota for t in experiment.tasks.values_list("pk", flat=True)}
    assert not Slot.objects.filter(experiment=experiment, is_answered=False).exists()
    # no rater got a task or an image twice
    given = list(
        Assignment.objects.filter(experiment=experiment).values_list("rater_id", "task_id")
    )
    assert len(given) == len(set(given))
    images = list(
        Assignment.objects.filter(experiment=experiment).values_list("participation_id", "image_id")
    )
    assert len(images) == len(set(images))
    # every acknowledged answer is stored as acknowledged, and nothing else is
    stored = dict(Response.objects.values_list("pk", "choice"))
    assert len(acknowledged) == len(stored)
    assert all(stored[pk] == choice for pk, _, choice in acknowledged)
    # every rater finished, and their count matches their stored answers
    per_rater = Counter(Response.objects.values_list("assignment__participation_id", flat=True))
    for participation in Participation.objects.filter(pk__in=[p.pk for p in participations]):
        assert participation.status == Participation.Status.COMPLETED
        assert participation.answered == per_rater[participation.pk] > 0


def test_fifty_raters_drain_a_study_exactly_to_quota():
    # given 80 pairwise tasks (40 images x 2 pairs), quota 5, one task per image: 400 slots
    study = launched_study(images_per_class=4, answers_per_task=5, tasks_per_rater=1000)
    experiment = study.experiments.get(slug="pw")
    participations = [join(experiment) for _ in range(50)]
    acknowledged: list = []
    ends: list[State] = []
    deadline = time.monotonic() + 90

    def rater(i: int) -> None:
        ends.append(_drain(participations[i].pk, acknowledged, seed=i, deadline=deadline))

    # when 50 raters answer at once until nothing is left
    errors = _run_threads(rater, 50)

    # then 400 answers, exactly 5 per task, and every rater reached the end
    assert errors == []
    assert ends == [State.DONE] * 50
    assert len(acknowledged) == 400
    assert not Response.objects.filter(late=True).exists()
    _assert_drained(experiment, participations, acknowledged)


def test_raters_with_expiring_leases_never_overfill_a_task(monkeypatch):
    # given a clock that runs fast (every reading +1 s) and 10 s leases: leases run out
    # all the time, slots change hands, answers arrive late
    study = launched_study(
        images_per_class=2, answers_per_task=3, tasks_per_rater=1000, lease_seconds=10
    )
    experiment = study.experiments.get(slug="fc")
    start = timezone.now()
    ticks = iter(range(10**9))
    lock = threading.Lock()

    def fast_now():
        with lock:
            return start + timedelta(seconds=next(ticks))

    monkeypatch.setattr("apps.core.clock.now", fast_now)
    participations = [join(experiment) for _ in range(30)]
    acknowledged: list = []
    deadline = time.monotonic() + 90

    def rater(i: int) -> None:
        rng = random.Random(i)
        step = assignment_next(participation_id=participations[i].pk)
        while time.monotonic() < deadline:
            if step.state == State.TASK:
                if rng.random() < 0.3:  # dawdle: someone else may take the slot meanwhile
                    time.sleep(0.01)
                    assignment_next(participation_id=participations[i].pk)
                outcome = response_submit(
                    participation_id=participations[i].pk,
                    assignment_id=str(step.assignment.public_id),
                    choice=rng.randint(0, 10),
                )
                acknowledged.append(
                    (outcome.response.pk, step.assignment.task_id, outcome.response.choice)
                )
                step = outcome.next
            elif step.state == State.WAIT:
                step = assignment_next(participation_id=participations[i].pk)
            else:
                return

    errors = _run_threads(rater, 30)

    assert errors == []
    quota = experiment.answers_per_task
    in_quota = Counter(
        Response.objects.filter(slot__isnull=False).values_list("task_id", flat=True)
    )
    # never over quota, whatever the leases did; every over-quota answer is flagged late
    assert max(in_quota.values()) <= quota
    assert in_quota == {
        t: quota for t in Task.objects.filter(experiment=experiment).values_list("pk", flat=True)
    }
    assert not Response.objects.filter(slot__isnull=True, late=False).exists()
    assert (
        Response.objects.filter(over_quota=True).count()
        == Response.objects.filter(slot__isnull=True).count()
    )
    stored = dict(Response.objects.values_list("pk", "choice"))
    assert len(acknowledged) == len(stored) and all(stored[pk] == c for pk, _, c in acknowledged)
    pairs = list(Response.objects.values_list("task_id", "rater_id"))
    assert len(pairs) == len(set(pairs))
    # and the lease paths really ran: answers on time, late, and late outside the quota
    assert Response.objects.filter(late=False).exists()
    assert Response.objects.filter(late=True, over_quota=False).exists()
    assert Response.objects.filter(over_quota=True).exists()


def test_the_same_answer_sent_concurrently_is_stored_once():
    study = launched_study()
    experiment = study.experiments.get(slug="pw")
    participation = join(experiment)
    assignment = assignment_next(participation_id=participation.pk).assignment
    results: list[tuple[int, bool]] = []

    def submit(_: int) -> None:
        outcome = response_submit(
            participation_id=participation.pk, assignment_id=str(assignment.public_id), choice=2
        )
        results.append((outcome.response.pk, outcome.created))

    errors = _run_threads(submit, 6)
    assert errors == []
    assert len({pk for pk, _ in results}) == 1
    assert sorted(created for _, created in results) == [False] * 5 + [True]
    assert Response.objects.count() == 1
    assert Participation.objects.get(pk=participation.pk).answered == 1


def test_concurrent_claims_of_one_rater_give_one_task():
    study = launched_study()
    participation = join(study.experiments.get(slug="pw"))
    tasks: list[int] = []

    def claim(_: int) -> None:
        tasks.append(assignment_next(participation_id=participation.pk).assignment.pk)

    assert _run_threads(claim, 8) == []
    assert len(set(tasks)) == 1 and Assignment.objects.count() == 1
