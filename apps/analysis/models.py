"""One row per analysis of a study state: the lock, the status and the progress the page reads."""

from __future__ import annotations

from django.db import models


class AnalysisRun(models.Model):
    """The analysis of one state of a study's answers (``key``), for the results page.

    ``key`` names the state (answer count and newest answer) and whether raters
    the quality rules exclude are included; the unique (study, key) row is the
    lock: the request that inserts it dispatches the work, every other request
    for the same state only reads it. The output folder is ``<study slug>/<key>``
    in the ``results`` storage (``RESULTS_ROOT`` locally, ``results/`` in the bucket).
    """

    class Status(models.TextChoices):
        RUNNING = "running", "Computing"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    study = models.ForeignKey(
        "studies.Study", on_delete=models.CASCADE, related_name="analysis_runs"
    )
    key = models.CharField(max_length=60)
    include_excluded = models.BooleanField(default=False)
    n_answers = models.PositiveIntegerField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    step = models.CharField(max_length=20, blank=True, help_text="The engine step running now.")
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["study", "key"], name="analysisrun_unique_state"),
        ]

    def __str__(self) -> str:
        return f"analysis {self.key} of study {self.study_id} ({self.status})"
