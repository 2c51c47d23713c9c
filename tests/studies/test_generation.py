"""Launch: tasks, sides, allocation order and the answer slots."""

from __future__ import annotations

from collections import Counter

import pytest

from apps.core.exceptions import ApplicationError
from apps.studies.models import Slot, Study, Task
from apps.studies.services import experiment_create, study_create, study_launch
from tests.factories import family_with_stimuli
from tests.studies.helpers import launched_study

pytestmark = pytest.mark.django_db


def test_launch_generates_one_task_per_image_and_pair_or_condition():
    # given a family with 10 classes x 2 images and a study with 2 pairs and 2 conditions
    study = launched_study(images_per_class=2)
    # then
    assert study.status == Study.Status.LIVE
    assert study.experiments.get(slug="pw").tasks.count() == 2 * 20
    assert study.experiments.get(slug="fc").tasks.count() == 2 * 20
    assert set(Task.objects.values_list("quota", flat=True)) == {3}


def test_every_task_gets_quota_slots_ranked_breadth_first():
    study = launched_study(images_per_class=1, answers_per_task=3)
    experiment = study.experiments.get(slug="fc")
    tasks = {t.pk: t for t in experiment.tasks.all()}
    slots = list(Slot.objects.filter(experiment=experiment).order_by("rank"))
    # quota slots per task, numbered 1..quota, all free
    assert Counter(s.task_id for s in slots) == {pk: 3 for pk in tasks}
    assert all(not s.is_answered and s.holder_id is None for s in slots)
    # ranks 0..3n-1: every first slot (in task position order) before any second slot
    n = len(tasks)
    assert [s.rank for s in slots] == list(range(3 * n))
    assert [s.number for s in slots] == [1] * n + [2] * n + [3] * n
    assert [tasks[s.task_id].position for s in slots[:n]] == list(range(n))
    assert all(s.image_id == tasks[s.task_id].image_id for s in slots)


def test_launch_is_idempotent():
    study = launched_study()
    before = Task.objects.count(), Slot.objects.count()
    study_launch(study=study)
    assert (Task.objects.count(), Slot.objects.count()) == before


def test_pairwise_condition_a_is_the_lower_cpr_and_sides_are_balanced_per_pair():
    # given a pair listed the "wrong" way round: (cpr4, cpr1)
    study = launched_study(images_per_class=3)
    tasks = study.experiments.get(slug="pw").tasks.select_related(
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
    positions = list(study.experiments.get(slug="fc").tasks.values_list("position", flat=True))
    assert sorted(positions) == list(range(len(positions)))


def test_every_experiment_kind_shows_one_task_per_image_by_default():
    study = launched_study()
    assert all(e.one_task_per_image for e in study.experiments.all())


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
