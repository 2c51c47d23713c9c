"""Storing answers: encoding, exactly once, conflicts, bad input."""

from __future__ import annotations

import pytest

from apps.core.exceptions import ApplicationError, ConflictError, NotFoundError
from apps.studies.models import Participation, Response, Slot, Task
from apps.studies.scales import IDK_ANSWER
from apps.studies.services import response_submit
from tests.studies.helpers import answer, join, launched_study, next_task

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("left_is_a", "choice", "expected"),
    [
        (True, 0, 2),
        (True, 1, 1),
        (True, 2, 0),
        (True, 4, -2),
        (False, 0, -2),
        (False, 1, -1),
        (False, 3, 1),
        (False, 4, 2),
    ],
)
def test_pairwise_answer_is_encoded_from_condition_a_view(left_is_a, choice, expected):
    study = launched_study()
    participation = join(study.experiments.get(slug="pw"))
    assignment = next_task(participation)
    Task.objects.filter(pk=assignment.task_id).update(left_is_a=left_is_a)
    response = answer(participation, assignment, choice).response
    assert response.value == expected and response.answer == str(expected)
    assert response.answer_raw.startswith(("Left", "Right", "Equally"))
    assert not response.late and not response.over_quota


def test_forced_choice_answers_class_names_and_idk():
    study = launched_study()
    participation = join(study.experiments.get(slug="fc"))
    response = answer(participation, next_task(participation), 10).response
    assert response.answer == IDK_ANSWER and response.answer_raw.startswith("I don't know")
    response = answer(participation, next_task(participation), 2).response
    assert response.answer == "triangle"


def test_an_answer_fills_the_slot_the_rater_holds():
    study = launched_study()
    participation = join(study.experiments.get(slug="pw"))
    assignment = next_task(participation)
    response = answer(participation, assignment, 1).response
    slot = Slot.objects.get(pk=assignment.slot_id)
    assert response.slot_id == slot.pk and slot.is_answered and slot.lease_expires_at is None
    participation.refresh_from_db()
    assert participation.answered == 1
    assert participation.current_assignment_id not in (None, assignment.pk)  # the next task


def test_the_same_answer_twice_is_stored_once_and_returns_the_stored_answer():
    study = launched_study()
    participation = join(study.experiments.get(slug="pw"))
    assignment = next_task(participation)
    first = answer(participation, assignment, 1)
    second = answer(participation, assignment, 1)
    assert first.created and not second.created
    assert first.response.pk == second.response.pk
    assert Response.objects.count() == 1
    participation.refresh_from_db()
    assert participation.answered == 1
    # and the repeat answers with the rater's next step, the same one as before
    assert second.next.assignment.pk == first.next.assignment.pk


def test_a_different_answer_to_an_answered_task_is_refused_naming_the_stored_one():
    study = launched_study()
    participation = join(study.experiments.get(slug="pw"))
    assignment = next_task(participation)
    answer(participation, assignment, 1)
    with pytest.raises(ConflictError) as err:
        answer(participation, assignment, 3)
    assert err.value.code == "answer_conflict"
    assert "Left slightly more reasonable" in err.value.message
    assert err.value.extra["stored"] == {"choice": 1, "answer_raw": "Left slightly more reasonable"}
    assert Response.objects.get().choice == 1


def test_choice_out_of_range_is_refused_and_nothing_is_stored():
    study = launched_study()
    participation = join(study.experiments.get(slug="pw"))
    assignment = next_task(participation)
    with pytest.raises(ApplicationError, match="outside 0..4") as err:
        answer(participation, assignment, 5)
    assert err.value.extra == {"field": "choice"}
    assert Response.objects.count() == 0
    slot = Slot.objects.get(pk=assignment.slot_id)
    assert not slot.is_answered and slot.holder_id == participation.pk


def test_response_ms_out_of_range_is_refused():
    study = launched_study()
    participation = join(study.experiments.get(slug="pw"))
    assignment = next_task(participation)
    with pytest.raises(ApplicationError) as err:
        answer(participation, assignment, 0, response_ms=2**31)
    assert err.value.extra == {"field": "response_ms"}


def test_someone_elses_assignment_is_not_found():
    study = launched_study()
    mine = join(study.experiments.get(slug="pw"))
    theirs = join(study.experiments.get(slug="pw"))
    assignment = next_task(theirs)
    with pytest.raises(NotFoundError):
        answer(mine, assignment, 0)
    with pytest.raises(NotFoundError):
        response_submit(
            participation_id=mine.pk,
            assignment_id="00000000-0000-0000-0000-000000000000",
            choice=0,
        )
    assert Participation.objects.get(pk=mine.pk).answered == 0
