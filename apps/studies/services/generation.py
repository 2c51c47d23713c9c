"""Task generation at launch: the tasks of an experiment and their answer slots."""

from __future__ import annotations

import itertools
import random

from django.db import connection, transaction

from apps.core.exceptions import ApplicationError
from apps.pipeline.models import ModelVariant, SourceImage, Stimulus
from apps.studies.models import Experiment, Slot, Task
from apps.studies.services.design import experiment_check_design, variants_by_label


def _experiment_images(
    experiment: Experiment, variants: list[ModelVariant], rng: random.Random
) -> tuple[list[SourceImage], dict[tuple[int, int], Stimulus]]:
    """Pick ``images_per_class`` images per class that have a usable (non-blank)
    stimulus of the experiment's kind and method for every variant involved."""
    family = experiment.study.family
    stimuli = Stimulus.objects.filter(
        variant__in=variants, kind=experiment.stimulus_kind, method=experiment.method
    ).select_related("image")
    by_key: dict[tuple[int, int], Stimulus] = {}
    blank_images: set[int] = set()
    for stimulus in stimuli:
        by_key[(stimulus.image_id, stimulus.variant_id)] = stimulus
        if stimulus.is_blank:
            blank_images.add(stimulus.image_id)
    usable: dict[int, list[SourceImage]] = {}
    for image in family.images.order_by("class_index", "key"):
        complete = all((image.pk, v.pk) in by_key for v in variants)
        if complete and image.pk not in blank_images:
            usable.setdefault(image.class_index, []).append(image)
    chosen: list[SourceImage] = []
    for class_index, class_name in enumerate(family.class_names):
        candidates = usable.get(class_index, [])
        if len(candidates) < experiment.images_per_class:
            raise ApplicationError(
                f"Experiment '{experiment.slug}' needs {experiment.images_per_class} images of "
                f"class '{class_name}' with non-blank {experiment.stimulus_kind} maps "
                f"({experiment.method}) for {', '.join(v.label for v in variants)}; "
                f"only {len(candidates)} are available."
            )
        chosen.extend(rng.sample(candidates, experiment.images_per_class))
    return chosen, by_key


@transaction.atomic
def experiment_generate_tasks(*, experiment: Experiment) -> Experiment:
    """Create the experiment's tasks. Idempotent: an experiment with tasks is left as is.

    Pairwise: condition A is the pair's lower CPR. Which side A is shown on is
    decided here and balanced: within each pair the images alternate sides in
    a seeded random order, so every pair has as many A-left as A-right tasks
    (±1). Allocation order (``position``) is a seeded shuffle of all tasks.
    """
    if experiment.tasks.exists():
        return experiment
    experiment_check_design(experiment)
    variants = variants_by_label(experiment.study.family)
    rng = random.Random(f"{experiment.study.seed}:{experiment.slug}")
    rows: list[Task] = []
    if experiment.is_pairwise:
        pairs = [
            tuple(sorted((variants[a], variants[b]), key=lambda v: v.cpr_target))
            for a, b in experiment.pairs
        ]
        involved = sorted({v for pair in pairs for v in pair}, key=lambda v: v.cpr_target)
        images, stimuli = _experiment_images(experiment, involved, rng)
        for variant_a, variant_b in pairs:
            order = images[:]
            rng.shuffle(order)
            first_left = rng.random() < 0.5
            for i, image in enumerate(order):
                rows.append(
                    Task(
                        experiment=experiment,
                        image=image,
                        stimulus_a=stimuli[(image.pk, variant_a.pk)],
                        stimulus_b=stimuli[(image.pk, variant_b.pk)],
                        left_is_a=(i % 2 == 0) == first_left,
                        quota=experiment.answers_per_task,
                        position=0,
                    )
                )
    else:
        shown = [variants[label] for label in experiment.conditions]
        images, stimuli = _experiment_images(experiment, shown, rng)
        for variant, image in itertools.product(shown, images):
            rows.append(
                Task(
                    experiment=experiment,
                    image=image,
                    stimulus_a=stimuli[(image.pk, variant.pk)],
                    quota=experiment.answers_per_task,
                    position=0,
                )
            )
    positions = list(range(len(rows)))
    rng.shuffle(positions)
    for task, position in zip(rows, positions, strict=True):
        task.position = position
    Task.objects.bulk_create(rows, batch_size=1000)
    _create_slots(experiment=experiment, n_tasks=len(rows))
    return experiment


def _create_slots(*, experiment: Experiment, n_tasks: int) -> None:
    """``quota`` slots per task, ranked breadth first: rank = (number - 1) * n_tasks + position.

    One ``INSERT … SELECT`` per slot number (5 statements for the paper's
    quota, whatever the number of tasks), which both PostgreSQL and SQLite run.
    Rows are written in rank order, so the slots a claim walks past (the
    leases at the front of the queue) lie on a few neighbouring pages rather
    than one page each (measured at 100,000 tasks: 200 leases on 185 pages
    when written in task order).
    """
    slot, task = Slot._meta, Task._meta
    column = {f.name: f.column for f in slot.concrete_fields}
    max_quota = max(Task.objects.filter(experiment=experiment).values_list("quota", flat=True))
    sql = (
        f"INSERT INTO {slot.db_table} ({column['experiment']}, {column['task']}, "
        f"{column['image']}, {column['number']}, {column['rank']}, {column['is_answered']}) "
        f"SELECT experiment_id, id, image_id, %s, %s + position, %s FROM {task.db_table} "
        "WHERE experiment_id = %s AND quota >= %s ORDER BY position"
    )
    with connection.cursor() as cursor:
        for number in range(1, max_quota + 1):
            cursor.execute(sql, [number, (number - 1) * n_tasks, False, experiment.pk, number])
