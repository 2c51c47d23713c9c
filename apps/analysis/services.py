"""The analysis of a study in the database: the engine's inputs from the
study's rows, and cached result folders for the results page.

The engine (``apps.analysis.engine``) reads the same response CSV that
``export_responses`` writes, so the database form is the CSV form: the
answers are streamed to a file and analysed from there. Results are cached
per state of the study (answer count and newest answer, see
:class:`~apps.analysis.models.AnalysisRun`) and computed off the request by
the ``cpu_study_analyze`` task: a page view starts at most one run per state.
The engine writes into a local temporary folder; the finished files go to the
``results`` storage (:mod:`apps.analysis.results_store`), where any web host
reads them.
"""

from __future__ import annotations

import tempfile
import threading
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

import pandas as pd
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, Max

from apps.analysis import results_store
from apps.analysis.models import AnalysisRun
from apps.core import clock
from apps.pipeline.models import Stimulus
from apps.studies.exports import write_responses_csv
from apps.studies.models import Response, Study

METRIC_KEYS = ("gini", "rma", "rra", "deletion_auc")


@dataclass(frozen=True)
class StudyResults:
    """One finished analysis in the ``results`` storage: the files under ``prefix``.

    ``names`` are the files' paths relative to the folder (posix, sorted,
    without the ``DONE`` marker); read one with :meth:`open` (a stream).
    """

    study: Study
    prefix: str
    n_answers: int
    names: tuple[str, ...]

    def stored_name(self, name: str) -> str:
        if name not in self.names:  # only files the analysis wrote; never a path from a URL
            raise FileNotFoundError(f"the results have no file named {name!r}")
        return f"{self.prefix}/{name}"

    def open(self, name: str):
        return results_store.open_stream(self.stored_name(name))

    def size(self, name: str) -> int:
        return results_store.results_storage().size(self.stored_name(name))

    def zip_name(self) -> str:
        """The stored archive of every file (built on first use)."""
        return results_store.ensure_zip(prefix=self.prefix, names=list(self.names))


def study_metrics_table(*, study: Study) -> pd.DataFrame:
    """One row per (variant label, image) with the stored explanation metrics."""
    rows = []
    for label, image_id, metrics in Stimulus.objects.filter(
        variant__family=study.family, kind=Stimulus.Kind.HEAT, catch=""
    ).values_list("variant__label", "image_id", "metrics"):
        row = {"condition": label, "image_id": str(image_id)}
        row.update({key: (metrics or {}).get(key) for key in METRIC_KEYS})
        rows.append(row)
    table = pd.DataFrame(rows, columns=["condition", "image_id", *METRIC_KEYS])
    # A metric missing for some stimulus (e.g. RMA without an object mask) is left out whole.
    complete = [key for key in METRIC_KEYS if table[key].notna().all()]
    return table[["condition", "image_id", *complete]] if complete else table.iloc[0:0]


def study_model_accuracy_table(*, study: Study) -> pd.DataFrame:
    return pd.DataFrame(
        list(study.family.variants.values_list("label", "test_accuracy")),
        columns=["condition", "test_accuracy"],
    )


def study_analyze(*, study: Study, out_dir: Path, options=None, on_step=None):
    """Analyse ``study`` from the database into ``out_dir``; returns the engine's result.

    The one path of the ``analyze --study`` command and of the results page's
    background run (:func:`analysis_run_execute`); ``on_step`` as in ``run_analysis``.
    """
    from apps.analysis.engine import AnalysisOptions, run_analysis

    out_dir.mkdir(parents=True, exist_ok=True)
    responses_csv = out_dir / "responses.csv"
    with responses_csv.open("w", encoding="utf-8", newline="") as fh:
        write_responses_csv(study=study, out=fh)
    base = options or AnalysisOptions()
    labels = tuple(study.family.variants.values_list("label", flat=True))
    metrics = study_metrics_table(study=study)
    accuracy = study_model_accuracy_table(study=study)
    options = replace(
        base,
        known_conditions=base.known_conditions or labels,
        classes=base.classes or tuple(study.family.class_names),
        metrics=base.metrics if base.metrics is not None else (metrics if len(metrics) else None),
        model_accuracy=base.model_accuracy
        if base.model_accuracy is not None
        else (accuracy if accuracy["test_accuracy"].notna().any() else None),
    )
    return run_analysis(responses_csv, out_dir, options=options, on_step=on_step)


STALE_AFTER = timedelta(hours=2)  # a run "running" this long died with its worker: start again
ALL_RATERS_SUFFIX = "-all"  # key suffix of the runs that include the excluded raters


@dataclass(frozen=True)
class ResultsState:
    """What the results page shows: the newest finished results, and the run in progress.

    ``results`` may be of an older state of the answers (shown while the
    current one computes); ``run`` is the run for the current state, ``None``
    when the study has no answers.
    """

    results: StudyResults | None
    run: AnalysisRun | None

    @property
    def computing(self) -> bool:
        return self.run is not None and self.run.status == AnalysisRun.Status.RUNNING

    @property
    def current(self) -> bool:
        return self.run is not None and self.run.status == AnalysisRun.Status.DONE


def _study_prefix(study: Study) -> str:
    """The study's folder in the ``results`` storage (``RESULTS_ROOT/<slug>`` locally)."""
    return study.slug


def study_state_key(*, study: Study, include_excluded: bool = False) -> tuple[str, int] | None:
    """The key of the study's current answers (count and newest answer) and the count."""
    state = Response.objects.filter(task__experiment__study=study).aggregate(
        newest=Max("pk"), count=Count("pk")
    )
    if not state["count"]:
        return None
    key = f"{state['count']}-{state['newest']}"
    return (key + ALL_RATERS_SUFFIX if include_excluded else key), state["count"]


def _parse_key(name: str) -> tuple[int, int, bool] | None:
    include = name.endswith(ALL_RATERS_SUFFIX)
    core = name[: -len(ALL_RATERS_SUFFIX)] if include else name
    count, _, newest = core.partition("-")
    if not (count.isdigit() and newest.isdigit()):
        return None
    return int(count), int(newest), include


def study_results_latest(*, study: Study, include_excluded: bool = False) -> StudyResults | None:
    """The newest finished results folder of ``study`` (with or without excluded raters)."""
    storage = results_store.results_storage()
    root = _study_prefix(study)
    candidates = []
    for folder in results_store.list_folders(root):
        parsed = _parse_key(folder)
        if parsed and parsed[2] == include_excluded:
            candidates.append((parsed[1], parsed[0], folder))
    for _, count, folder in sorted(candidates, reverse=True):  # newest first
        prefix = f"{root}/{folder}"
        if storage.exists(f"{prefix}/{results_store.DONE}"):
            names = sorted(n for n in results_store.iter_files(prefix) if n != results_store.DONE)
            return StudyResults(study=study, prefix=prefix, n_answers=count, names=tuple(names))
    return None


def _dispatch(run: AnalysisRun) -> None:
    """Hand the run to Celery; in laptop mode (eager Celery) to a thread, so the request returns."""
    from apps.analysis.tasks import study_analyze as cpu_study_analyze

    args = (run.study_id, run.pk)
    if settings.CELERY_TASK_ALWAYS_EAGER:
        threading.Thread(
            target=_run_in_thread, args=args, name=f"analysis-{run.pk}", daemon=True
        ).start()
    else:
        cpu_study_analyze.delay(*args)


def _run_in_thread(study_id: int, run_id: int) -> None:
    from django.db import connections

    from apps.analysis.tasks import study_analyze as cpu_study_analyze

    try:
        cpu_study_analyze.apply(args=(study_id, run_id))
    finally:
        connections.close_all()


def study_results_request(*, study: Study, include_excluded: bool = False) -> ResultsState:
    """The results page's read: never analyses in the request.

    Starts the analysis of the current answers when no run has them yet (the
    unique (study, key) row makes that happen once, however many requests
    race), restarts a run that has been "running" past ``STALE_AFTER``, and
    returns the newest finished results with the current run.
    """
    state = study_state_key(study=study, include_excluded=include_excluded)
    latest = study_results_latest(study=study, include_excluded=include_excluded)
    if state is None:
        return ResultsState(results=None, run=None)
    key, count = state
    now = clock.now()
    try:
        with transaction.atomic():
            run, created = AnalysisRun.objects.get_or_create(
                study=study,
                key=key,
                defaults={
                    "include_excluded": include_excluded,
                    "n_answers": count,
                    "started_at": now,
                },
            )
    except IntegrityError:  # another request inserted it between our read and insert
        run, created = AnalysisRun.objects.get(study=study, key=key), False
    restart = False
    if not created and (
        (run.status == AnalysisRun.Status.RUNNING and run.started_at < now - STALE_AFTER)
        or (
            run.status == AnalysisRun.Status.DONE
            and not results_store.results_storage().exists(
                f"{_study_prefix(study)}/{key}/{results_store.DONE}"
            )
        )
    ):
        # Only the request whose conditional update wins restarts it.
        restart = bool(
            AnalysisRun.objects.filter(
                pk=run.pk, status=run.status, started_at=run.started_at
            ).update(
                status=AnalysisRun.Status.RUNNING,
                started_at=now,
                step="",
                error="",
                finished_at=None,
            )
        )
        run.refresh_from_db()
    if created or restart:
        transaction.on_commit(lambda: _dispatch(run))
    return ResultsState(results=latest, run=run)


def analysis_run_execute(*, study_id: int, run_id: int) -> AnalysisRun:
    """The task body: analyse the run's state into the ``results`` storage at ``<slug>/<key>``.

    Idempotent: a finished run is left alone. The answers are read now; if
    new ones came in since the request, the folder still carries the
    request's key (the next page view starts a run for the new state). The
    engine writes into a local temporary folder (removed after); the files
    are then stored with the ``DONE`` marker last, so a marked folder is
    complete on any host. Folders (and archives) of older states of the same
    kind are removed once this one is in place.
    """
    from apps.analysis.engine import AnalysisInputError, AnalysisOptions

    run = AnalysisRun.objects.select_related("study__family").get(pk=run_id, study_id=study_id)
    if run.status == AnalysisRun.Status.DONE:
        return run
    study = run.study
    root = _study_prefix(study)
    prefix = f"{root}/{run.key}"
    storage = results_store.results_storage()

    def on_step(name: str) -> None:
        AnalysisRun.objects.filter(pk=run.pk).update(step=name)

    with tempfile.TemporaryDirectory(prefix="xai-analysis-") as work:
        try:
            study_analyze(
                study=study,
                out_dir=Path(work) / "out",
                options=AnalysisOptions(include_excluded=run.include_excluded),
                on_step=on_step,
            )
            storage.delete(results_store.zip_name(prefix))  # an archive of an earlier try
            results_store.upload_folder(folder=Path(work) / "out", prefix=prefix)
        except AnalysisInputError as exc:
            AnalysisRun.objects.filter(pk=run.pk).update(
                status=AnalysisRun.Status.FAILED, error=str(exc), finished_at=clock.now()
            )
            run.refresh_from_db()
            return run
        except Exception as exc:  # shown on the page; the traceback goes to the worker's log
            AnalysisRun.objects.filter(pk=run.pk).update(
                status=AnalysisRun.Status.FAILED,
                error=f"{type(exc).__name__}: {exc}",
                finished_at=clock.now(),
            )
            raise
    this = _parse_key(run.key)
    for old in results_store.list_folders(root):  # older states of the same kind
        parsed = _parse_key(old)  # (a newer one may have won the race: it stays)
        if parsed and this and parsed[2] == this[2] and parsed[:2] < this[:2]:
            results_store.delete_folder(f"{root}/{old}")
            storage.delete(results_store.zip_name(f"{root}/{old}"))
    AnalysisRun.objects.filter(pk=run.pk).update(
        status=AnalysisRun.Status.DONE, step="", finished_at=clock.now()
    )
    run.refresh_from_db()
    return run


def excluded_rater_summary(*, results: StudyResults) -> dict[str, object]:
    """How many raters the run's quality rules excluded, and per rule how many.

    From the run's own ``rater_quality.csv`` (a rater may break several rules:
    the per-rule counts can add up to more than the total).
    """
    if "rater_quality.csv" not in results.names:
        return {"total": 0, "by_rule": {}}
    stream = results.open("rater_quality.csv")
    try:
        table = pd.read_csv(
            stream, usecols=["rater_id", "excluded", "reasons"], dtype={"reasons": str}
        )
    finally:
        stream.close()
    excluded = table[table["excluded"].astype(str).str.lower().isin(["true", "1"])]
    by_rule: dict[str, int] = {}
    for reasons in excluded["reasons"].fillna(""):
        for rule in filter(None, (r.strip() for r in str(reasons).split(";"))):
            by_rule[rule] = by_rule.get(rule, 0) + 1
    return {
        "total": len(excluded),
        "by_rule": dict(sorted(by_rule.items(), key=lambda kv: (-kv[1], kv[0]))),
    }


def study_rater_quality(*, study: Study, rules=None, by_experiment: bool = False) -> pd.DataFrame:
    """The per-rater quality table of ``study`` (``engine.quality.QUALITY_COLUMNS``).

    The same code path as the analysis: the study's response CSV (answers and
    check items) is written, loaded and scored by ``engine.quality``. One row
    per rater public id (``rater_id``), or per rater and experiment slug
    (``by_experiment``, an ``experiment`` column after ``rater_id``: what a
    provider's submission, which covers one experiment, is judged on). Empty,
    with the columns, for a study without answers.
    """
    import tempfile

    from apps.analysis.engine import quality
    from apps.analysis.engine.loading import load_responses

    columns = list(quality.QUALITY_COLUMNS)
    if by_experiment:
        columns.insert(1, "experiment")
    with tempfile.TemporaryDirectory(prefix="xai-quality-") as folder:
        path = Path(folder) / "responses.csv"
        with path.open("w", encoding="utf-8", newline="") as fh:
            count = write_responses_csv(study=study, out=fh)
        if not count:
            return pd.DataFrame(columns=columns)
        responses = load_responses(path, classes=tuple(study.family.class_names) or None)
    table = quality.rater_quality(
        responses, rules or quality.QualityRules(), by_experiment=by_experiment
    )
    return table[columns]


def study_rater_exclusions(*, study: Study, rules=None) -> dict[str, str]:
    """Rater public id -> the quality rules that exclude the rater (``"catch;too_fast"``).

    The same rules and code as the analysis (:func:`study_rater_quality`), over
    the study's stored answers; raters no rule excludes are absent.
    """
    table = study_rater_quality(study=study, rules=rules)
    excluded = table[table["excluded"].astype(bool)]
    return dict(zip(excluded["rater_id"].astype(str), excluded["reasons"], strict=True))
