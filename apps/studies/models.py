"""Studies, experiments, tasks, raters, assignments and responses.

Invariants the database itself enforces (not only the services):
- a rater answers a task at most once: UNIQUE(task, rater) on responses;
- a task never receives more answers than its quota: every response takes a
  slot from the task's counter, CHECK(responses_received <= quota) refuses the
  increment past the quota, and UNIQUE(task, slot) refuses a second response
  in the same slot;
- a pairwise task stores which condition is shown on the left
  (``left_is_a``), fixed at generation; a forced-choice task has neither a
  second stimulus nor a side.
No page, URL or file name shown to a rater carries a CPR: stimuli live under
opaque names and raters are addressed by opaque ids.
"""

from __future__ import annotations

import secrets
import uuid

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from apps.core.models import TimeStampedModel
from apps.pipeline.models import ModelFamily, SourceImage, Stimulus


def _public_code() -> str:
    return secrets.token_urlsafe(9)


def _completion_code() -> str:
    return secrets.token_hex(4).upper()


class Study(TimeStampedModel):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        LIVE = "live", "Live"
        CLOSED = "closed", "Closed"

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=80, unique=True)
    description = models.TextField(blank=True)
    family = models.ForeignKey(ModelFamily, on_delete=models.PROTECT, related_name="studies")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    seed = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    launched_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "studies"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name


class Experiment(TimeStampedModel):
    class Kind(models.TextChoices):
        PAIRWISE = "pairwise", "Pairwise comparison (Likert)"
        FORCED_CHOICE = "forced_choice", "Forced-choice classification"

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="experiments")
    slug = models.SlugField(max_length=60)
    name = models.CharField(max_length=200)
    position = models.PositiveSmallIntegerField(default=0)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    scale_points = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="3, 5 or 7 for pairwise; empty for forced choice."
    )
    stimulus_kind = models.CharField(max_length=12, choices=Stimulus.Kind.choices)
    method = models.CharField(max_length=40, default="gradcam")
    conditions = models.JSONField(
        default=list, blank=True, help_text='Forced choice: variant labels, e.g. ["cpr1", "cpr2"].'
    )
    pairs = models.JSONField(
        default=list,
        blank=True,
        help_text='Pairwise: pairs of variant labels, e.g. [["cpr1", "cpr2"], ["cpr1", "cpr32"]].',
    )
    images_per_class = models.PositiveIntegerField(default=3)
    answers_per_task = models.PositiveSmallIntegerField(default=5)
    tasks_per_rater = models.PositiveIntegerField(default=20)
    one_task_per_image = models.BooleanField(
        default=False, help_text="Never show a rater two tasks of the same image."
    )
    instructions = models.TextField(blank=True)
    code = models.CharField(max_length=20, unique=True, default=_public_code, editable=False)

    class Meta:
        ordering = ["study", "position", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["study", "slug"], name="experiment_unique_slug"),
            models.CheckConstraint(
                condition=(Q(kind="pairwise") & Q(scale_points__in=[3, 5, 7]))
                | (Q(kind="forced_choice") & Q(scale_points__isnull=True)),
                name="experiment_scale_matches_kind",
            ),
            models.CheckConstraint(
                condition=Q(answers_per_task__gte=1), name="experiment_quota_positive"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.study.slug}/{self.slug}"

    @property
    def is_pairwise(self) -> bool:
        return self.kind == self.Kind.PAIRWISE


class Task(models.Model):
    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="tasks")
    image = models.ForeignKey(SourceImage, on_delete=models.PROTECT, related_name="+")
    stimulus_a = models.ForeignKey(
        Stimulus, on_delete=models.PROTECT, related_name="+", help_text="Lower CPR (pairwise)."
    )
    stimulus_b = models.ForeignKey(
        Stimulus, on_delete=models.PROTECT, related_name="+", null=True, blank=True
    )
    left_is_a = models.BooleanField(null=True, blank=True)
    quota = models.PositiveSmallIntegerField()
    responses_received = models.PositiveSmallIntegerField(default=0)
    position = models.PositiveIntegerField(
        help_text="Random allocation order, fixed at generation."
    )
    is_catch = models.BooleanField(default=False)

    class Meta:
        ordering = ["experiment", "position"]
        indexes = [models.Index(fields=["experiment", "responses_received", "position"])]
        constraints = [
            models.CheckConstraint(
                condition=Q(responses_received__lte=F("quota")), name="task_within_quota"
            ),
            models.CheckConstraint(condition=Q(quota__gte=1), name="task_quota_positive"),
            models.CheckConstraint(
                condition=(Q(stimulus_b__isnull=True) & Q(left_is_a__isnull=True))
                | (Q(stimulus_b__isnull=False) & Q(left_is_a__isnull=False)),
                name="task_side_iff_pair",
            ),
            models.UniqueConstraint(
                fields=["experiment", "stimulus_a", "stimulus_b"], name="task_unique_stimuli"
            ),
        ]

    def __str__(self) -> str:
        return f"task {self.pk} ({self.experiment})"


class Rater(TimeStampedModel):
    class Source(models.TextChoices):
        LINK = "link", "Plain link"
        PROLIFIC = "prolific", "Prolific"
        MTURK = "mturk", "Amazon Mechanical Turk"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    source = models.CharField(max_length=10, choices=Source.choices)
    external_id = models.CharField(max_length=200)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["source", "external_id"], name="rater_unique_external")
        ]

    def __str__(self) -> str:
        return f"{self.source}:{self.public_id}"


class Participation(TimeStampedModel):
    """A rater's session in one experiment: how many tasks, how far, done or not."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        COMPLETED = "completed", "Completed"
        EXHAUSTED = "exhausted", "No tasks left"

    rater = models.ForeignKey(Rater, on_delete=models.CASCADE, related_name="participations")
    experiment = models.ForeignKey(
        Experiment, on_delete=models.CASCADE, related_name="participations"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    target = models.PositiveIntegerField()
    answered = models.PositiveIntegerField(default=0)
    completion_code = models.CharField(max_length=16, default=_completion_code, editable=False)
    external_session = models.JSONField(default=dict, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["rater", "experiment"], name="participation_unique_rater"
            ),
            models.CheckConstraint(
                condition=Q(answered__lte=F("target")), name="participation_within_target"
            ),
        ]


class Assignment(models.Model):
    """A task handed to a rater, held under a lease until answered or expired."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        ANSWERED = "answered", "Answered"
        EXPIRED = "expired", "Expired"

    participation = models.ForeignKey(
        Participation, on_delete=models.CASCADE, related_name="assignments"
    )
    rater = models.ForeignKey(Rater, on_delete=models.CASCADE, related_name="assignments")
    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="assignments")
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    claimed_at = models.DateTimeField()
    expires_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["task", "status", "expires_at"])]
        constraints = [
            models.UniqueConstraint(fields=["task", "rater"], name="assignment_unique_rater"),
            # One current task per rater session, so a reload shows the same one.
            models.UniqueConstraint(
                fields=["participation"],
                condition=Q(status="active"),
                name="assignment_one_active",
            ),
        ]

    def __str__(self) -> str:
        return f"assignment {self.public_id} ({self.status})"


class Response(models.Model):
    assignment = models.OneToOneField(Assignment, on_delete=models.PROTECT, related_name="response")
    task = models.ForeignKey(Task, on_delete=models.PROTECT, related_name="responses")
    rater = models.ForeignKey(Rater, on_delete=models.PROTECT, related_name="responses")
    slot = models.PositiveSmallIntegerField(help_text="1..quota: which of the task's answers.")
    choice = models.PositiveSmallIntegerField(help_text="Index of the clicked option, as shown.")
    answer = models.CharField(
        max_length=100, help_text="Pairwise: -k..+k from A's view; forced choice: class or idk."
    )
    value = models.SmallIntegerField(null=True, blank=True, help_text="Pairwise encoded answer.")
    answer_raw = models.CharField(max_length=200)
    response_ms = models.PositiveIntegerField(null=True, blank=True)
    submitted_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["submitted_at", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["task", "rater"], name="response_unique_rater"),
            models.UniqueConstraint(fields=["task", "slot"], name="response_unique_slot"),
            models.CheckConstraint(condition=Q(slot__gte=1), name="response_slot_positive"),
        ]

    def __str__(self) -> str:
        return f"response {self.pk}: task {self.task_id} slot {self.slot} = {self.answer}"
