"""Task generation at launch: the tasks of an experiment, its answer slots and its
onboarding images.

:func:`experiment_plan_tasks` decides everything and writes nothing (a
researcher's preview uses it before launch); :func:`experiment_generate_tasks`
saves that plan. Both draw from one generator seeded by the study's seed and
the experiment's slug, so the same seed gives the same tasks.

Three things are planned:

- the real tasks: ``images_per_class`` images per class, one task per image
  and pair (pairwise) or per image and shown condition (forced choice);
- catch tasks, ``catch_percent`` of the real ones (at least one when the
  share is not 0), with the same quota, shuffled in among the real tasks. They
  use the chosen images and stimuli rendered exactly like real maps, so they
  look like any other task: pairwise, a variant's real map (A, the better
  answer) against the same map rotated 180 degrees; forced choice, a lightly
  occluded photo (the class is obvious);
- the onboarding reserve: ``1 + practice_trials`` images no task shows (first
  the worked example, then the practice trials), from distinct classes where
  possible.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from django.db import connection, transaction

from apps.core.exceptions import ApplicationError
from apps.pipeline.models import ModelVariant, SourceImage, Stimulus
from apps.studies.models import Experiment, Slot, Task
from apps.studies.services.design import experiment_check_design, variants_by_label

REAL = ""  # Stimulus.catch of a real map
ROT180 = "rot180"
LIGHT = "light"


@dataclass
class TaskPlan:
    """An experiment's tasks, unsaved, and the source images kept for onboarding.

    ``tasks`` carry their stimuli, ``position`` (a permutation of
    ``range(len(tasks))``), ``left_is_a``, ``quota`` and ``is_catch``;
    ``onboarding_images`` are SourceImage pks, the worked example first.
    """

    tasks: list[Task] = field(default_factory=list)
    onboarding_images: list[int] = field(default_factory=list)

    @property
    def n_catch(self) -> int:
        return sum(task.is_catch for task in self.tasks)


def _pair_task(
    experiment: Experiment,
    image: SourceImage,
    stimulus_a: Stimulus,
    stimulus_b: Stimulus,
    *,
    left_is_a: bool,
    is_catch: bool = False,
) -> Task:
    """An unsaved pairwise task (its ``position`` is set when the plan is shuffled)."""
    return Task(
        experiment=experiment,
        image=image,
        stimulus_a=stimulus_a,
        stimulus_b=stimulus_b,
        left_is_a=left_is_a,
        quota=experiment.answers_per_task,
        position=0,
        is_catch=is_catch,
    )


def _real_stimuli(
    experiment: Experiment, variants: Sequence[ModelVariant]
) -> tuple[dict[tuple[int, int], Stimulus], set[int]]:
    """Real maps of the experiment's kind and method by (image pk, variant pk), and
    the images with a blank map for any of ``variants``."""
    stimuli = Stimulus.objects.filter(
        variant__in=variants, kind=experiment.stimulus_kind, method=experiment.method, catch=REAL
    ).select_related("variant")
    by_key: dict[tuple[int, int], Stimulus] = {}
    blank_images: set[int] = set()
    for stimulus in stimuli:
        by_key[(stimulus.image_id, stimulus.variant_id)] = stimulus
        if stimulus.is_blank:
            blank_images.add(stimulus.image_id)
    return by_key, blank_images


def _usable_images(
    experiment: Experiment, variants: Sequence[ModelVariant]
) -> tuple[dict[int, list[SourceImage]], dict[tuple[int, int], Stimulus]]:
    """Images (by class index) with a non-blank real map for every variant involved."""
    by_key, blank_images = _real_stimuli(experiment, variants)
    usable: dict[int, list[SourceImage]] = {}
    for image in experiment.study.family.images.order_by("class_index", "key"):
        complete = all((image.pk, v.pk) in by_key for v in variants)
        if complete and image.pk not in blank_images:
            usable.setdefault(image.class_index, []).append(image)
    return usable, by_key


def _choose_images(
    experiment: Experiment,
    variants: Sequence[ModelVariant],
    usable: dict[int, list[SourceImage]],
    rng: random.Random,
) -> list[SourceImage]:
    """``images_per_class`` images per class; names the first class that falls short."""
    chosen: list[SourceImage] = []
    for class_index, class_name in enumerate(experiment.study.family.class_names):
        candidates = usable.get(class_index, [])
        if len(candidates) < experiment.images_per_class:
            raise ApplicationError(
                f"Experiment '{experiment.slug}' needs {experiment.images_per_class} images of "
                f"class '{class_name}' with non-blank {experiment.stimulus_kind} maps "
                f"({experiment.method}) for {', '.join(v.label for v in variants)}; "
                f"only {len(candidates)} are available."
            )
        chosen.extend(rng.sample(candidates, experiment.images_per_class))
    return chosen


def _catch_stimuli(
    experiment: Experiment,
    variants: Sequence[ModelVariant],
    images: Sequence[SourceImage],
    catch: str,
    *,
    kind: str,
) -> dict[tuple[int, int], Stimulus]:
    """Non-blank ``catch`` stimuli by (image pk, variant pk) for ``images`` x ``variants``."""
    return {
        (s.image_id, s.variant_id): s
        for s in Stimulus.objects.filter(
            variant__in=variants,
            image__in=[image.pk for image in images],
            kind=kind,
            method=experiment.method,
            catch=catch,
            is_blank=False,
        ).select_related("variant")
    }


def _missing_catch_error(
    experiment: Experiment, description: str, missing: int, total: int
) -> ApplicationError:
    return ApplicationError(
        f"Experiment '{experiment.slug}' needs catch stimuli ({description}, "
        f"{experiment.method}) for its task images, but {missing} of {total} are missing from "
        f"model family '{experiment.study.family.slug}'. Re-run the family's pipeline to "
        "render them, or set the experiment's catch percent to 0."
    )


def catch_task_count(*, experiment: Experiment, n_real: int) -> int:
    """``round(catch_percent% of n_real)``, at least 1 when the share is not 0."""
    if experiment.catch_percent <= 0 or n_real == 0:
        return 0
    return max(1, round(experiment.catch_percent / 100 * n_real))


def _catch_combos(
    experiment: Experiment,
    groups: Sequence[Sequence[ModelVariant]],
    images: Sequence[SourceImage],
    n_catch: int,
    rng: random.Random,
) -> list[tuple[ModelVariant, SourceImage]]:
    """``n_catch`` distinct (variant, image) picks: groups (pairs, or single shown
    conditions) in turn in a seeded order, a random variant of the group, then a
    random image, preferring images no catch task uses yet."""
    available = {(v.pk, image.pk) for group in groups for v in group for image in images}
    if n_catch > len(available):
        raise ApplicationError(
            f"Experiment '{experiment.slug}': {experiment.catch_percent}% catch trials need "
            f"{n_catch} distinct catch tasks, but its images and variants allow only "
            f"{len(available)}. Lower the catch percent."
        )
    order = list(range(len(groups)))
    rng.shuffle(order)
    used: set[tuple[int, int]] = set()
    used_images: set[int] = set()
    picks: list[tuple[ModelVariant, SourceImage]] = []
    for i in itertools.count():
        if len(picks) == n_catch:
            break
        group = list(groups[order[i % len(order)]])
        rng.shuffle(group)
        for variant in group:
            free = [image for image in images if (variant.pk, image.pk) not in used]
            if not free:
                continue
            fresh = [image for image in free if image.pk not in used_images]
            image = rng.choice(fresh or free)
            used.add((variant.pk, image.pk))
            used_images.add(image.pk)
            picks.append((variant, image))
            break
    return picks


def _pairwise_catch_tasks(
    experiment: Experiment,
    pairs: Sequence[tuple[ModelVariant, ModelVariant]],
    images: Sequence[SourceImage],
    real: dict[tuple[int, int], Stimulus],
    n_catch: int,
    rng: random.Random,
) -> list[Task]:
    """A = a variant's real map, B = the same map rotated 180 degrees; sides balanced."""
    involved = sorted({v for pair in pairs for v in pair}, key=lambda v: v.cpr_target)
    rotated = _catch_stimuli(experiment, involved, images, ROT180, kind=experiment.stimulus_kind)
    total = len(involved) * len(images)
    if len(rotated) < total:
        description = f"{experiment.stimulus_kind} maps rotated 180 degrees"
        raise _missing_catch_error(experiment, description, total - len(rotated), total)
    picks = _catch_combos(experiment, pairs, images, n_catch, rng)
    first_left = rng.random() < 0.5
    return [
        _pair_task(
            experiment,
            image,
            real[(image.pk, variant.pk)],
            rotated[(image.pk, variant.pk)],
            left_is_a=(i % 2 == 0) == first_left,
            is_catch=True,
        )
        for i, (variant, image) in enumerate(picks)
    ]


def _forced_choice_catch_tasks(
    experiment: Experiment,
    shown: Sequence[ModelVariant],
    images: Sequence[SourceImage],
    n_catch: int,
    rng: random.Random,
) -> list[Task]:
    """A lightly occluded photo of a task image, for a random shown condition."""
    if experiment.stimulus_kind != Stimulus.Kind.OCCLUSION:
        raise ApplicationError(
            f"Experiment '{experiment.slug}': forced-choice catch trials are lightly occluded "
            f"photos, which exist for occlusion-maps only, not {experiment.stimulus_kind} maps. "
            "Set the experiment's catch percent to 0."
        )
    light = _catch_stimuli(experiment, shown, images, LIGHT, kind=Stimulus.Kind.OCCLUSION)
    total = len(shown) * len(images)
    if len(light) < total:
        raise _missing_catch_error(
            experiment, "lightly occluded occlusion-maps", total - len(light), total
        )
    picks = _catch_combos(experiment, [[v] for v in shown], images, n_catch, rng)
    return [
        Task(
            experiment=experiment,
            image=image,
            stimulus_a=light[(image.pk, variant.pk)],
            quota=experiment.answers_per_task,
            position=0,
            is_catch=True,
        )
        for variant, image in picks
    ]


def _onboarding_images(
    experiment: Experiment,
    variants: Sequence[ModelVariant],
    usable: dict[int, list[SourceImage]],
    chosen: Sequence[SourceImage],
    rng: random.Random,
) -> list[int]:
    """``1 + practice_trials`` spare images (distinct classes first), the example first.

    Spare: no task of the experiment shows it, and it has non-blank real maps
    for every variant involved (pairwise: also their rotated maps, so practice
    can include a catch-like trial). With no practice trials one image is kept
    for the worked example if there is one; none is not an error.
    """
    taken = {image.pk for image in chosen}
    spare = [image for images in usable.values() for image in images if image.pk not in taken]
    unrotated = len(spare)
    if experiment.is_pairwise and spare:
        rotated = _catch_stimuli(experiment, variants, spare, ROT180, kind=experiment.stimulus_kind)
        spare = [image for image in spare if all((image.pk, v.pk) in rotated for v in variants)]
    needed = 1 + experiment.practice_trials
    if len(spare) < needed:
        if experiment.practice_trials == 0:
            needed = len(spare)
        else:
            rerun = (
                " (re-running the family's pipeline renders the rotated maps some lack)"
                if unrotated > len(spare)
                else ""
            )
            raise ApplicationError(
                f"Experiment '{experiment.slug}' needs {needed} spare images (1 worked example "
                f"and {experiment.practice_trials} practice trials) that no task shows, with "
                f"usable maps for {', '.join(v.label for v in variants)}; only {len(spare)} are "
                f"available{rerun}. Use fewer images per class, or fewer practice trials."
            )
    by_class: dict[int, list[SourceImage]] = {}
    for image in spare:
        by_class.setdefault(image.class_index, []).append(image)
    queues = [rng.sample(images, len(images)) for _, images in sorted(by_class.items())]
    rng.shuffle(queues)
    picked: list[int] = []
    while len(picked) < needed:  # one per class per round: distinct classes first
        for queue in queues:
            if queue and len(picked) < needed:
                picked.append(queue.pop().pk)
    return picked


def experiment_plan_tasks(*, experiment: Experiment) -> TaskPlan:
    """Plan the experiment's tasks and onboarding images; writes nothing.

    Pairwise: condition A is the pair's lower CPR. Which side A is shown on is
    balanced: within each pair the images alternate sides in a seeded random
    order, so every pair has as many A-left as A-right tasks (±1); catch tasks
    alternate the same way among themselves. Allocation order (``position``) is
    a seeded shuffle of all tasks, catch tasks included. Same study seed and
    experiment slug: the same plan. Raises ``ApplicationError`` naming the
    problem (design, too few images, missing catch stimuli, no spare images).
    """
    experiment_check_design(experiment)
    variants = variants_by_label(experiment.study.family)
    seed = f"{experiment.study.seed}:{experiment.slug}"
    rng = random.Random(seed)
    catch_rng = random.Random(f"{seed}:catch")
    rows: list[Task] = []
    if experiment.is_pairwise:
        pairs = [
            tuple(sorted((variants[a], variants[b]), key=lambda v: v.cpr_target))
            for a, b in experiment.pairs
        ]
        involved = sorted({v for pair in pairs for v in pair}, key=lambda v: v.cpr_target)
        usable, stimuli = _usable_images(experiment, involved)
        images = _choose_images(experiment, involved, usable, rng)
        for variant_a, variant_b in pairs:
            order = images[:]
            rng.shuffle(order)
            first_left = rng.random() < 0.5
            for i, image in enumerate(order):
                rows.append(
                    _pair_task(
                        experiment,
                        image,
                        stimuli[(image.pk, variant_a.pk)],
                        stimuli[(image.pk, variant_b.pk)],
                        left_is_a=(i % 2 == 0) == first_left,
                    )
                )
        n_catch = catch_task_count(experiment=experiment, n_real=len(rows))
        if n_catch:
            rows += _pairwise_catch_tasks(experiment, pairs, images, stimuli, n_catch, catch_rng)
    else:
        involved = [variants[label] for label in experiment.conditions]
        usable, stimuli = _usable_images(experiment, involved)
        images = _choose_images(experiment, involved, usable, rng)
        for variant, image in itertools.product(involved, images):
            rows.append(
                Task(
                    experiment=experiment,
                    image=image,
                    stimulus_a=stimuli[(image.pk, variant.pk)],
                    quota=experiment.answers_per_task,
                    position=0,
                )
            )
        n_catch = catch_task_count(experiment=experiment, n_real=len(rows))
        if n_catch:
            rows += _forced_choice_catch_tasks(experiment, involved, images, n_catch, catch_rng)
    positions = list(range(len(rows)))
    rng.shuffle(positions)
    for task, position in zip(rows, positions, strict=True):
        task.position = position
    onboarding = _onboarding_images(
        experiment, involved, usable, images, random.Random(f"{seed}:onboarding")
    )
    return TaskPlan(tasks=rows, onboarding_images=onboarding)


@transaction.atomic
def experiment_generate_tasks(*, experiment: Experiment) -> Experiment:
    """Create the experiment's tasks and slots and store its onboarding images
    (see :func:`experiment_plan_tasks`). Idempotent: an experiment with tasks is
    left as is."""
    if experiment.tasks.exists():
        return experiment
    plan = experiment_plan_tasks(experiment=experiment)
    Task.objects.bulk_create(plan.tasks, batch_size=1000)
    _create_slots(experiment=experiment, n_tasks=len(plan.tasks))
    experiment.onboarding_images = plan.onboarding_images
    experiment.save(update_fields=["onboarding_images", "updated_at"])
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
