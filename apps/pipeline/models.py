"""Model families, their pruned variants, source images and rendered stimuli.

A *model family* is one pipeline configuration (dataset, architecture, pruning
method and schedule). Running its job produces one *variant* per CPR, the
selected *source images*, and one *stimulus* per image × variant × kind ×
attribution method. Stimulus files live under opaque names (see
``apps.core.files``); the CPR is only ever stored in the database.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from apps.core.models import TimeStampedModel


class ModelFamily(TimeStampedModel):
    class Dataset(models.TextChoices):
        GENERATED = "generated", "Generated demo shapes"
        IMAGENETTE = "imagenette", "Imagenette"
        FOLDER = "folder", "Image folder"

    class PruneMethod(models.TextChoices):
        GLOBAL = "global", "Global L1 unstructured"
        LAYERWISE = "layerwise", "Layer-wise L1 unstructured"
        STRUCTURED = "structured", "Structured (filters)"

    class Schedule(models.TextChoices):
        ITERATIVE = "iterative", "Iterative with fine-tuning"
        LOTTERY = "lottery", "Lottery ticket (weight rewinding)"
        LR_REWIND = "lr_rewind", "Learning-rate rewinding"

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=80, unique=True)
    dataset = models.CharField(max_length=20, choices=Dataset.choices, default=Dataset.GENERATED)
    data_root = models.CharField(
        max_length=500, blank=True, help_text="Folder of the dataset (Imagenette or image folder)."
    )
    architecture = models.CharField(max_length=40, default="demo_vgg")
    prune_method = models.CharField(
        max_length=20, choices=PruneMethod.choices, default=PruneMethod.GLOBAL
    )
    schedule = models.CharField(max_length=20, choices=Schedule.choices, default=Schedule.ITERATIVE)
    cprs = models.JSONField(default=list, help_text="Target CPRs, e.g. [2, 4, 8, 16, 32].")
    config = models.JSONField(
        default=dict, blank=True, help_text="Further PipelineConfig fields (workers.pipeline)."
    )
    class_names = models.JSONField(default=list, blank=True, editable=False)
    target_layer = models.CharField(max_length=100, blank=True, editable=False)
    seed = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name_plural = "model families"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        """The family must make a valid pipeline configuration (names the bad field)."""
        from apps.pipeline.config_check import family_check_config

        family_check_config(self)


class ModelVariant(TimeStampedModel):
    """One pruned (or unpruned, CPR 1) model. ``label`` is e.g. ``cpr8``."""

    family = models.ForeignKey(ModelFamily, on_delete=models.CASCADE, related_name="variants")
    label = models.CharField(max_length=60)
    cpr_target = models.FloatField()
    cpr_measured = models.FloatField(help_text="Over the pruned scope (conv weights).")
    conv_sparsity = models.FloatField()
    train_accuracy = models.FloatField(null=True, blank=True)
    val_accuracy = models.FloatField(null=True, blank=True)
    test_accuracy = models.FloatField(null=True, blank=True)
    checkpoint = models.CharField(max_length=500, blank=True)
    checkpoint_sha256 = models.CharField(max_length=64, blank=True)
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["family", "cpr_target"]
        constraints = [
            models.UniqueConstraint(fields=["family", "label"], name="variant_unique_label"),
            models.UniqueConstraint(fields=["family", "cpr_target"], name="variant_unique_cpr"),
            models.CheckConstraint(condition=Q(cpr_target__gte=1), name="variant_cpr_at_least_1"),
        ]

    def __str__(self) -> str:
        return f"{self.family.slug}/{self.label}"


class SourceImage(TimeStampedModel):
    family = models.ForeignKey(ModelFamily, on_delete=models.CASCADE, related_name="images")
    key = models.CharField(max_length=300, help_text="Path of the image inside its dataset.")
    class_index = models.PositiveSmallIntegerField()
    class_name = models.CharField(max_length=100)
    split = models.CharField(max_length=10)
    file = models.CharField(max_length=300, help_text="Opaque name in media storage.")
    mask_file = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["family", "class_index", "key"]
        constraints = [
            models.UniqueConstraint(fields=["family", "key"], name="image_unique_key"),
        ]

    def __str__(self) -> str:
        return f"{self.class_name}: {self.key}"


CATCH_CHOICES = [
    ("", "Real map"),
    ("rot180", "Map rotated 180 degrees (catch)"),
    ("light", "Lightly occluded photo (catch)"),
]


class Stimulus(TimeStampedModel):
    class Kind(models.TextChoices):
        HEAT = "heat", "Heat-map"
        OCCLUSION = "occlusion", "Occlusion-map"

    image = models.ForeignKey(SourceImage, on_delete=models.CASCADE, related_name="stimuli")
    variant = models.ForeignKey(ModelVariant, on_delete=models.CASCADE, related_name="stimuli")
    kind = models.CharField(max_length=12, choices=Kind.choices)
    method = models.CharField(max_length=40, default="gradcam")
    file = models.CharField(max_length=300, help_text="Opaque name in media storage.")
    predicted_class = models.PositiveSmallIntegerField()
    is_blank = models.BooleanField(
        default=False, help_text="Degenerate (blank) map: never shown to raters."
    )
    catch = models.CharField(
        max_length=12, blank=True, choices=CATCH_CHOICES, default="",
        help_text="Empty for a real map; else a catch-trial stimulus rendered for quality "
        "checks: 'rot180' (the map rotated 180 degrees over the upright photo), 'light' "
        "(an occlusion-map that hides little of the photo).",
    )  # fmt: skip
    metrics = models.JSONField(default=dict, blank=True)
    provenance = models.JSONField(default=dict, blank=True)

    class Meta:
        verbose_name_plural = "stimuli"
        ordering = ["image", "variant", "kind", "method"]
        constraints = [
            models.UniqueConstraint(
                fields=["image", "variant", "kind", "method", "catch"], name="stimulus_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind}/{self.method} {self.variant.label} {self.image.key}"


class PipelineJob(TimeStampedModel):
    """A long pipeline run; the admin reads status, progress and error from here.

    ``updated_at`` is the job's heartbeat: the running step refreshes it every
    ``PIPELINE_HEARTBEAT_SECONDS``, and ``jobs_reap_stale`` (Celery beat)
    re-queues or fails a running job whose heartbeat is older than
    ``PIPELINE_STALE_SECONDS`` (its worker was lost).
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    LIVE = (Status.QUEUED, Status.RUNNING)
    RETRYABLE = (Status.FAILED, Status.CANCELLED)

    family = models.ForeignKey(ModelFamily, on_delete=models.CASCADE, related_name="jobs")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED)
    progress = models.FloatField(default=0.0)
    step = models.CharField(max_length=100, blank=True)
    message = models.CharField(max_length=500, blank=True)
    error = models.TextField(blank=True)
    timings = models.JSONField(default=dict, blank=True, help_text="Seconds per finished step.")
    celery_task_id = models.CharField(max_length=80, blank=True)
    attempts = models.PositiveSmallIntegerField(
        default=0,
        help_text="Times the job was handed to a worker: 1 when queued, +1 per re-queue by "
        "the stale-job reaper (a worker lost mid-job).",
    )
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(progress__gte=0) & Q(progress__lte=1), name="job_progress_0_1"
            ),
            # At most one live job per family: two would write the same work folder.
            models.UniqueConstraint(
                fields=["family"],
                condition=Q(status__in=["queued", "running"]),
                name="job_one_live_per_family",
            ),
        ]

    def __str__(self) -> str:
        return f"job {self.pk} ({self.family.slug}, {self.status})"

    @property
    def is_stopping(self) -> bool:
        """Cancelled while a step ran: the runner has not yet seen it (it stops between steps)."""
        return (
            self.status == self.Status.CANCELLED
            and self.started_at is not None
            and self.finished_at is None
        )
