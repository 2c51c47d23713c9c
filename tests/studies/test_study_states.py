"""Pause, resume, close; what the end page shows."""

from __future__ import annotations

import pytest

from apps.core.exceptions import ConflictError
from apps.studies.models import Assignment, Participation, Response, Slot, Study
from apps.studies.selectors import participation_end
from apps.studies.services import (
    State,
    assignment_next,
    study_close,
    study_pause,
    study_resume,
)
from tests.studies.helpers import answer, answer_one, join, launched_study, next_task

pytestmark = pytest.mark.django_db


def test_pause_keeps_the_task_on_screen_answerable_but_hands_out_no_new_one():
    study = launched_study()
    experiment = study.experiments.get(slug="pw")
    busy = join(experiment)
    on_screen = next_task(busy)
    idle = join(experiment)
    study_pause(study=study)
    # the rater mid-task still sees and can answer their task
    assert next_task(busy).pk == on_screen.pk
    outcome = answer(busy, on_screen, 2)
    assert outcome.created and outcome.next.state == State.PAUSED
    assert outcome.next.retry_after > 0
    # nobody gets a new task, and nobody is sent away
    step = assignment_next(participation_id=idle.pk)
    assert step.state == State.PAUSED and step.assignment is None
    assert Assignment.objects.count() == 1
    idle.refresh_from_db()
    assert idle.status == Participation.Status.ACTIVE
    # a new rater cannot start while paused
    with pytest.raises(ConflictError, match="paused"):
        join(experiment)
    # after resuming, both get tasks again
    study_resume(study=study)
    assert next_task(idle) is not None and next_task(busy) is not None


def test_close_mid_task_ends_cleanly_stores_nothing_more_and_claims_nothing():
    study = launched_study()
    experiment = study.experiments.get(slug="pw")
    rater = join(experiment)
    answer_one(rater, 1)
    on_screen = next_task(rater)
    fresh = join(experiment)
    study_close(study=study)
    # the answer in flight is refused with a clear code; nothing is stored
    with pytest.raises(ConflictError) as err:
        answer(rater, on_screen, 0)
    assert err.value.code == "closed" and "closed" in err.value.message
    assert Response.objects.count() == 1
    # every next step is the end, for everyone: no claim after close
    assert assignment_next(participation_id=rater.pk).state == State.CLOSED
    assert assignment_next(participation_id=fresh.pk).state == State.CLOSED
    assert Assignment.objects.filter(participation=fresh).count() == 0
    # nobody can join
    with pytest.raises(ConflictError):
        join(experiment)
    # the end page: what was stored, and the code for the work done
    rater.refresh_from_db()
    end = participation_end(participation=rater)
    assert end.reason == "closed" and end.answered == 1 and end.completion_code
    fresh.refresh_from_db()
    assert participation_end(participation=fresh).completion_code is None


def test_a_closed_study_cannot_be_paused_or_resumed():
    study = launched_study()
    study_close(study=study)
    with pytest.raises(ConflictError, match="closed"):
        study_pause(study=study)
    with pytest.raises(ConflictError, match="closed"):
        study_resume(study=study)
    assert Study.objects.get(pk=study.pk).closed_at is not None


def test_the_code_shows_only_for_real_completion():
    study = launched_study(tasks_per_rater=2)
    experiment = study.experiments.get(slug="pw")
    rater = join(experiment)
    # joined, nothing answered: no code, the page says what remains
    end = participation_end(participation=rater)
    assert end.reason == "active" and end.completion_code is None and end.remaining == 2
    answer_one(rater)
    rater.refresh_from_db()
    end = participation_end(participation=rater)
    assert end.completion_code is None and end.remaining == 1
    answer_one(rater)
    rater.refresh_from_db()
    end = participation_end(participation=rater)
    assert end.reason == "completed" and end.completion_code == rater.completion_code


def test_nothing_left_after_some_answers_completes_with_a_code():
    # 20 tasks, quota 1; the rater wants 30 but only 10 images exist
    study = launched_study(images_per_class=1, answers_per_task=1, tasks_per_rater=30)
    rater = join(study.experiments.get(slug="fc"))
    while next_task(rater) is not None:
        answer_one(rater)
    rater.refresh_from_db()
    assert rater.answered == 10 and rater.status == Participation.Status.COMPLETED
    assert participation_end(participation=rater).completion_code
    # the lease of the last claim attempt is never left behind
    assert not Slot.objects.filter(holder=rater, is_answered=False).exists()


def test_exhausted_with_no_answer_gets_no_code():
    study = launched_study(images_per_class=1, answers_per_task=1, tasks_per_rater=40)
    experiment = study.experiments.get(slug="fc")
    first = join(experiment)
    second = join(experiment)
    while next_task(first) is not None:
        answer_one(first)
    while next_task(second) is not None:
        answer_one(second)
    late = join(experiment)
    assert next_task(late) is None
    late.refresh_from_db()
    end = participation_end(participation=late)
    assert end.reason == "exhausted" and end.completion_code is None
