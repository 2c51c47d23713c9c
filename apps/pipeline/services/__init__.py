"""Writes for model families, pipeline jobs and their results.

The compute lives in ``workers.pipeline`` (pure PyTorch). This package owns
the job row (status, progress, error, timings, heartbeat), the work folder's
sync with the ``pipeline`` storage, and the import of the pipeline's manifest
into the database: variants, source images and stimuli, the latter two under
opaque file names so that no URL reveals a class or a CPR.

Modules, by concern: :mod:`.families` (create, build), :mod:`.jobs` (queue,
dispatch, cancel, retry, the two halves), :mod:`.steps` (the step loop,
heartbeat), :mod:`.reaper` (jobs whose worker was lost), :mod:`.imports`
(manifest into rows and media), :mod:`.workspace` (work folder <-> storage).
"""

from apps.pipeline.config_check import family_check_config, family_pipeline_config
from apps.pipeline.services.families import family_build, family_create
from apps.pipeline.services.imports import pipeline_import_manifest
from apps.pipeline.services.jobs import (
    job_cancel,
    job_create,
    job_dispatch,
    job_finish,
    job_retry,
    job_run_model_steps,
    job_runs_in_thread,
)
from apps.pipeline.services.reaper import jobs_reap_stale
from apps.pipeline.services.steps import CPU_STEPS, JobCancelled, job_heartbeat
from apps.pipeline.services.workspace import (
    family_workdir,
    pipeline_storage_name,
    workspace_pull,
    workspace_push,
)

__all__ = [
    "CPU_STEPS",
    "JobCancelled",
    "family_build",
    "family_check_config",
    "family_create",
    "family_pipeline_config",
    "family_workdir",
    "job_cancel",
    "job_create",
    "job_dispatch",
    "job_finish",
    "job_heartbeat",
    "job_retry",
    "job_run_model_steps",
    "job_runs_in_thread",
    "jobs_reap_stale",
    "pipeline_import_manifest",
    "pipeline_storage_name",
    "workspace_pull",
    "workspace_push",
]
