"""The analysis of a study in the database: the engine's inputs from the
study's rows, and cached result folders for the results page.

The engine (``apps.analysis.engine``) reads the same response CSV that
``export_responses`` writes, so the database form is the CSV form: the
answers are streamed to a file and analysed from there. Results are cached
per state of the study (answer count and newest answer), so a page view of a
running study recomputes only when new answers came in.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd
from django.conf import settings
from django.db.models import Count, Max

from apps.pipeline.models import Stimulus
from apps.studies.exports import write_responses_csv
from apps.studies.models import Response, Study

METRIC_KEYS = ("gini", "rma", "rra", "deletion_auc")


@dataclass(frozen=True)
class StudyResults:
    study: Study
    out_dir: Path
    n_answers: int

    @property
    def files(self) -> list[Path]:
        return sorted(p for p in self.out_dir.rglob("*") if p.is_file() and p.name != "DONE")


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


def study_analyze(*, study: Study, out_dir: Path, options=None):
    """Analyse ``study`` from the database into ``out_dir``; returns the engine's result."""
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
    return run_analysis(responses_csv, out_dir, options=options)


def study_results(*, study: Study) -> StudyResults | None:
    """Cached results for the study's current answers; ``None`` while it has none."""
    state = Response.objects.filter(task__experiment__study=study).aggregate(
        n=Max("pk"), count=Count("pk")
    )
    if not state["count"]:
        return None
    root = Path(settings.RESULTS_ROOT) / study.slug
    out_dir = root / f"{state['count']}-{state['n']}"
    if not (out_dir / "DONE").exists():
        partial = out_dir.with_name(out_dir.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        study_analyze(study=study, out_dir=partial)
        (partial / "DONE").write_text("ok\n")
        shutil.rmtree(out_dir, ignore_errors=True)
        partial.rename(out_dir)
        for old in root.iterdir():
            if old != out_dir and not old.name.endswith(".partial"):
                shutil.rmtree(old, ignore_errors=True)
    return StudyResults(study=study, out_dir=out_dir, n_answers=state["count"])


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
