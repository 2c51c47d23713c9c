"""Migration 0002/0003: a database of the counter-based allocation keeps every answer.

Rows are written with the models as they were at 0001 (the migration
loader's historical models), then migrated forward: every task gets its
slots, answers fill the slot of their old number, a live assignment keeps
its lease and stays the rater's current task.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("studies", "0001_initial"), ("pipeline", "0001_initial")]
AFTER = [("studies", "0003_slots_finish")]


def _old_rows(apps) -> dict:
    now = timezone.now()
    family = apps.get_model("pipeline", "ModelFamily").objects.create(
        name="F", slug="f", cprs=[2], class_names=["a"]
    )
    variant = {
        cpr: apps.get_model("pipeline", "ModelVariant").objects.create(
            family=family, label=f"cpr{cpr}", cpr_target=cpr, cpr_measured=cpr, conv_sparsity=0
        )
        for cpr in (1, 2)
    }
    Image = apps.get_model("pipeline", "SourceImage")
    Stimulus = apps.get_model("pipeline", "Stimulus")
    study = apps.get_model("studies", "Study").objects.create(
        name="S", slug="s", family=family, status="live"
    )
    experiment = apps.get_model("studies", "Experiment").objects.create(
        study=study, slug="e", name="E", kind="forced_choice", stimulus_kind="occlusion",
        conditions=["cpr1", "cpr2"], answers_per_task=2, tasks_per_rater=5, code="code1234",
    )  # fmt: skip
    Task = apps.get_model("studies", "Task")
    tasks = []
    for n in range(3):
        image = Image.objects.create(
            family=family, key=f"k{n}", class_index=0, class_name="a", split="test", file=f"i{n}"
        )
        stimulus = Stimulus.objects.create(
            image=image, variant=variant[1], kind="occlusion", file=f"s{n}", predicted_class=0
        )
        tasks.append(Task.objects.create(experiment=experiment, image=image, stimulus_a=stimulus,
                                         quota=2, position=2 - n))  # fmt: skip
    Rater = apps.get_model("studies", "Rater")
    Participation = apps.get_model("studies", "Participation")
    Assignment = apps.get_model("studies", "Assignment")
    Response = apps.get_model("studies", "Response")
    raters = [Rater.objects.create(source="link", external_id=f"r{i}") for i in range(3)]
    parts = [
        Participation.objects.create(rater=r, experiment=experiment, target=5, answered=0)
        for r in raters
    ]
    # rater 0 answered task 0 (slot 1) and holds task 1; rater 1 answered task 0 (slot 2);
    # rater 2's lease on task 2 expired long ago
    answered0 = Assignment.objects.create(
        participation=parts[0],
        rater=raters[0],
        task=tasks[0],
        status="answered",
        claimed_at=now,
        expires_at=now,
    )
    Response.objects.create(
        assignment=answered0,
        task=tasks[0],
        rater=raters[0],
        slot=1,
        choice=0,
        answer="a",
        answer_raw="a",
        submitted_at=now,
    )
    answered1 = Assignment.objects.create(
        participation=parts[1],
        rater=raters[1],
        task=tasks[0],
        status="answered",
        claimed_at=now,
        expires_at=now,
    )
    Response.objects.create(
        assignment=answered1,
        task=tasks[0],
        rater=raters[1],
        slot=2,
        choice=1,
        answer="idk",
        answer_raw="idk",
        submitted_at=now,
    )
    live = Assignment.objects.create(
        participation=parts[0],
        rater=raters[0],
        task=tasks[1],
        status="active",
        claimed_at=now,
        expires_at=now + timedelta(minutes=20),
    )
    gone = Assignment.objects.create(participation=parts[2], rater=raters[2], task=tasks[2],
                                     status="expired", claimed_at=now, expires_at=now)  # fmt: skip
    Task.objects.filter(pk=tasks[0].pk).update(responses_received=2)
    return {"tasks": [t.pk for t in tasks], "live": live.pk, "gone": gone.pk, "p0": parts[0].pk}


@pytest.fixture(autouse=True)
def _back_to_the_latest_schema(transactional_db):
    """Leave the test database fully migrated: later transactional tests (the browser
    tests, through the live server) use tables that 0003 does not have yet."""
    yield
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())


def test_migrating_keeps_every_answer_and_the_live_lease():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = _old_rows(executor.loader.project_state(BEFORE).apps)
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(AFTER)
    apps = executor.loader.project_state(AFTER).apps
    Slot = apps.get_model("studies", "Slot")
    Response = apps.get_model("studies", "Response")
    Assignment = apps.get_model("studies", "Assignment")
    Participation = apps.get_model("studies", "Participation")

    # two slots per task, ranked breadth first by the old positions (2, 1, 0)
    slots = list(Slot.objects.order_by("rank").values_list("task_id", "number", "rank"))
    t0, t1, t2 = old["tasks"]
    assert slots == [(t2, 1, 0), (t1, 1, 1), (t0, 1, 2), (t2, 2, 3), (t1, 2, 4), (t0, 2, 5)]
    # both answers of task 0 fill its two slots
    filled = {r.slot.number for r in Response.objects.select_related("slot")}
    assert filled == {1, 2}
    assert Slot.objects.filter(task_id=t0, is_answered=True).count() == 2
    # the live assignment still holds a slot of its task and is the rater's current one
    live = Assignment.objects.get(pk=old["live"])
    held = Slot.objects.get(pk=live.slot_id)
    assert held.task_id == t1 and held.holder_id == old["p0"] and held.lease_expires_at
    assert Participation.objects.get(pk=old["p0"]).current_assignment_id == live.pk
    # the expired one is history only: its task's slots are all free
    assert not Slot.objects.filter(task_id=t2, holder__isnull=False).exists()
    assert Assignment.objects.get(pk=old["gone"]).image_id is not None
