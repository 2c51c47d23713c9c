"""Studies, experiments, tasks, answer slots, raters, assignments and responses.

Allocation (see :mod:`apps.studies.allocation`): every task has exactly
``quota`` :class:`Slot` rows, created at launch. A slot is *free*, *leased* to
one participation until ``lease_expires_at``, or *answered*. A rater is handed
a task by leasing one of its slots, and an answer fills the slot it holds, so

    stored in-quota answers + live leases <= quota

holds by construction: both are states of the same ``quota`` rows.

Invariants the database itself enforces (not only the services):
- a slot is in exactly one of the three states (CHECK ``slot_state``);
- an in-quota answer fills one slot, and a slot holds at most one answer
  (UNIQUE ``responses.slot``); an answer outside the quota (a late answer
  that found no free slot) has no slot and is flagged ``over_quota``;
- a rater is given a task at most once (UNIQUE(task, rater) on assignments)
  and answers it at most once (UNIQUE(task, rater) on responses);
- within an experiment that shows one task per image, a rater is given an
  image at most once (partial UNIQUE(participation, image));
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
from django.core.validators import MaxValueValidator
from django.db import models
from django.db.models import Q

from apps.core.models import TimeStampedModel
from apps.pipeline.models import ModelFamily, SourceImage, Stimulus


def _public_code() -> str:
    return secrets.token_urlsafe(9)


def _completion_code() -> str:
    return secrets.token_hex(4).upper()


# Rater page options (per experiment): a minute of forced viewing and a 4K-wide screen
# are the most any design needs; more is a typo.
MIN_VIEWING_MS_MAX = 60_000
MIN_SCREEN_WIDTH_MAX = 3840
# Onboarding and checks (per experiment).
PRACTICE_TRIALS_MAX = 3
ATTENTION_CHECKS_MAX = 10
CHECK_PERCENT_MAX = 50


def _default_lease_seconds() -> int:
    return settings.ASSIGNMENT_LEASE_SECONDS


class Study(TimeStampedModel):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        LIVE = "live", "Live"
        PAUSED = "paused", "Paused"
        CLOSED = "closed", "Closed"

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=80, unique=True)
    description = models.TextField(blank=True)
    family = models.ForeignKey(ModelFamily, on_delete=models.PROTECT, related_name="studies")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    seed = models.PositiveIntegerField(default=0)
    one_task_per_image_across_experiments = models.BooleanField(
        default=False,
        help_text="Never show a rater the same source image in two experiments of this study "
        "(a rater is recognised by their crowd worker id, or by their browser on a plain link).",
    )
    exclude_raters_of = models.ManyToManyField(
        "self", symmetrical=False, blank=True, related_name="+",
        help_text="Crowd workers who took part in any of these studies are not admitted "
        "(checked at join; on Prolific also its previous-studies blocklist).",
    )  # fmt: skip
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        help_text="The study's owner: sees and runs it, and names its collaborators.",
    )  # fmt: skip
    collaborators = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="shared_studies",
        help_text="Researchers who see and run this study like its owner (superusers see all).",
    )  # fmt: skip
    launched_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)

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
        default=True,
        help_text="Never show a rater two tasks of the same source image (keeps raters blind: "
        "a repeated image or map hints at the conditions). Turn off only with a reason.",
    )
    lease_seconds = models.PositiveIntegerField(
        default=_default_lease_seconds,
        help_text="How long a rater holds a task before it may go to someone else; the task "
        "page extends it while the rater is on the page.",
    )
    instructions = models.TextField(blank=True)
    min_viewing_ms = models.PositiveIntegerField(
        default=0,
        validators=[MaxValueValidator(MIN_VIEWING_MS_MAX)],
        help_text="Minimum viewing time (ms): the answer buttons stay disabled until the images "
        "have been on screen this long, and the server refuses an earlier answer. 0 = off.",
    )
    min_screen_width = models.PositiveSmallIntegerField(
        default=0,
        validators=[MaxValueValidator(MIN_SCREEN_WIDTH_MAX)],
        help_text="Minimum browser width (CSS px) for the task page; a narrower screen gets a "
        "polite page asking for a larger one and answers nothing. 0 = any (works from 320 px).",
    )
    consent_text = models.TextField(
        blank=True,
        help_text="The consent statement raters must accept before starting. Empty: the "
        "default statement (see the rater's start page in a preview).",
    )
    practice_trials = models.PositiveSmallIntegerField(
        default=2,
        validators=[MaxValueValidator(PRACTICE_TRIALS_MAX)],
        help_text="Practice trials with feedback before the first task (0-3). Practice uses "
        "images that no task of the experiment shows; its answers are stored as practice only.",
    )
    attention_checks = models.PositiveSmallIntegerField(
        default=2,
        validators=[MaxValueValidator(ATTENTION_CHECKS_MAX)],
        help_text="Attention checks per rater: instructed-response items (the question itself "
        "says which option to choose), at random positions, never first. Prolific allows a "
        "rejection only on failed checks of this kind (two for studies over 5 minutes).",
    )
    catch_percent = models.PositiveSmallIntegerField(
        default=10,
        validators=[MaxValueValidator(CHECK_PERCENT_MAX)],
        help_text="Catch trials, as a percentage of the experiment's tasks: tasks with a known "
        "answer that look exactly like the others (pairwise: a real map against the same map "
        "rotated 180 degrees; forced choice: a lightly occluded photo). They measure "
        "performance, for excluding data, never for rejecting pay.",
    )
    probe_percent = models.PositiveSmallIntegerField(
        default=10,
        validators=[MaxValueValidator(CHECK_PERCENT_MAX)],
        help_text="Consistency probes, as a percentage of a rater's tasks: a task the rater "
        "answered is shown again later (pairwise: sides swapped), scored as consistency.",
    )
    onboarding_images = models.JSONField(
        default=list, blank=True, editable=False,
        help_text="Source image ids reserved at launch for the worked example (first) and the "
        "practice trials: images no task of the experiment shows.",
    )  # fmt: skip
    reopen_excluded = models.BooleanField(
        default=True,
        help_text="When the quality rules exclude a rater while the study runs, give their "
        "answered tasks to other raters (their answers stay stored, marked excluded).",
    )
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
            models.CheckConstraint(
                condition=Q(lease_seconds__gte=10), name="experiment_lease_min_10s"
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
    position = models.PositiveIntegerField(
        help_text="Random allocation order, fixed at generation."
    )
    is_catch = models.BooleanField(
        default=False,
        help_text="A catch trial: pairwise, stimulus_a is the real map and stimulus_b the "
        "degenerate one (A is the better answer); forced choice, a lightly occluded photo "
        "(the image class is the answer).",
    )

    class Meta:
        ordering = ["experiment", "position"]
        constraints = [
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


class Slot(models.Model):
    """One of a task's ``quota`` answers: free, leased to a participation, or answered.

    ``rank`` is the allocation order within the experiment, breadth first:
    every task's first slot (in the task's shuffled ``position`` order) comes
    before any task's second slot, so a study stopped early has its answers
    spread over all tasks. A claim takes the lowest-ranked claimable slot
    through the partial index ``slot_open_by_rank`` (see
    :mod:`apps.studies.allocation`). ``experiment`` and ``image`` are copies of
    the task's, so a claim never joins.

    ``holder`` and ``lease_expires_at`` are deliberately in no index: a claim
    or a lease renewal then changes no indexed column, and PostgreSQL updates
    the row in place (HOT; the table keeps free room on each page, migration
    0005) instead of adding index entries that every later claim walks past.
    """

    experiment = models.ForeignKey(
        Experiment, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="slots", db_index=False)
    image = models.ForeignKey(
        SourceImage, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    number = models.PositiveSmallIntegerField(help_text="1..quota")
    rank = models.PositiveIntegerField()
    holder = models.ForeignKey(
        "Participation", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        db_index=False, help_text="The lease holder, or who answered.",
    )  # fmt: skip
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    is_answered = models.BooleanField(default=False)

    class Meta:
        indexes = [
            models.Index(
                fields=["experiment", "rank"],
                condition=Q(is_answered=False),
                name="slot_open_by_rank",
            ),
        ]
        constraints = [
            models.UniqueConstraint(fields=["task", "number"], name="slot_unique_number"),
            models.CheckConstraint(condition=Q(number__gte=1), name="slot_number_positive"),
            models.CheckConstraint(
                condition=(
                    Q(is_answered=False, holder__isnull=True, lease_expires_at__isnull=True)
                    | Q(is_answered=False, holder__isnull=False, lease_expires_at__isnull=False)
                    | Q(is_answered=True, holder__isnull=False, lease_expires_at__isnull=True)
                ),
                name="slot_state",
            ),
        ]

    def __str__(self) -> str:
        return f"slot {self.number} of task {self.task_id}"


class Rater(TimeStampedModel):
    """A person: a crowd worker (by provider and worker id) or a browser (plain links)."""

    class Source(models.TextChoices):
        LINK = "link", "Plain link"
        PROLIFIC = "prolific", "Prolific"
        MTURK = "mturk", "Amazon Mechanical Turk"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    source = models.CharField(max_length=10, choices=Source.choices)
    external_id = models.CharField(
        max_length=64, help_text="Crowd worker id; for a plain link, a hash of the browser."
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["source", "external_id"], name="rater_unique_external")
        ]

    def __str__(self) -> str:
        return f"{self.source}:{self.public_id}"


class Participation(TimeStampedModel):
    """A rater's session in one experiment: how many tasks, how far, done or not.

    ``current_assignment`` is the task on the rater's screen (a reload shows
    it again). ``browser_hash`` binds a crowd worker's participation to the
    browser that started it; ``ip_hash`` (HMAC, never the address) serves the
    optional per-IP join limit of plain links.
    """

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        COMPLETED = "completed", "Completed"
        EXHAUSTED = "exhausted", "No tasks left before any answer"

    rater = models.ForeignKey(Rater, on_delete=models.CASCADE, related_name="participations")
    experiment = models.ForeignKey(
        Experiment, on_delete=models.CASCADE, related_name="participations"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    target = models.PositiveIntegerField()
    answered = models.PositiveIntegerField(default=0)
    # Rewritten with every answer: kept out of indexes and database FK checks so
    # PostgreSQL updates the row in place (HOT); Django still nulls it (SET_NULL)
    # when the assignment is deleted.
    current_assignment = models.ForeignKey(
        "Assignment", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        db_index=False, db_constraint=False,
    )  # fmt: skip
    completion_code = models.CharField(max_length=16, default=_completion_code, editable=False)
    external_session = models.JSONField(default=dict, blank=True)
    browser_hash = models.CharField(max_length=64, blank=True)
    ip_hash = models.CharField(max_length=64, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    consented_at = models.DateTimeField(
        null=True, blank=True, help_text="When the rater accepted the consent statement."
    )
    practice_done = models.PositiveSmallIntegerField(
        default=0, help_text="Practice trials answered (never counted as answers)."
    )
    next_check_after = models.PositiveIntegerField(
        null=True, blank=True,
        help_text="The answer count after which the next planned check (attention check or "
        "consistency probe) is due; empty when none is left.",
    )  # fmt: skip
    checks_planned = models.PositiveSmallIntegerField(
        default=0, help_text="Check items planned for this rater (shown in the progress)."
    )
    checks_answered = models.PositiveSmallIntegerField(default=0)
    excluded_at = models.DateTimeField(
        null=True, blank=True, help_text="When the quality rules excluded the rater."
    )
    exclusion_reasons = models.CharField(
        max_length=200, blank=True, help_text="The quality rules that fired, e.g. 'attention'."
    )
    quality = models.JSONField(
        default=dict, blank=True, help_text="Per-rater quality figures, updated while it runs."
    )

    class Meta:
        indexes = [
            models.Index(fields=["browser_hash", "created_at"], name="participation_browser"),
            models.Index(fields=["ip_hash", "created_at"], name="participation_ip"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["rater", "experiment"], name="participation_unique_rater"
            ),
        ]

    def __str__(self) -> str:
        return f"participation {self.pk} ({self.status}, {self.answered}/{self.target})"


class Assignment(models.Model):
    """A task handed to a rater: the lease on ``slot`` and the rater's history.

    Written once at claim time. Whether the rater still holds the task is the
    slot's business (``slot.holder``); whether they answered it, the
    response's. ``rater``, ``experiment`` and ``image`` are copies of the
    participation's and the task's, for the exclusion checks of a claim; the
    database checks the originals, not the copies (an FK check on the one
    experiment row from every concurrent claim would serialise them on it).
    """

    participation = models.ForeignKey(
        Participation, on_delete=models.CASCADE, related_name="assignments", db_index=False
    )
    rater = models.ForeignKey(
        Rater, on_delete=models.CASCADE, related_name="assignments", db_index=False,
        db_constraint=False,
    )  # fmt: skip
    experiment = models.ForeignKey(
        Experiment, on_delete=models.CASCADE, related_name="+", db_index=False,
        db_constraint=False,
    )  # fmt: skip
    task = models.ForeignKey(
        Task, on_delete=models.CASCADE, related_name="assignments", db_index=False
    )
    image = models.ForeignKey(
        SourceImage, on_delete=models.PROTECT, related_name="+", db_index=False,
        db_constraint=False,
    )  # fmt: skip
    slot = models.ForeignKey(Slot, on_delete=models.CASCADE, related_name="+", db_index=False)
    one_per_image = models.BooleanField(
        help_text="Copied from the experiment: the rater may get this image only once."
    )
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    claimed_at = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["participation", "image"], name="assignment_seen_image"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["task", "rater"], name="assignment_unique_rater"),
            models.UniqueConstraint(
                fields=["participation", "image"],
                condition=Q(one_per_image=True),
                name="assignment_one_per_image",
            ),
        ]

    def __str__(self) -> str:
        return f"assignment {self.public_id}"


class Response(models.Model):
    assignment = models.OneToOneField(Assignment, on_delete=models.PROTECT, related_name="response")
    task = models.ForeignKey(
        Task, on_delete=models.PROTECT, related_name="responses", db_index=False
    )
    # A copy of the assignment's rater (checked there).
    rater = models.ForeignKey(
        Rater, on_delete=models.PROTECT, related_name="responses", db_constraint=False
    )
    slot = models.OneToOneField(
        Slot, null=True, blank=True, on_delete=models.PROTECT, related_name="response",
        help_text="The answer slot it filled; empty for a late answer kept outside the quota.",
    )  # fmt: skip
    choice = models.PositiveSmallIntegerField(help_text="Index of the clicked option, as shown.")
    answer = models.CharField(
        max_length=100, help_text="Pairwise: -k..+k from A's view; forced choice: class or idk."
    )
    value = models.SmallIntegerField(null=True, blank=True, help_text="Pairwise encoded answer.")
    answer_raw = models.CharField(max_length=200)
    response_ms = models.PositiveIntegerField(null=True, blank=True)
    submitted_at = models.DateTimeField(db_index=True)
    late = models.BooleanField(
        default=False, help_text="Submitted after the rater's lease on the task had run out."
    )
    over_quota = models.BooleanField(
        default=False, help_text="Late, and every slot of the task was taken: kept, not counted."
    )
    reopened = models.BooleanField(
        default=False,
        help_text="The rater was excluded while the study ran and this answer's slot was given "
        "to another rater: kept, not counted.",
    )

    class Meta:
        ordering = ["submitted_at", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["task", "rater"], name="response_unique_rater"),
            models.CheckConstraint(
                condition=Q(over_quota=False, reopened=False, slot__isnull=False)
                | Q(over_quota=True, late=True, slot__isnull=True)
                | Q(reopened=True, slot__isnull=True),
                name="response_slot_iff_in_quota",
            ),
        ]

    def __str__(self) -> str:
        return f"response {self.pk}: task {self.task_id} = {self.answer}"


class CheckItem(models.Model):
    """A per-rater extra item: an attention check or a consistency probe.

    Planned when the rater joins (``due_after``: after that many answers), shown
    when due, outside the allocation: it takes no slot and counts toward no
    quota. ``task`` is the task whose maps it shows, chosen when it is served
    among the tasks the rater already answered (an attention check shows no new
    image; a probe repeats the answer it is a probe of, sides swapped on pairwise
    experiments). ``left_is_a`` is the side as shown. An attention check's
    question names the option to choose (``instructed_choice``), so it is fair
    in Prolific's sense. Exported with the answers (``check_kind``, ``probe_of``)
    and never entered into the study's tables.
    """

    class Kind(models.TextChoices):
        ATTENTION = "attention", "Attention check"
        PROBE = "probe", "Consistency probe"

    participation = models.ForeignKey(
        Participation, on_delete=models.CASCADE, related_name="check_items"
    )
    rater = models.ForeignKey(Rater, on_delete=models.CASCADE, related_name="+", db_index=False)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    due_after = models.PositiveIntegerField(help_text="Shown after this many answers (>= 1).")
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    task = models.ForeignKey(
        Task, null=True, blank=True, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    left_is_a = models.BooleanField(null=True, blank=True)
    instructed_choice = models.PositiveSmallIntegerField(null=True, blank=True)
    served_at = models.DateTimeField(null=True, blank=True)
    choice = models.PositiveSmallIntegerField(null=True, blank=True)
    answer = models.CharField(max_length=100, blank=True)
    value = models.SmallIntegerField(null=True, blank=True)
    answer_raw = models.CharField(max_length=200, blank=True)
    response_ms = models.PositiveIntegerField(null=True, blank=True)
    submitted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["participation", "due_after", "pk"]
        constraints = [
            models.CheckConstraint(condition=Q(due_after__gte=1), name="check_due_after_first"),
            models.CheckConstraint(
                condition=Q(kind="probe", instructed_choice__isnull=True)
                | Q(kind="attention", task__isnull=True)
                | Q(kind="attention", instructed_choice__isnull=False),
                name="check_attention_instructed",
            ),
            models.CheckConstraint(
                condition=Q(submitted_at__isnull=True)
                | Q(task__isnull=False, choice__isnull=False),
                name="check_answer_needs_task",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} after {self.due_after} ({self.participation_id})"

    @property
    def is_answered(self) -> bool:
        return self.submitted_at is not None


class PracticeAnswer(models.Model):
    """A practice trial's answer: kept to show feedback and for the record, never exported
    as an answer and never counted toward any quota."""

    participation = models.ForeignKey(
        Participation, on_delete=models.CASCADE, related_name="practice_answers"
    )
    number = models.PositiveSmallIntegerField(help_text="1..practice_trials")
    choice = models.PositiveSmallIntegerField()
    answer_raw = models.CharField(max_length=200)
    correct = models.BooleanField(null=True, blank=True)
    response_ms = models.PositiveIntegerField(null=True, blank=True)
    submitted_at = models.DateTimeField()

    class Meta:
        ordering = ["participation", "number"]
        constraints = [
            models.UniqueConstraint(
                fields=["participation", "number"], name="practice_unique_number"
            ),
        ]

    def __str__(self) -> str:
        return f"practice {self.number} of participation {self.participation_id}"
