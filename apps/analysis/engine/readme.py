"""The README.md of an analysis folder: inputs, what was left out and why, definitions, files."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from .loading import Responses

if TYPE_CHECKING:
    from .runner import AnalysisOptions, AnalysisResult


def readme_text(
    responses: Responses, opts: AnalysisOptions, result: AnalysisResult, rq: pd.DataFrame
) -> str:
    kinds = responses.checks["kind"].astype(str).value_counts()
    n_checks = len(responses.checks)
    n_over = int(responses.df["over_quota"].sum())
    n_reopened = int(responses.df["reopened"].sum())
    excl = result.excluded_raters
    state = "INCLUDED (--include-excluded)" if opts.include_excluded else "left out"
    lines = [
        "# Analysis results",
        "",
        f"Input: {responses.source or 'DataFrame'}; {result.n_answers_in} answers, "
        f"{len(rq)} raters, {len(responses.experiments)} experiment(s): "
        + ", ".join(
            f"{n} ({i.kind}{', ' + str(i.scale_points) + '-point' if i.scale_points else ''})"
            for n, i in responses.experiments.items()
        ),
        f"Analysed answers: {result.n_answers_used} ({n_checks} check items: "
        f"{int(kinds.get('attention', 0))} attention checks, {int(kinds.get('catch', 0))} catch "
        f"trials, {int(kinds.get('probe', 0))} consistency probes, are used for rater quality only).",
        f"Reopened answers (rater excluded while the study ran, slot given to another rater): "
        f"{n_reopened}, left out.",
        f"Late answers: {int(responses.df['late'].sum())}, of which {n_over} over their task's quota, "
        + ("INCLUDED (--include-over-quota)." if opts.include_over_quota else "left out."),
        f"Excluded raters: {len(excl)} by the quality rules, {state}; see excluded_raters.csv"
        + (
            f" ({', '.join(map(str, excl[:20]))}{' ...' if len(excl) > 20 else ''})."
            if excl
            else "."
        ),
        "",
        "## Quality rules",
        *[f"- {line}" for line in opts.rules.describe()],
        "",
        "## Definitions",
        "- Pairwise answers are encoded from condition_a's (the lower CPR's) point of view, -k..+k.",
        "- pairwise_means: mean encoded answer per pair (paper Table 4); sd = s.d. of the answers (ddof 1).",
        "- explainability_index: per condition, mean of all answers in tasks containing it, from its view (Table 5).",
        "- mean_task_sd: population s.d. (ddof 0) per task, averaged over tasks with >= 2 answers (Tables 1, 3).",
        "- Krippendorff's alpha from units(tasks)-by-values counts; interval and ordinal for pairwise, nominal for forced choice.",
        "- Forced choice: accuracy = correct/all, error_rate = wrong class/all, indecisive_rate = idk/all.",
        f"- CIs: {opts.ci_level:.0%} percentile bootstrap, {opts.n_boot} replicates, seed {opts.seed}, units: {opts.bootstrap_units} "
        "(tasks: exact multinomial over task aggregates; raters: resampled with replacement; both: sum of the one-way deviations, Owen 2007).",
        "- bradley_terry: Davidson model with ties, log-strength centred to mean 0; CIs by task bootstrap.",
        "- significance_tests: pairwise pairs vs 0 on task means; forced-choice conditions paired by image; "
        f"Holm within experiment and test; reject at {opts.alpha_tests}.",
        "- position_bias: answers from the left map's view; binomial test on non-equal answers.",
        f"- power: answers needed for a CI of full width {opts.target_ci_width} (width scales as 1/sqrt(n)).",
        "",
        "## Files",
        *[f"- {p.name}" for p in result.files],
        "- README.md",
        "",
    ]
    return "\n".join(lines)
