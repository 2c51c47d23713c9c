"""Reads for studies. These own ``select_related``/``prefetch_related``.

``assignment_presentation`` is the only place that decides what a rater sees
of a task: opaque image URLs, the predicted class, the options. It never
includes a variant label, a CPR or a method.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.core.files.storage import default_storage
from django.db.models import Count, F, Q, QuerySet, Sum

from apps.studies.models import Assignment, Experiment, Participation, Study, Task
from apps.studies.scales import forced_choice_labels, pairwise_labels


@dataclass(frozen=True)
class Progress:
    answered: int
    target: int

    @property
    def percent(self) -> int:
        return round(100 * self.answered / self.target) if self.target else 100


def participation_progress(*, participation: Participation) -> Progress:
    return Progress(answered=participation.answered, target=participation.target)


def _url(name: str) -> str:
    return default_storage.url(name)


def assignment_presentation(*, assignment: Assignment) -> dict[str, Any]:
    task = (
        Task.objects.select_related(
            "experiment__study__family", "image", "stimulus_a", "stimulus_b"
        )
        .only(
            "left_is_a",
            "experiment__kind",
            "experiment__scale_points",
            "experiment__study__family__class_names",
            "image__file",
            "image__class_index",
            "stimulus_a__file",
            "stimulus_a__predicted_class",
            "stimulus_b__file",
        )
        .get(pk=assignment.task_id)
    )
    experiment = task.experiment
    class_names = list(experiment.study.family.class_names)
    if experiment.is_pairwise:
        assert task.stimulus_b is not None and experiment.scale_points is not None
        left, right = (
            (task.stimulus_a, task.stimulus_b)
            if task.left_is_a
            else (task.stimulus_b, task.stimulus_a)
        )
        return {
            "assignment_id": str(assignment.public_id),
            "kind": "pairwise",
            "left_url": _url(left.file),
            "right_url": _url(right.file),
            "original_url": _url(task.image.file),
            "predicted_class": class_names[task.stimulus_a.predicted_class],
            "options": list(pairwise_labels(experiment.scale_points)),
        }
    return {
        "assignment_id": str(assignment.public_id),
        "kind": "forced_choice",
        "map_url": _url(task.stimulus_a.file),
        "options": list(forced_choice_labels(class_names)),
    }


def study_detail(*, slug: str) -> Study:
    return Study.objects.select_related("family").get(slug=slug)


def experiment_progress(*, study: Study) -> QuerySet[Experiment]:
    """Experiments with task and answer counts, for the admin and the results page."""
    return study.experiments.annotate(
        n_tasks=Count("tasks", distinct=True),
        n_tasks_complete=Count(
            "tasks", filter=Q(tasks__responses_received=F("tasks__quota")), distinct=True
        ),
        n_answers=Sum("tasks__responses_received"),
    ).order_by("position", "pk")
