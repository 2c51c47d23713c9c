"""``manage.py analyze``: a thin adapter over :func:`apps.analysis.engine.run_analysis`.

    python manage.py analyze --responses answers.csv --out results/
    python manage.py analyze --study SLUG --out results/      # needs the study database

The ``--responses`` form reads the export CSV and touches no database.
"""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from apps.analysis.engine import AnalysisInputError, AnalysisOptions, QualityRules, run_analysis


def _csv_list(value: str | None) -> tuple[str, ...] | None:
    return tuple(x.strip() for x in value.split(",") if x.strip()) if value else None


class Command(BaseCommand):
    help = (
        "Analyse a study's answers: the paper's tables, CIs, tests and figures, written to --out."
    )

    def add_arguments(self, parser) -> None:
        src = parser.add_mutually_exclusive_group(required=True)
        src.add_argument("--study", help="study slug (reads the study database)")
        src.add_argument(
            "--responses", help="response CSV in the export format (no database needed)"
        )
        parser.add_argument("--out", required=True, help="output directory (created if missing)")
        parser.add_argument(
            "--metrics",
            help="per-stimulus metrics CSV: condition,image_id,gini,rma,rra,deletion_auc",
        )
        parser.add_argument(
            "--model-accuracy", help="per-condition model accuracy CSV: condition,test_accuracy"
        )
        parser.add_argument(
            "--bootstrap", type=int, default=1000, help="bootstrap replicates (0: no CIs)"
        )
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--ci-level", type=float, default=0.95)
        parser.add_argument(
            "--bootstrap-units", choices=["tasks", "raters", "both"], default="both"
        )
        parser.add_argument(
            "--include-excluded", action="store_true", help="keep raters the quality rules exclude"
        )
        parser.add_argument(
            "--include-over-quota",
            action="store_true",
            help="keep late answers stored outside their task's quota (left out by default)",
        )
        parser.add_argument(
            "--min-catch-accuracy", type=float, default=QualityRules.min_catch_accuracy
        )
        parser.add_argument(
            "--straight-line-min", type=int, default=QualityRules.straight_line_min_answers
        )
        parser.add_argument("--min-median-ms", type=float, default=QualityRules.min_median_ms)
        parser.add_argument(
            "--target-ci-width", type=float, default=0.05, help="CI width for the power estimate"
        )
        parser.add_argument(
            "--conditions", help="comma-separated known conditions; others are an error"
        )
        parser.add_argument("--classes", help="comma-separated forced-choice classes")
        parser.add_argument("--no-figures", action="store_true")

    def handle(self, *args, **opts) -> None:
        options = AnalysisOptions(
            n_boot=opts["bootstrap"],
            seed=opts["seed"],
            ci_level=opts["ci_level"],
            bootstrap_units=opts["bootstrap_units"],
            include_excluded=opts["include_excluded"],
            include_over_quota=opts["include_over_quota"],
            rules=QualityRules(
                min_catch_accuracy=opts["min_catch_accuracy"],
                straight_line_min_answers=opts["straight_line_min"],
                min_median_ms=opts["min_median_ms"],
            ),
            target_ci_width=opts["target_ci_width"],
            figures=not opts["no_figures"],
            metrics=opts["metrics"],
            model_accuracy=opts["model_accuracy"],
            known_conditions=_csv_list(opts["conditions"]),
            classes=_csv_list(opts["classes"]),
        )
        try:
            if opts["study"]:
                result = _analyze_study(opts["study"], Path(opts["out"]), options)
            else:
                result = run_analysis(opts["responses"], opts["out"], options=options)
        except AnalysisInputError as exc:
            raise CommandError(str(exc)) from exc
        except FileNotFoundError as exc:
            raise CommandError(f"file not found: {exc.filename}") from exc
        for line in result.summary_lines():
            self.stdout.write(line)


def _analyze_study(slug: str, out: Path, options: AnalysisOptions):
    from apps.analysis.services import study_analyze
    from apps.studies.models import Study

    study = Study.objects.select_related("family").filter(slug=slug).first()
    if study is None:
        known = ", ".join(Study.objects.values_list("slug", flat=True)) or "none"
        raise CommandError(f"No study '{slug}' (known: {known}).")
    return study_analyze(study=study, out_dir=out, options=options)
