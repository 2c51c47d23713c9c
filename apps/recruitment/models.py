"""Publishing experiments to crowds, and the ledger that makes every paid call happen once.

- A :class:`Publication` is one experiment offered on one provider (a plain
  link, Prolific, MTurk or its sandbox): what it pays, how many places, and
  the provider's id of what was created (MTurk HIT type, Prolific study).
- An :class:`ExternalCall` is written, with a unique ``key`` and state
  ``pending``, *before* any call to a provider that creates, publishes, pays,
  rejects or blocks; it becomes ``done`` (with the provider's answer) or
  ``failed`` (the provider refused). A retried command finds the row: ``done``
  is not called again, ``pending`` means an earlier attempt's outcome is
  unknown and the provider's own records are asked first (``reconcile``).
  The key is derived from our rows, never from the clock, and is what MTurk
  receives as ``UniqueRequestToken``.
- A :class:`Submission` is the provider's record of one worker's attempt
  (MTurk assignment, Prolific submission), matched to our participation, with
  our decision on it (approve, reject with a reason, hold for review).
"""

from __future__ import annotations

import secrets
import uuid
from decimal import Decimal

from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q

from apps.core.models import TimeStampedModel


def _study_code() -> str:
    return "XC" + secrets.token_hex(3).upper()


class Provider(models.TextChoices):
    LINK = "link", "Plain link"
    PROLIFIC = "prolific", "Prolific"
    MTURK = "mturk", "Amazon Mechanical Turk"


class Publication(TimeStampedModel):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft (not yet on the provider)"
        PUBLISHED = "published", "Published"
        CLOSED = "closed", "Closed"

    study = models.ForeignKey(
        "studies.Study", on_delete=models.PROTECT, related_name="publications"
    )
    experiment = models.ForeignKey(
        "studies.Experiment", on_delete=models.PROTECT, related_name="publications"
    )
    public_id = models.UUIDField(
        default=uuid.uuid4, unique=True, editable=False,
        help_text="Our id at the provider (MTurk RequesterAnnotation, Prolific internal name) "
        "and the root of every call key: unique across installations sharing an account.",
    )  # fmt: skip
    provider = models.CharField(max_length=10, choices=Provider.choices)
    sandbox = models.BooleanField(default=False, help_text="MTurk's sandbox (no money moves).")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    title = models.CharField(max_length=128)
    description = models.TextField(max_length=2000)
    reward = models.DecimalField(
        max_digits=8, decimal_places=2, default=Decimal("0.00"),
        validators=[MinValueValidator(Decimal("0.00"))],
        help_text="Paid per completed participation (USD on MTurk; the account's currency on "
        "Prolific).",
    )  # fmt: skip
    bonus = models.DecimalField(
        max_digits=8, decimal_places=2, default=Decimal("0.00"),
        validators=[MinValueValidator(Decimal("0.00"))],
        help_text="Paid on top of the reward to every approved, completed participation.",
    )  # fmt: skip
    places = models.PositiveIntegerField(help_text="Participants to recruit.")
    estimated_minutes = models.PositiveIntegerField(default=10)
    options = models.JSONField(
        default=dict, blank=True,
        help_text="Provider options (MTurk: qualifications, lifetime, assignments per HIT).",
    )  # fmt: skip
    external_id = models.CharField(
        max_length=64, blank=True, help_text="MTurk HIT type id, or Prolific study id."
    )
    completion_code = models.CharField(
        max_length=16, default=_study_code, help_text="Prolific: the study's completion code."
    )
    no_tasks_code = models.CharField(
        max_length=16, default=_study_code,
        help_text="Prolific: the code for a participant who found no task left.",
    )  # fmt: skip
    no_consent_code = models.CharField(
        max_length=16, default=_study_code,
        help_text="Prolific: the code for a participant who declined consent (NO_CONSENT).",
    )  # fmt: skip
    completion_redirect_url = models.URLField(
        blank=True, help_text="Plain link: where the end page sends raters (optional)."
    )
    published_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["study", "experiment__position", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["experiment", "provider", "sandbox"], name="publication_unique"
            ),
            models.CheckConstraint(
                condition=Q(sandbox=False) | Q(provider="mturk"),
                name="publication_sandbox_mturk_only",
            ),
        ]

    @property
    def key_root(self) -> str:
        """The prefix of this publication's call keys (22 characters)."""
        return "xc" + self.public_id.hex[:20]

    def __str__(self) -> str:
        where = f"{self.get_provider_display()}{' sandbox' if self.sandbox else ''}"
        return f"{self.experiment} on {where}"


class ExternalCall(models.Model):
    class State(models.TextChoices):
        PENDING = "pending", "Pending (sent, or about to be; outcome unknown)"
        DONE = "done", "Done"
        FAILED = "failed", "Failed (the provider refused)"

    publication = models.ForeignKey(Publication, on_delete=models.PROTECT, related_name="calls")
    kind = models.CharField(max_length=32)
    key = models.CharField(max_length=64, unique=True)
    state = models.CharField(max_length=8, choices=State.choices, default=State.PENDING)
    request = models.JSONField(default=dict)
    result = models.JSONField(default=dict, blank=True)
    external_id = models.CharField(max_length=128, blank=True)
    error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["pk"]
        indexes = [models.Index(fields=["publication", "kind"], name="call_by_kind")]

    def __str__(self) -> str:
        return f"{self.kind} {self.key} ({self.state})"


class Submission(TimeStampedModel):
    class Decision(models.TextChoices):
        NONE = "", "Not decided"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"

    publication = models.ForeignKey(
        Publication, on_delete=models.PROTECT, related_name="submissions"
    )
    participation = models.ForeignKey(
        "studies.Participation", null=True, blank=True, on_delete=models.SET_NULL,
        related_name="submissions",
    )  # fmt: skip
    worker_id = models.CharField(max_length=64)
    external_id = models.CharField(
        max_length=64, help_text="MTurk assignment id, or Prolific submission id."
    )
    hit_id = models.CharField(max_length=64, blank=True)
    provider_status = models.CharField(max_length=32)
    decision = models.CharField(
        max_length=10, choices=Decision.choices, default=Decision.NONE, blank=True
    )
    decision_reason = models.TextField(
        blank=True, help_text="Why it was rejected, or why pay left it for you to decide."
    )
    bonus_paid = models.DecimalField(max_digits=8, decimal_places=2, default=Decimal("0.00"))
    synced_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["publication", "pk"]
        constraints = [
            # MTurk reuses an assignment id after a worker returns it: the pair is the key.
            models.UniqueConstraint(
                fields=["publication", "external_id", "worker_id"], name="submission_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.publication.provider} {self.external_id} ({self.provider_status})"
