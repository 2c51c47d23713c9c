"""Attention checks and consistency probes: planned per rater, served when due, stored
outside the allocation, exported with ``check_kind``/``probe_of``/``expected``."""

from __future__ import annotations

import csv
import io

import pytest

from apps.core.exceptions import ConflictError
from apps.studies.apis import next_payload
from apps.studies.exports import response_csv_lines
from apps.studies.models import CheckItem, Participation, Response, Slot, Task
from apps.studies.scales import pairwise_encode
from apps.studies.services import assignment_heartbeat, assignment_next, response_submit
from apps.studies.services.launch import study_close
from tests.studies.helpers import join, launched_study

pytestmark = pytest.mark.django_db


def _study(**kwargs):
    defaults = {"tasks_per_rater": 8, "attention_checks": 2, "probe_percent": 25}
    return launched_study(images_per_class=2, answers_per_task=2, **{**defaults, **kwargs})


def _submit(participation, public_id, choice, **kwargs):
    return response_submit(
        participation_id=participation.pk, assignment_id=str(public_id), choice=choice, **kwargs
    )


def _run(participation, choose=lambda step: 1):
    """Answer every step until the end; returns the steps seen (state, assignment, check)."""
    seen = []
    step = assignment_next(participation_id=participation.pk)
    while step.assignment is not None or step.check is not None:
        seen.append(step)
        target = step.assignment or step.check
        step = _submit(participation, target.public_id, choose(step)).next
    return seen


@pytest.mark.parametrize("slug", ["pw", "fc"])
def test_plan_puts_checks_at_random_positions_never_first(slug):
    study = _study()
    experiment = study.experiments.get(slug=slug)
    positions = {"attention": [], "probe": []}
    for _ in range(30):
        p = join(experiment)
        items = list(p.check_items.order_by("due_after"))
        p.refresh_from_db()
        assert p.checks_planned == len(items) == 2 + 2  # 2 attention, 25% of 8 probes
        assert p.next_check_after == items[0].due_after
        for item in items:
            positions[item.kind].append(item.due_after)
    assert min(positions["attention"]) >= 1 and max(positions["attention"]) <= 7
    assert min(positions["probe"]) >= 2 and max(positions["probe"]) <= 7
    assert len(set(positions["attention"])) > 3  # random, not fixed


@pytest.mark.parametrize("slug", ["pw", "fc"])
def test_a_full_run_serves_every_check_outside_the_quota(slug):
    study = _study()
    experiment = study.experiments.get(slug=slug)
    slots_before = Slot.objects.filter(experiment=experiment).count()
    p = join(experiment)
    steps = _run(p)
    p.refresh_from_db()
    assert p.status == Participation.Status.COMPLETED
    assert p.answered == 8 and p.checks_answered == p.checks_planned == 4
    assert [s.check is not None for s in steps].count(True) == 4
    assert steps[0].check is None  # never first
    assert Response.objects.filter(rater=p.rater).count() == 8  # checks are not responses
    assert Slot.objects.filter(experiment=experiment).count() == slots_before
    assert Slot.objects.filter(experiment=experiment, is_answered=True).count() == 8
    answered_tasks = []
    for step in steps:
        if step.check is None:
            answered_tasks.append(step.assignment.task_id)
            continue
        item = CheckItem.objects.get(pk=step.check.pk)
        assert item.submitted_at is not None
        assert item.task_id in answered_tasks  # only tasks the rater has seen
        if item.kind == CheckItem.Kind.PROBE:
            assert item.task_id != answered_tasks[-1]  # not the one just answered
            task = Task.objects.get(pk=item.task_id)
            if experiment.is_pairwise:
                assert item.left_is_a is (not task.left_is_a)  # sides swapped


def test_attention_check_names_the_option_and_probe_looks_like_a_task():
    study = _study(attention_checks=1, probe_percent=13)  # 1 probe of 8
    experiment = study.experiments.get(slug="pw")
    p = join(experiment)
    payloads = {}
    step = assignment_next(participation_id=p.pk)
    while step.assignment is not None or step.check is not None:
        payload = next_payload(step, code=experiment.code)
        kind = step.check.kind if step.check is not None else "task"
        payloads.setdefault(kind, []).append(payload["task"])
        target = step.assignment or step.check
        step = _submit(p, target.public_id, 2).next
    attention = payloads["attention"][0]
    item = CheckItem.objects.get(participation=p, kind="attention")
    label = attention["options"][item.instructed_choice]
    assert attention["question"] == f"For this pair, please choose \u201c{label}\u201d."
    probe, task = payloads["probe"][0], payloads["task"][0]
    assert set(probe) == set(task)  # no field tells a probe from a task
    assert "question" not in probe
    original = Task.objects.get(pk=CheckItem.objects.get(participation=p, kind="probe").task_id)
    shown = [t for t in payloads["task"] if t["original_url"] == probe["original_url"]]
    assert len(shown) == 1 and shown[0]["left_url"] == probe["right_url"]
    assert original.image.file.rsplit("/", 1)[-1] in probe["original_url"]
    # Progress counts checks as tasks: it moves on every item.
    assert next_payload(step, code=experiment.code)["progress"] == {"answered": 10, "target": 10}


def test_check_answer_is_stored_once_and_a_different_choice_conflicts():
    study = _study(attention_checks=1, probe_percent=0)
    experiment = study.experiments.get(slug="fc")
    p = join(experiment)
    item = CheckItem.objects.get(participation=p)
    step = assignment_next(participation_id=p.pk)
    while step.check is None:
        step = _submit(p, step.assignment.public_id, 0).next
    again = assignment_next(participation_id=p.pk)  # a reload shows the same check
    assert again.check.pk == item.pk
    assert assignment_heartbeat(participation_id=p.pk, assignment_id=str(item.public_id))
    first = _submit(p, item.public_id, 3, response_ms=700)
    assert first.created and first.response.answer == experiment.study.family.class_names[3]
    repeat = _submit(p, item.public_id, 3, response_ms=700)
    assert not repeat.created
    with pytest.raises(ConflictError):
        _submit(p, item.public_id, 4)
    p.refresh_from_db()
    assert p.checks_answered == 1 and p.next_check_after is None


def test_a_closed_study_refuses_a_check_answer():
    study = _study(attention_checks=1, probe_percent=0)
    experiment = study.experiments.get(slug="pw")
    p = join(experiment)
    step = assignment_next(participation_id=p.pk)
    while step.check is None:
        step = _submit(p, step.assignment.public_id, 0).next
    study_close(study=study)
    with pytest.raises(ConflictError):
        _submit(p, step.check.public_id, 1)
    assert not CheckItem.objects.filter(submitted_at__isnull=False).exists()


def test_a_check_with_nothing_to_show_is_dropped():
    study = _study(attention_checks=0, probe_percent=0)
    experiment = study.experiments.get(slug="pw")
    p = join(experiment)
    # A probe due after 1 answer has no earlier answer to repeat (only the last one).
    CheckItem.objects.create(participation=p, rater=p.rater, kind="probe", due_after=1)
    Participation.objects.filter(pk=p.pk).update(checks_planned=1, next_check_after=1)
    steps = _run(p)
    p.refresh_from_db()
    assert all(s.check is None for s in steps) and p.answered == 8
    assert p.checks_planned == 0 and not CheckItem.objects.exists()


def _rows(study):
    text = "".join(response_csv_lines(study=study))
    return list(csv.DictReader(io.StringIO(text)))


def test_export_carries_checks_and_probes():
    study = _study()
    pw, fc = study.experiments.get(slug="pw"), study.experiments.get(slug="fc")
    for experiment in (pw, fc):
        _run(join(experiment))
    rows = _rows(study)
    assert len(rows) == 2 * (8 + 4)
    by_kind = {}
    for row in rows:
        key = row["check_kind"] or ("probe" if row["probe_of"] else "task")
        by_kind.setdefault((row["experiment"], key), []).append(row)
    for slug in ("pw", "fc"):
        assert len(by_kind[(slug, "task")]) == 8
        assert len(by_kind[(slug, "attention")]) == 2
        assert len(by_kind[(slug, "probe")]) == 2
    for item in CheckItem.objects.select_related("task", "participation__experiment"):
        row = next(
            r
            for r in rows
            if r["rater_id"] == str(item.participation.rater.public_id)
            and r["task_id"] == str(item.task_id)
            and (r["check_kind"] == "attention") == (item.kind == "attention")
            and (r["probe_of"] != "") == (item.kind == "probe")
            and r["submitted_at"].startswith(item.submitted_at.strftime("%Y-%m-%dT%H:%M:%S.%f"))
        )
        experiment = item.participation.experiment
        if item.kind == "probe":
            assert row["probe_of"] == str(item.task_id) and row["expected"] == ""
            if experiment.is_pairwise:
                assert row["shown_left"] == ("a" if item.left_is_a else "b")
        elif experiment.is_pairwise:
            expected = pairwise_encode(
                scale_points=5, choice=item.instructed_choice, left_is_a=item.left_is_a
            )
            assert row["expected"] == str(expected)
            assert row["answer"] == str(item.value)
        else:
            assert row["expected"] == study.family.class_names[item.instructed_choice]
    stamps = [r["submitted_at"] for r in rows]
    assert stamps == sorted(stamps)  # merged by time
