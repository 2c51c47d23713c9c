"""Answer slots: one row per answer a task takes, the lease written on the slot.

Schema bridge plus data: every existing task gets its ``quota`` slots (rank
breadth first), stored responses fill the slot of their old slot number,
assignments learn their experiment, image and slot, and an active
assignment keeps its lease on a free slot of its task. The old columns go in
0003. Going back is supported only without studies data: the old
counter-based allocation is not rebuilt from the slots.
"""

import django.db.models.deletion
from django.db import migrations, models


def _slots_for_experiment(apps, experiment) -> dict:
    Task = apps.get_model("studies", "Task")
    Slot = apps.get_model("studies", "Slot")
    tasks = list(Task.objects.filter(experiment=experiment).order_by("position", "pk"))
    rows = [
        Slot(
            experiment_id=experiment.pk,
            task_id=task.pk,
            image_id=task.image_id,
            number=number,
            rank=(number - 1) * len(tasks) + index,
        )
        for index, task in enumerate(tasks)
        for number in range(1, task.quota + 1)
    ]
    Slot.objects.bulk_create(rows, batch_size=2000)
    return {(s.task_id, s.number): s for s in Slot.objects.filter(experiment_id=experiment.pk)}


def forward(apps, schema_editor):
    from django.utils import timezone

    Experiment = apps.get_model("studies", "Experiment")
    Assignment = apps.get_model("studies", "Assignment")
    Response = apps.get_model("studies", "Response")
    Participation = apps.get_model("studies", "Participation")
    now = timezone.now()
    for experiment in Experiment.objects.all():
        slots = _slots_for_experiment(apps, experiment)
        answered: dict[int, object] = {}
        for response in Response.objects.filter(task__experiment=experiment).select_related(
            "assignment"
        ):
            slot = slots[(response.task_id, response.slot_number)]
            slot.is_answered = True
            slot.holder_id = response.assignment.participation_id
            slot.save(update_fields=["is_answered", "holder"])
            response.slot_id = slot.pk
            response.save(update_fields=["slot"])
            answered[response.assignment_id] = slot
        for assignment in Assignment.objects.filter(task__experiment=experiment).select_related(
            "task"
        ):
            assignment.experiment_id = experiment.pk
            assignment.image_id = assignment.task.image_id
            assignment.one_per_image = experiment.one_task_per_image
            slot = answered.get(assignment.pk)
            if slot is None and assignment.status == "active":
                slot = next(
                    (
                        s
                        for (task_id, _), s in sorted(slots.items(), key=lambda kv: kv[0])
                        if task_id == assignment.task_id and not s.is_answered and s.holder_id is None
                    ),
                    None,
                )
                if slot is not None:
                    slot.holder_id = assignment.participation_id
                    slot.lease_expires_at = max(assignment.expires_at, now)
                    slot.save(update_fields=["holder", "lease_expires_at"])
                    Participation.objects.filter(pk=assignment.participation_id).update(
                        current_assignment=assignment
                    )
            if slot is None:  # history only: the rater no longer holds the task
                slot = slots[(assignment.task_id, 1)]
            assignment.slot_id = slot.pk
            assignment.save(update_fields=["experiment", "image", "one_per_image", "slot"])


class Migration(migrations.Migration):
    dependencies = [
        ("pipeline", "0001_initial"),
        ("studies", "0001_initial"),
    ]

    operations = [
        migrations.RemoveConstraint(model_name="response", name="response_unique_slot"),
        migrations.RemoveConstraint(model_name="response", name="response_slot_positive"),
        migrations.RenameField(model_name="response", old_name="slot", new_name="slot_number"),
        migrations.CreateModel(
            name="Slot",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("number", models.PositiveSmallIntegerField(help_text="1..quota")),
                ("rank", models.PositiveIntegerField()),
                ("lease_expires_at", models.DateTimeField(blank=True, null=True)),
                ("is_answered", models.BooleanField(default=False)),
                ("experiment", models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name="+", to="studies.experiment")),
                ("holder", models.ForeignKey(blank=True, db_index=False, help_text="The lease holder, or who answered.", null=True, on_delete=django.db.models.deletion.SET_NULL, related_name="+", to="studies.participation")),
                ("image", models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name="+", to="pipeline.sourceimage")),
                ("task", models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name="slots", to="studies.task")),
            ],
            options={
                "indexes": [
                    models.Index(condition=models.Q(("is_answered", False)), fields=["experiment", "rank"], name="slot_open_by_rank"),
                    models.Index(condition=models.Q(("lease_expires_at__isnull", False)), fields=["lease_expires_at"], name="slot_lease_expiry"),
                ],
                "constraints": [
                    models.UniqueConstraint(fields=("task", "number"), name="slot_unique_number"),
                    models.CheckConstraint(condition=models.Q(("number__gte", 1)), name="slot_number_positive"),
                    models.CheckConstraint(
                        condition=models.Q(
                            models.Q(("holder__isnull", True), ("is_answered", False), ("lease_expires_at__isnull", True)),
                            models.Q(("holder__isnull", False), ("is_answered", False), ("lease_expires_at__isnull", False)),
                            models.Q(("holder__isnull", False), ("is_answered", True), ("lease_expires_at__isnull", True)),
                            _connector="OR",
                        ),
                        name="slot_state",
                    ),
                ],
            },
        ),
        migrations.AddField(
            model_name="response",
            name="slot",
            field=models.OneToOneField(blank=True, null=True, help_text="The answer slot it filled; empty for a late answer kept outside the quota.", on_delete=django.db.models.deletion.PROTECT, related_name="response", to="studies.slot"),
        ),
        migrations.AddField(
            model_name="assignment",
            name="experiment",
            field=models.ForeignKey(db_index=False, null=True, on_delete=django.db.models.deletion.CASCADE, related_name="+", to="studies.experiment"),
        ),
        migrations.AddField(
            model_name="assignment",
            name="image",
            field=models.ForeignKey(db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name="+", to="pipeline.sourceimage"),
        ),
        migrations.AddField(
            model_name="assignment",
            name="slot",
            field=models.ForeignKey(db_index=False, null=True, on_delete=django.db.models.deletion.CASCADE, related_name="+", to="studies.slot"),
        ),
        migrations.AddField(
            model_name="assignment",
            name="one_per_image",
            field=models.BooleanField(default=False, help_text="Copied from the experiment: the rater may get this image only once."),
        ),
        migrations.AddField(
            model_name="participation",
            name="current_assignment",
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name="+", to="studies.assignment"),
        ),
        # Backwards only on a database without studies data (the old counters
        # are not rebuilt from the slots).
        migrations.RunPython(forward, migrations.RunPython.noop, elidable=False),
    ]
