"""The allocation engine through the rater flow: claims, exclusions, leases, waiting."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from django.db.models import F

from apps.core import clock as real_clock
from apps.studies import allocation
from apps.studies.models import Assignment, Participation, Response, Slot, Task
from apps.studies.services import State, assignment_heartbeat, assignment_next
from tests.studies.helpers import answer, answer_all, join, launched_study, next_task

pytestmark = pytest.mark.django_db


def _make_next(task_id: int) -> None:
    """Put ``task_id``'s slots first in its experiment's allocation order.

    Ranks never change in a running study; this test-only reordering also
    forgets the per-process rank floor, which assumes they don't.
    """
    from apps.studies.allocation import lock_objects

    experiment_id = Task.objects.get(pk=task_id).experiment_id
    Slot.objects.filter(experiment_id=experiment_id).update(rank=F("rank") + 1_000_000)
    Slot.objects.filter(task_id=task_id).update(rank=F("number"))
    lock_objects._FLOORS.clear()


def _live_leases(task_id: int, now) -> int:
    return Slot.objects.filter(task_id=task_id, is_answered=False, lease_expires_at__gt=now).count()


def test_claim_returns_the_same_assignment_until_answered():
    study = launched_study()
    participation = join(study.experiments.get(slug="pw"))
    first = next_task(participation)
    again = next_task(participation)
    assert first is not None and again is not None and first.pk == again.pk
    assert Assignment.objects.count() == 1


def test_a_claim_leases_one_slot_on_the_slot_row():
    study = launched_study()
    participation = join(study.experiments.get(slug="pw"))
    assignment = next_task(participation)
    slot = Slot.objects.get(pk=assignment.slot_id)
    assert slot.holder_id == participation.pk and slot.lease_expires_at is not None
    assert Slot.objects.filter(holder__isnull=False).count() == 1
    participation.refresh_from_db()
    assert participation.current_assignment_id == assignment.pk


def test_first_slots_of_every_task_go_before_any_second_slot():
    # 20 forced-choice tasks (one per image each), quota 3: the first 20 claims cover 20 tasks
    study = launched_study(images_per_class=1, conditions=("cpr1",), tasks_per_rater=1)
    experiment = study.experiments.get(slug="fc")
    tasks = set()
    for _ in range(10):
        tasks.add(next_task(join(experiment)).task_id)
    assert len(tasks) == 10


def test_rater_reaches_target_then_completes_and_never_repeats_a_task():
    study = launched_study(tasks_per_rater=7)
    participation = join(study.experiments.get(slug="pw"))
    assert answer_all(participation) == 7
    participation.refresh_from_db()
    assert participation.status == Participation.Status.COMPLETED
    tasks = list(
        Response.objects.filter(rater=participation.rater).values_list("task_id", flat=True)
    )
    assert len(tasks) == len(set(tasks)) == 7


@pytest.mark.parametrize("slug", ["pw", "fc"])
def test_never_the_same_image_twice_within_an_experiment(slug):
    # 2 pairs (or conditions) x 20 images: at most 20 tasks, one per image
    study = launched_study(tasks_per_rater=40)
    participation = join(study.experiments.get(slug=slug))
    assert answer_all(participation) == 20
    images = list(
        Assignment.objects.filter(participation=participation).values_list("image_id", flat=True)
    )
    assert len(images) == len(set(images)) == 20
    participation.refresh_from_db()
    assert participation.status == Participation.Status.COMPLETED


def test_an_experiment_may_opt_out_of_one_task_per_image_but_never_repeats_a_task():
    study = launched_study(tasks_per_rater=40, one_task_per_image=False)
    participation = join(study.experiments.get(slug="pw"))
    assert answer_all(participation) == 40
    tasks = list(
        Assignment.objects.filter(participation=participation).values_list("task_id", flat=True)
    )
    assert len(tasks) == len(set(tasks)) == 40


def test_optionally_never_the_same_image_across_the_study():
    study = launched_study(images_per_class=1, tasks_per_rater=40)
    study.one_task_per_image_across_experiments = True
    study.save()
    browser = "b" * 43
    pw = join(study.experiments.get(slug="pw"), browser=browser)
    fc = join(study.experiments.get(slug="fc"), browser=browser)
    assert pw.rater_id == fc.rater_id  # a plain-link rater is their browser
    answer_all(pw)
    seen_pw = set(Assignment.objects.filter(participation=pw).values_list("image_id", flat=True))
    assert len(seen_pw) == 10  # every image once in the pairwise experiment
    # then the forced-choice experiment has nothing left for this rater
    assert next_task(fc) is None
    fc.refresh_from_db()
    assert fc.status == Participation.Status.EXHAUSTED


def test_quota_is_never_exceeded_and_late_raters_are_told_nothing_is_left():
    # given 1 image per class, 2 conditions -> 20 tasks, quota 3
    study = launched_study(
        images_per_class=1, tasks_per_rater=40, answers_per_task=3, one_task_per_image=False
    )
    experiment = study.experiments.get(slug="fc")
    for _ in range(3):
        assert answer_all(join(experiment)) == 20
    late = join(experiment)
    step = assignment_next(participation_id=late.pk)
    assert step.state == State.DONE and step.assignment is None
    late.refresh_from_db()
    assert late.status == Participation.Status.EXHAUSTED
    assert Counter(Response.objects.values_list("task_id", flat=True)) == {
        t: 3 for t in experiment.tasks.values_list("pk", flat=True)
    }
    assert not Slot.objects.filter(experiment=experiment, is_answered=False).exists()


def test_a_rater_who_finds_every_slot_leased_waits_and_gets_work_when_a_lease_expires(clock):
    # given one task per rater left: quota 1, 20 tasks all leased by 20 raters
    study = launched_study(
        images_per_class=1, answers_per_task=1, tasks_per_rater=1, conditions=("cpr1", "cpr2")
    )
    experiment = study.experiments.get(slug="fc")
    holders = [join(experiment) for _ in range(20)]
    for holder in holders:
        assert next_task(holder) is not None
    # when one more rater arrives
    latecomer = join(experiment)
    step = assignment_next(participation_id=latecomer.pk)
    # then they are told to wait, not sent away
    assert step.state == State.WAIT and step.retry_after > 0
    latecomer.refresh_from_db()
    assert latecomer.status == Participation.Status.ACTIVE
    # and once a lease runs out they get that task
    clock.advance(experiment.lease_seconds + 1)
    assignment = next_task(latecomer)
    assert assignment is not None


def test_reload_renews_an_expired_lease_nobody_took(clock):
    study = launched_study()
    participation = join(study.experiments.get(slug="pw"))
    assignment = next_task(participation)
    clock.advance(study.experiments.get(slug="pw").lease_seconds + 60)
    again = next_task(participation)
    assert again.pk == assignment.pk
    slot = Slot.objects.get(pk=assignment.slot_id)
    assert slot.holder_id == participation.pk and slot.lease_expires_at > clock.now()


def test_heartbeat_extends_the_lease_while_the_rater_is_on_the_task(clock):
    study = launched_study()
    experiment = study.experiments.get(slug="pw")
    participation = join(experiment)
    assignment = next_task(participation)
    first = Slot.objects.get(pk=assignment.slot_id).lease_expires_at
    clock.advance(experiment.lease_seconds - 10)
    expires = assignment_heartbeat(
        participation_id=participation.pk, assignment_id=str(assignment.public_id)
    )
    assert expires == clock.now() + timedelta(seconds=experiment.lease_seconds)
    assert Slot.objects.get(pk=assignment.slot_id).lease_expires_at == expires > first
    # many lease lengths later, still the rater's: nobody else could take it
    for _ in range(5):
        clock.advance(experiment.lease_seconds - 10)
        assert assignment_heartbeat(
            participation_id=participation.pk, assignment_id=str(assignment.public_id)
        )
    other = join(experiment)
    _make_next(assignment.task_id)
    Slot.objects.filter(task_id=assignment.task_id).exclude(pk=assignment.slot_id).update(
        rank=F("rank") + 10_000_000
    )
    assert next_task(other).slot_id != assignment.slot_id


def test_an_expired_lease_is_claimable_and_its_late_answer_is_flagged_not_stealing(clock):
    # given quota 1 and a slow rater whose lease ran out
    study = launched_study(answers_per_task=1)
    experiment = study.experiments.get(slug="pw")
    slow = join(experiment)
    slow_assignment = next_task(slow)
    clock.advance(experiment.lease_seconds + 1)
    # when a fast rater is given the same (now free) slot and holds it
    _make_next(slow_assignment.task_id)
    fast = join(experiment)
    fast_assignment = next_task(fast)
    assert fast_assignment.slot_id == slow_assignment.slot_id
    # and the slow rater answers late
    outcome = answer(slow, slow_assignment, 0)
    # then the answer is stored, flagged late and over quota: the live lease is not taken
    assert outcome.created and outcome.response.late and outcome.response.over_quota
    assert outcome.response.slot_id is None
    slot = Slot.objects.get(pk=fast_assignment.slot_id)
    assert slot.holder_id == fast.pk and not slot.is_answered
    # and the fast rater's answer fills the slot
    fast_outcome = answer(fast, fast_assignment, 1)
    assert fast_outcome.response.slot_id == slot.pk and not fast_outcome.response.late
    # the slow rater's count includes the answer and they move on to another task
    slow.refresh_from_db()
    assert slow.answered == 1
    assert next_task(slow).task_id != slow_assignment.task_id


def test_a_late_answer_takes_a_free_slot_when_the_task_has_one(clock):
    study = launched_study(answers_per_task=2)
    experiment = study.experiments.get(slug="pw")
    slow = join(experiment)
    slow_assignment = next_task(slow)
    clock.advance(experiment.lease_seconds + 1)
    allocation.leases_expire(now=real_clock.now())  # the periodic task frees the slot
    assert Slot.objects.get(pk=slow_assignment.slot_id).holder_id is None
    outcome = answer(slow, slow_assignment, 3)
    assert outcome.response.late and not outcome.response.over_quota
    assert outcome.response.slot_id is not None


def test_the_periodic_task_frees_only_expired_leases(clock):
    study = launched_study()
    experiment = study.experiments.get(slug="pw")
    stale = next_task(join(experiment))
    clock.advance(experiment.lease_seconds - 10)
    fresh = next_task(join(experiment))
    clock.advance(20)
    assert allocation.leases_expire(now=clock.now()) == 1
    assert Slot.objects.get(pk=stale.slot_id).holder_id is None
    assert Slot.objects.get(pk=fresh.slot_id).lease_expires_at > clock.now()


def test_a_rater_whose_slot_was_taken_gets_another_slot_of_the_same_task_on_reload(clock):
    study = launched_study(answers_per_task=2)
    experiment = study.experiments.get(slug="pw")
    slow = join(experiment)
    slow_assignment = next_task(slow)
    clock.advance(experiment.lease_seconds + 1)
    _make_next(slow_assignment.task_id)
    Slot.objects.filter(pk=slow_assignment.slot_id).update(rank=0)
    fast = join(experiment)
    assert next_task(fast).slot_id == slow_assignment.slot_id
    again = next_task(slow)
    assert again.pk == slow_assignment.pk and again.slot_id != slow_assignment.slot_id
    assert _live_leases(slow_assignment.task_id, clock.now()) == 2


def test_an_answer_to_a_superseded_task_is_stored_and_can_complete_the_rater(clock):
    # given quota 1, target 1: a rater's lease runs out, someone else takes the task,
    study = launched_study(answers_per_task=1, tasks_per_rater=1)
    experiment = study.experiments.get(slug="pw")
    rater = join(experiment)
    old = next_task(rater)
    clock.advance(experiment.lease_seconds + 1)
    _make_next(old.task_id)
    other = join(experiment)
    assert next_task(other).task_id == old.task_id
    # and a reload moves the rater on to a new task
    current = next_task(rater)
    assert current.task_id != old.task_id
    # when the old page still submits its answer
    outcome = answer(rater, old, 1)
    # then it is stored (late, over quota), reaches the target, and the new lease goes back
    assert outcome.response.over_quota and outcome.next.state == State.DONE
    assert not Slot.objects.filter(holder=rater, is_answered=False).exists()
    rater.refresh_from_db()
    assert rater.status == Participation.Status.COMPLETED and rater.answered == 1


def test_the_periodic_celery_task_and_the_command_free_expired_leases(clock):
    from django.core.management import call_command

    from apps.studies.tasks import expire_leases as cpu_expire_leases

    study = launched_study()
    experiment = study.experiments.get(slug="pw")
    first = next_task(join(experiment))
    second = next_task(join(experiment))
    clock.advance(experiment.lease_seconds + 1)
    assert cpu_expire_leases.delay().get() == 2
    assert not Slot.objects.filter(
        pk__in=[first.slot_id, second.slot_id], holder__isnull=False
    ).exists()
    call_command("expire_leases")  # nothing left to free, says so
