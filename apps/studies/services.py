"""Writes for studies: design, task generation, launch, rater flow, answers.

Every public function is keyword-only, runs in one explicit transaction and
returns the model it wrote. Errors a user can act on are ``ApplicationError``
with a message that names the problem.
"""

from __future__ import annotations

import itertools
import random
import uuid
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.text import slugify

from apps.core.exceptions import ApplicationError, ConflictError, NotFoundError
from apps.pipeline.models import ModelFamily, ModelVariant, SourceImage, Stimulus
from apps.studies import lock_objects
from apps.studies.models import (
    Assignment,
    Experiment,
    Participation,
    Rater,
    Response,
    Study,
    Task,
)
from apps.studies.scales import (
    forced_choice_answer,
    forced_choice_labels,
    pairwise_encode,
    pairwise_labels,
)

# ---------------------------------------------------------------- design


@transaction.atomic
def study_create(
    *,
    name: str,
    family: ModelFamily,
    slug: str | None = None,
    description: str = "",
    seed: int = 0,
    created_by: Any = None,
) -> Study:
    study = Study(
        name=name,
        slug=slug or slugify(name)[:80],
        description=description,
        family=family,
        seed=seed,
        created_by=created_by,
    )
    study.full_clean()
    study.save()
    return study


@transaction.atomic
def experiment_create(
    *,
    study: Study,
    slug: str,
    name: str,
    kind: str,
    stimulus_kind: str,
    scale_points: int | None = None,
    pairs: list[list[str]] | None = None,
    conditions: list[str] | None = None,
    method: str = "gradcam",
    images_per_class: int = 3,
    answers_per_task: int = 5,
    tasks_per_rater: int = 20,
    one_task_per_image: bool | None = None,
    instructions: str = "",
    position: int | None = None,
) -> Experiment:
    if study.status != Study.Status.DRAFT:
        raise ConflictError(f"Study '{study.slug}' is {study.status}; add experiments to a draft.")
    experiment = Experiment(
        study=study,
        slug=slug,
        name=name,
        kind=kind,
        stimulus_kind=stimulus_kind,
        scale_points=scale_points,
        pairs=[list(p) for p in pairs or []],
        conditions=list(conditions or []),
        method=method,
        images_per_class=images_per_class,
        answers_per_task=answers_per_task,
        tasks_per_rater=tasks_per_rater,
        one_task_per_image=(kind == Experiment.Kind.FORCED_CHOICE)
        if one_task_per_image is None
        else one_task_per_image,
        instructions=instructions,
        position=study.experiments.count() if position is None else position,
    )
    experiment.full_clean()
    experiment_check_design(experiment)
    experiment.save()
    return experiment


def _variants_by_label(family: ModelFamily) -> dict[str, ModelVariant]:
    return {v.label: v for v in family.variants.all()}


def experiment_check_design(experiment: Experiment) -> None:
    """Raise ``ApplicationError`` naming what is wrong with an experiment's design."""
    family = experiment.study.family
    variants = _variants_by_label(family)
    where = f"Experiment '{experiment.slug}'"
    if experiment.is_pairwise:
        if experiment.scale_points not in (3, 5, 7):
            raise ApplicationError(f"{where}: a pairwise experiment needs 3, 5 or 7 scale points.")
        if not experiment.pairs:
            raise ApplicationError(f"{where}: list at least one pair of variants to compare.")
        labels = [label for pair in experiment.pairs for label in pair]
        if any(len(pair) != 2 or pair[0] == pair[1] for pair in experiment.pairs):
            raise ApplicationError(f"{where}: each pair must name two different variants.")
    else:
        if experiment.scale_points is not None:
            raise ApplicationError(f"{where}: forced choice has no scale points.")
        if not experiment.conditions:
            raise ApplicationError(f"{where}: list at least one variant to show.")
        labels = list(experiment.conditions)
    unknown = sorted(set(labels) - set(variants))
    if unknown:
        known = ", ".join(sorted(variants, key=lambda lab: variants[lab].cpr_target)) or "none"
        raise ApplicationError(
            f"{where}: unknown variant(s) {', '.join(unknown)} in model family "
            f"'{family.slug}' (known: {known})."
        )


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
    variants = _variants_by_label(experiment.study.family)
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
    return experiment


@transaction.atomic
def study_launch(*, study: Study) -> Study:
    """Generate every experiment's tasks and open the study to raters. Idempotent."""
    study = Study.objects.select_for_update().get(pk=study.pk)
    if study.status == Study.Status.CLOSED:
        raise ConflictError(f"Study '{study.slug}' is closed and cannot be launched again.")
    experiments = list(study.experiments.select_related("study__family"))
    if not experiments:
        raise ApplicationError(f"Study '{study.slug}' has no experiments to launch.")
    for experiment in experiments:
        experiment_generate_tasks(experiment=experiment)
    if study.status != Study.Status.LIVE:
        study.status = Study.Status.LIVE
        study.launched_at = timezone.now()
        study.save(update_fields=["status", "launched_at", "updated_at"])
    return study


@transaction.atomic
def study_close(*, study: Study) -> Study:
    Study.objects.filter(pk=study.pk).update(status=Study.Status.CLOSED, updated_at=timezone.now())
    study.refresh_from_db()
    return study


# ---------------------------------------------------------------- raters


def experiment_by_code(*, code: str) -> Experiment:
    try:
        return Experiment.objects.select_related("study__family").get(code=code)
    except Experiment.DoesNotExist:
        raise NotFoundError("This study link is not valid.", code="unknown_link") from None


@transaction.atomic
def rater_join(
    *,
    experiment: Experiment,
    source: str = Rater.Source.LINK,
    external_id: str | None = None,
    external_session: dict[str, str] | None = None,
) -> Participation:
    """Create (or find again) the rater and their participation in ``experiment``.

    A Prolific or MTurk worker who follows the link twice gets their existing
    participation back, never a second one.
    """
    if experiment.study.status != Study.Status.LIVE:
        raise ConflictError("This study is not open for answers at the moment.", code="not_live")
    if source not in Rater.Source.values:
        raise ApplicationError(f"Unknown rater source '{source}'.")
    if source != Rater.Source.LINK and not external_id:
        raise ApplicationError(f"A {source} rater needs their worker id in the link.")
    rater, _ = Rater.objects.get_or_create(
        source=source, external_id=external_id or uuid.uuid4().hex
    )
    participation, _ = Participation.objects.get_or_create(
        rater=rater,
        experiment=experiment,
        defaults={
            "target": experiment.tasks_per_rater,
            "external_session": external_session or {},
        },
    )
    return participation


def _lease_until(now):
    return now + timedelta(seconds=settings.ASSIGNMENT_LEASE_SECONDS)


@transaction.atomic
def assignment_claim_next(*, participation: Participation) -> Assignment | None:
    """The rater's current task: the open assignment, or a newly claimed one.

    Returns ``None`` when the rater is done (target reached) or no task is
    left for them; the participation's status then says which. A reload calls
    this again and gets the same active assignment back.
    """
    now = timezone.now()
    participation = Participation.objects.select_for_update().get(pk=participation.pk)
    if participation.status != Participation.Status.ACTIVE:
        return None
    current = participation.assignments.filter(status=Assignment.Status.ACTIVE).first()
    if current is not None:
        if current.expires_at > now:
            return current
        # The lease ran out while the rater was away: renew it if the task still has room.
        task = lock_objects.task_for_update(task_id=current.task_id)
        leases = (
            task.assignments.filter(status=Assignment.Status.ACTIVE, expires_at__gt=now)
            .exclude(pk=current.pk)
            .count()
        )
        if task.responses_received + leases < task.quota:
            current.expires_at = _lease_until(now)
            current.save(update_fields=["expires_at"])
            return current
        current.status = Assignment.Status.EXPIRED
        current.save(update_fields=["status"])

    if participation.answered >= participation.target:
        _participation_finish(participation, status=Participation.Status.COMPLETED, now=now)
        return None
    exclude_images = None
    if participation.experiment.one_task_per_image:
        exclude_images = Assignment.objects.filter(participation=participation).values(
            "task__image_id"
        )
    task = (
        lock_objects.tasks_claimable_for_update(
            participation=participation, now=now, exclude_image_ids=exclude_images
        )
        .only("pk")
        .first()
    )
    if task is None:
        status = (
            Participation.Status.COMPLETED
            if participation.answered > 0
            else Participation.Status.EXHAUSTED
        )
        _participation_finish(participation, status=status, now=now)
        return None
    return Assignment.objects.create(
        participation=participation,
        rater_id=participation.rater_id,
        task_id=task.pk,
        claimed_at=now,
        expires_at=_lease_until(now),
    )


def _participation_finish(participation: Participation, *, status: str, now) -> None:
    participation.status = status
    participation.completed_at = now
    participation.save(update_fields=["status", "completed_at", "updated_at"])


@transaction.atomic
def response_submit(
    *,
    participation: Participation,
    assignment_id: str,
    choice: int,
    response_ms: int | None = None,
) -> Response:
    """Store the rater's answer to their assignment. Exactly once.

    Submitting the same assignment again (a double click, a retried request)
    returns the stored response unchanged. The task's answer slot is taken
    with an atomic, quota-guarded increment; the database's CHECK and UNIQUE
    constraints back it up.
    """
    try:
        assignment = lock_objects.assignment_for_update(
            public_id=str(uuid.UUID(str(assignment_id)))
        )
    except (ValueError, Assignment.DoesNotExist):
        raise NotFoundError("Unknown task; reload the page.", code="unknown_assignment") from None
    if assignment.participation_id != participation.pk:
        raise NotFoundError("Unknown task; reload the page.", code="unknown_assignment")
    existing = Response.objects.filter(assignment=assignment).first()
    if existing is not None:
        return existing
    if assignment.status == Assignment.Status.EXPIRED:
        raise ConflictError(
            "This task was given to another rater while you were away; here is a new one.",
            code="assignment_expired",
        )

    task = Task.objects.select_related("experiment__study__family").get(pk=assignment.task_id)
    experiment = task.experiment
    if experiment.study.status != Study.Status.LIVE:
        raise ConflictError("This study is closed; thank you for your time.", code="not_live")
    if response_ms is not None and response_ms < 0:
        raise ApplicationError("response_ms must not be negative.", code="invalid")
    try:
        if experiment.is_pairwise:
            assert task.left_is_a is not None and experiment.scale_points is not None
            value: int | None = pairwise_encode(
                scale_points=experiment.scale_points, choice=choice, left_is_a=task.left_is_a
            )
            answer = str(value)
            answer_raw = pairwise_labels(experiment.scale_points)[choice]
        else:
            class_names = list(experiment.study.family.class_names)
            value = None
            answer = forced_choice_answer(class_names=class_names, choice=choice)
            answer_raw = forced_choice_labels(class_names)[choice]
    except ValueError as exc:
        raise ApplicationError(f"Invalid answer: {exc}.", code="invalid_choice") from None

    taken = Task.objects.filter(pk=task.pk, responses_received__lt=F("quota")).update(
        responses_received=F("responses_received") + 1
    )
    if not taken:
        assignment.status = Assignment.Status.EXPIRED
        assignment.save(update_fields=["status"])
        raise ConflictError(
            "This task already has all its answers; here is a new one.", code="task_full"
        )
    slot = Task.objects.values_list("responses_received", flat=True).get(pk=task.pk)
    try:
        with transaction.atomic():
            response = Response.objects.create(
                assignment=assignment,
                task=task,
                rater_id=assignment.rater_id,
                slot=slot,
                choice=choice,
                answer=answer,
                value=value,
                answer_raw=answer_raw,
                response_ms=response_ms,
                submitted_at=timezone.now(),
            )
    except IntegrityError:
        raise ConflictError(
            "This answer was already recorded.", code="duplicate_response"
        ) from None
    assignment.status = Assignment.Status.ANSWERED
    assignment.save(update_fields=["status"])
    Participation.objects.filter(pk=participation.pk).update(
        answered=F("answered") + 1, updated_at=timezone.now()
    )
    return response
