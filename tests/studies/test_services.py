from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from apps.core.exceptions import ApplicationError, ConflictError, NotFoundError
from apps.studies.models import Assignment, Experiment, Participation, Response, Study, Task
from apps.studies.scales import IDK_ANSWER
from apps.studies.services import (
    assignment_claim_next,
    experiment_create,
    rater_join,
    response_submit,
    study_create,
    study_launch,
)
from tests.factories import family_with_stimuli
from tests.studies.helpers import launched_study

pytestmark = pytest.mark.django_db


def _experiment(study: Study, slug: str) -> Experiment:
    return study.experiments.get(slug=slug)


def _make_next(task_id: int) -> None:
    """Put ``task_id`` first in its experiment's allocation order."""
    task = Task.objects.get(pk=task_id)
    Task.objects.filter(experiment_id=task.experiment_id).exclude(pk=task_id).update(
        position=F("position") + 1_000_000
    )
    Task.objects.filter(pk=task_id).update(position=0)


def test_launch_generates_one_task_per_image_and_pair_or_condition():
    # given a family with 10 classes x 2 images and a study with 2 pairs and 2 conditions
    study = launched_study(images_per_class=2)
    # then
    assert study.status == Study.Status.LIVE
    assert _experiment(study, "pw").tasks.count() == 2 * 20
    assert _experiment(study, "fc").tasks.count() == 2 * 20
    assert set(Task.objects.values_list("quota", flat=True)) == {3}


def test_launch_is_idempotent():
    study = launched_study()
    before = Task.objects.count()
    study_launch(study=study)
    assert Task.objects.count() == before


def test_pairwise_condition_a_is_the_lower_cpr_and_sides_are_balanced_per_pair():
    # given a pair listed the "wrong" way round: (cpr4, cpr1)
    study = launched_study(images_per_class=3)
    tasks = _experiment(study, "pw").tasks.select_related(
        "stimulus_a__variant", "stimulus_b__variant"
    )
    per_pair = Counter()
    for task in tasks:
        a, b = task.stimulus_a.variant, task.stimulus_b.variant
        # then A is always the lower CPR
        assert a.cpr_target < b.cpr_target
        assert task.stimulus_a.image_id == task.stimulus_b.image_id == task.image_id
        per_pair[(a.label, b.label, task.left_is_a)] += 1
    # and within each pair A is left as often as right (30 images each: 15/15)
    for pair in [("cpr1", "cpr2"), ("cpr1", "cpr4")]:
        assert per_pair[(*pair, True)] == per_pair[(*pair, False)] == 15


def test_positions_are_a_permutation():
    study = launched_study()
    positions = list(_experiment(study, "fc").tasks.values_list("position", flat=True))
    assert sorted(positions) == list(range(len(positions)))


def test_unknown_variant_is_refused_with_the_known_labels():
    family = family_with_stimuli(slug="f1", images_per_class=1)
    study = study_create(name="S", slug="s1", family=family)
    with pytest.raises(ApplicationError) as err:
        experiment_create(
            study=study,
            slug="e",
            name="E",
            kind="forced_choice",
            stimulus_kind="occlusion",
            conditions=["cpr1", "cpr64"],
        )
    assert "cpr64" in err.value.message and "cpr1, cpr2, cpr4" in err.value.message


def test_blank_maps_are_never_used_and_shortage_is_named():
    # given class "circle" whose only image has a blank map for cpr8
    family = family_with_stimuli(
        slug="f2", images_per_class=1, blank={("test/circle/0000", "cpr8")}
    )
    study = study_create(name="S", slug="s2", family=family)
    experiment_create(
        study=study,
        slug="e",
        name="E",
        kind="forced_choice",
        stimulus_kind="occlusion",
        conditions=["cpr1", "cpr8"],
        images_per_class=1,
    )
    # when launching, then the error names the class and the problem
    with pytest.raises(ApplicationError) as err:
        study_launch(study=study)
    assert "'circle'" in err.value.message and "only 0" in err.value.message


def test_claim_returns_the_same_assignment_until_answered():
    study = launched_study()
    participation = rater_join(experiment=_experiment(study, "pw"))
    first = assignment_claim_next(participation=participation)
    again = assignment_claim_next(participation=participation)
    assert first is not None and again is not None and first.pk == again.pk


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
    participation = rater_join(experiment=_experiment(study, "pw"))
    assignment = assignment_claim_next(participation=participation)
    Task.objects.filter(pk=assignment.task_id).update(left_is_a=left_is_a)
    response = response_submit(
        participation=participation, assignment_id=str(assignment.public_id), choice=choice
    )
    assert response.value == expected and response.answer == str(expected)
    assert response.answer_raw.startswith(("Left", "Right", "Equally"))


def test_forced_choice_answers_class_names_and_idk():
    study = launched_study()
    participation = rater_join(experiment=_experiment(study, "fc"))
    assignment = assignment_claim_next(participation=participation)
    response = response_submit(
        participation=participation, assignment_id=str(assignment.public_id), choice=10
    )
    assert response.answer == IDK_ANSWER and response.answer_raw.startswith("I don't know")
    assignment = assignment_claim_next(participation=participation)
    response = response_submit(
        participation=participation, assignment_id=str(assignment.public_id), choice=2
    )
    assert response.answer == "triangle"


def test_double_submission_is_stored_once():
    study = launched_study()
    participation = rater_join(experiment=_experiment(study, "pw"))
    assignment = assignment_claim_next(participation=participation)
    first = response_submit(
        participation=participation, assignment_id=str(assignment.public_id), choice=1
    )
    second = response_submit(
        participation=participation, assignment_id=str(assignment.public_id), choice=3
    )
    assert first.pk == second.pk and second.choice == 1
    assert Response.objects.count() == 1
    participation.refresh_from_db()
    assert participation.answered == 1
    task = Task.objects.get(pk=assignment.task_id)
    assert task.responses_received == 1


def test_choice_out_of_range_is_refused_and_nothing_is_stored():
    study = launched_study()
    participation = rater_join(experiment=_experiment(study, "pw"))
    assignment = assignment_claim_next(participation=participation)
    with pytest.raises(ApplicationError, match="outside 0..4"):
        response_submit(
            participation=participation, assignment_id=str(assignment.public_id), choice=5
        )
    assert Response.objects.count() == 0
    assert Task.objects.get(pk=assignment.task_id).responses_received == 0


def test_someone_elses_assignment_is_not_found():
    study = launched_study()
    mine = rater_join(experiment=_experiment(study, "pw"))
    theirs = rater_join(experiment=_experiment(study, "pw"))
    assignment = assignment_claim_next(participation=theirs)
    with pytest.raises(NotFoundError):
        response_submit(participation=mine, assignment_id=str(assignment.public_id), choice=0)
    with pytest.raises(NotFoundError):
        response_submit(participation=mine, assignment_id="not-a-uuid", choice=0)


def _answer_all(participation: Participation, choice: int = 2) -> int:
    answered = 0
    while (assignment := assignment_claim_next(participation=participation)) is not None:
        response_submit(
            participation=participation, assignment_id=str(assignment.public_id), choice=choice
        )
        answered += 1
    return answered


def test_rater_reaches_target_then_completes_and_never_repeats_a_task():
    study = launched_study(tasks_per_rater=7)
    participation = rater_join(experiment=_experiment(study, "pw"))
    assert _answer_all(participation) == 7
    participation.refresh_from_db()
    assert participation.status == Participation.Status.COMPLETED
    tasks = list(
        Response.objects.filter(rater=participation.rater).values_list("task_id", flat=True)
    )
    assert len(tasks) == len(set(tasks)) == 7


def test_one_task_per_image_in_forced_choice():
    # 2 conditions x 20 images: a rater can get at most 20 tasks, one per image
    study = launched_study(tasks_per_rater=40)
    participation = rater_join(experiment=_experiment(study, "fc"))
    assert _answer_all(participation) == 20
    images = Response.objects.filter(rater=participation.rater).values_list(
        "task__image_id", flat=True
    )
    assert len(set(images)) == 20


def test_quota_is_never_exceeded_and_late_raters_are_told_nothing_is_left():
    # given 1 image per class, 2 conditions -> 20 tasks, quota 3
    study = launched_study(images_per_class=1, tasks_per_rater=40, answers_per_task=3)
    experiment = _experiment(study, "fc")
    experiment.one_task_per_image = False
    experiment.save()
    for _ in range(3):
        assert _answer_all(rater_join(experiment=experiment)) == 20
    late = rater_join(experiment=experiment)
    assert assignment_claim_next(participation=late) is None
    late.refresh_from_db()
    assert late.status == Participation.Status.EXHAUSTED
    assert set(experiment.tasks.values_list("responses_received", flat=True)) == {3}
    assert Response.objects.filter(task__experiment=experiment).count() == 60


def test_expired_lease_is_renewed_when_the_task_still_has_room():
    study = launched_study()
    participation = rater_join(experiment=_experiment(study, "pw"))
    assignment = assignment_claim_next(participation=participation)
    Assignment.objects.filter(pk=assignment.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    again = assignment_claim_next(participation=participation)
    assert again.pk == assignment.pk and again.expires_at > timezone.now()


def test_answer_to_a_task_filled_meanwhile_is_refused_and_not_counted():
    study = launched_study(answers_per_task=1)
    experiment = _experiment(study, "pw")
    slow = rater_join(experiment=experiment)
    assignment = assignment_claim_next(participation=slow)
    Assignment.objects.filter(pk=assignment.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    # another rater takes and answers the same (now unleased) task
    _make_next(assignment.task_id)
    fast = rater_join(experiment=experiment)
    other = assignment_claim_next(participation=fast)
    assert other.task_id == assignment.task_id
    response_submit(participation=fast, assignment_id=str(other.public_id), choice=0)
    with pytest.raises(ConflictError, match="already has all its answers"):
        response_submit(participation=slow, assignment_id=str(assignment.public_id), choice=0)
    assert Task.objects.get(pk=assignment.task_id).responses_received == 1
    # the slow rater simply gets another task
    assert assignment_claim_next(participation=slow).task_id != assignment.task_id


def test_join_requires_a_live_study_and_crowd_ids_are_reused():
    study = launched_study()
    experiment = _experiment(study, "pw")
    first = rater_join(experiment=experiment, source="prolific", external_id="P1")
    again = rater_join(experiment=experiment, source="prolific", external_id="P1")
    assert first.pk == again.pk
    with pytest.raises(ApplicationError, match="worker id"):
        rater_join(experiment=experiment, source="mturk", external_id="")
    Study.objects.filter(pk=study.pk).update(status=Study.Status.CLOSED)
    experiment.refresh_from_db()
    with pytest.raises(ConflictError):
        rater_join(experiment=experiment)


def test_database_refuses_a_second_response_by_the_same_rater():
    study = launched_study()
    participation = rater_join(experiment=_experiment(study, "pw"))
    assignment = assignment_claim_next(participation=participation)
    response = response_submit(
        participation=participation, assignment_id=str(assignment.public_id), choice=0
    )
    other = rater_join(experiment=_experiment(study, "pw"))
    other_assignment = assignment_claim_next(participation=other)
    with pytest.raises(IntegrityError), transaction.atomic():
        Response.objects.create(
            assignment=other_assignment,
            task=response.task,
            rater=response.rater,
            slot=2,
            choice=0,
            answer="0",
            answer_raw="x",
            submitted_at=timezone.now(),
        )


def test_database_refuses_more_responses_than_the_quota():
    study = launched_study(answers_per_task=3)
    task = _experiment(study, "pw").tasks.first()
    Task.objects.filter(pk=task.pk).update(responses_received=3)
    with pytest.raises(IntegrityError), transaction.atomic():
        Task.objects.filter(pk=task.pk).update(responses_received=F("responses_received") + 1)


def test_database_refuses_two_responses_in_one_slot():
    study = launched_study()
    experiment = _experiment(study, "pw")
    p1, p2 = rater_join(experiment=experiment), rater_join(experiment=experiment)
    a1 = assignment_claim_next(participation=p1)
    r1 = response_submit(participation=p1, assignment_id=str(a1.public_id), choice=0)
    now = timezone.now()
    a2 = Assignment.objects.create(
        participation=p2, rater=p2.rater, task=r1.task, claimed_at=now, expires_at=now
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        Response.objects.create(
            assignment=a2,
            task=r1.task,
            rater=p2.rater,
            slot=r1.slot,
            choice=0,
            answer="0",
            answer_raw="x",
            submitted_at=timezone.now(),
        )


def test_database_refuses_a_pairwise_task_without_a_side():
    study = launched_study()
    task = _experiment(study, "pw").tasks.first()
    with pytest.raises(IntegrityError), transaction.atomic():
        Task.objects.filter(pk=task.pk).update(left_is_a=None)
