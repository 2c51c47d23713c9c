"""Study designs without JSON: the paper's experiments and generic ones, and a design summary.

Presets
-------
The paper's three experiments (Weber et al., "Less is More"; /work/shared/PROTOCOL.md §4):

- ``prestudy``: two pairwise experiments, heat-maps and occlusion-maps, 3 points,
  CPR 1 vs 2 and CPR 1 vs 32 (1 000 tasks per map kind: 500 images x 2 pairs);
- ``experiment1``: pairwise, heat-maps, 5 points, all 6 pairs of CPR 1, 2, 4, 8
  (3 000 tasks: 500 images x 6 pairs);
- ``experiment2``: forced choice, occlusion-maps, CPR 1, 2, 4, 8, 32 one at a
  time (2 500 tasks: 500 images x 5 conditions).

All with 5 answers per task and 50 images per class (the paper's 500 test images
of 10 classes), unless the researcher asks for fewer images. A paper CPR the
family lacks is replaced by the family's nearest variant, nearest on the log
scale (CPRs double from step to step), a tie going to the higher CPR; the plan
says so. A pair that collapses (both sides on one variant) or repeats is dropped,
again saying so. Generic presets over whatever variants the family has:
``baseline-vs-each`` (the lowest CPR against every other), ``all-pairs`` and
``single`` (forced choice, every variant one at a time).

Design summary and power
------------------------
Per experiment: tasks (``experiment_plan_tasks``, which writes nothing), answers
= tasks x answers per task, raters = ceil(answers / tasks per rater), and each
provider's cost estimate for that many places (the provider's own ``cost``).

The power estimate is a normal approximation. The explainability index of a CPR
is a mean of encoded answers in [-m, m], m = (scale points - 1) / 2. A variable
bounded in [-m, m] has a standard deviation of at most m (half the answers at
each end), so in the worst case a 95 % confidence interval of half-width h needs

    n = ceil((z * m / h)^2),  z = 1.96,

answers that contain the CPR (m = 2, h = 0.05: 6 147 answers). For a
forced-choice experiment the figure is a CPR's rater accuracy, a proportion,
whose per-answer standard deviation is at most 0.5: n = ceil((z * 0.5 / h)^2)
(h = 0.05: 385). Answers of one rater or one task are correlated, which this
ignores: treat n as a floor. The summary compares n with the planned answers
of the least-covered CPR of each experiment.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal

from django.db import transaction

from apps.core.exceptions import ApplicationError
from apps.pipeline.models import ModelFamily, ModelVariant
from apps.studies.models import Experiment, Study
from apps.studies.services.design import experiment_create
from apps.studies.services.generation import experiment_plan_tasks

Z_95 = 1.96
PAPER_IMAGES_PER_CLASS = 50
PAPER_ANSWERS_PER_TASK = 5

PRESETS: dict[str, str] = {
    "prestudy": "Paper: pre-study (heat and occlusion, 3 points, CPR 1 vs 2 and 1 vs 32)",
    "experiment1": "Paper: Experiment 1 (heat-maps, 5 points, all pairs of CPR 1, 2, 4, 8)",
    "experiment2": "Paper: Experiment 2 (occlusion-maps, forced choice, CPR 1, 2, 4, 8, 32)",
    "baseline-vs-each": "Baseline vs each: the lowest CPR against every other variant",
    "all-pairs": "All pairs of the family's variants",
    "single": "Single stimulus: forced choice, every variant one at a time",
}
GENERIC = ("baseline-vs-each", "all-pairs", "single")


@dataclass(frozen=True)
class ExperimentSpec:
    """One experiment a preset would create (``experiment_create``'s arguments)."""

    slug: str
    name: str
    kind: str
    stimulus_kind: str
    scale_points: int | None = None
    pairs: tuple[tuple[str, str], ...] = ()
    conditions: tuple[str, ...] = ()


@dataclass
class PresetPlan:
    experiments: list[ExperimentSpec] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def family_variants(family: ModelFamily) -> list[ModelVariant]:
    return sorted(family.variants.all(), key=lambda v: v.cpr_target)


def nearest_variant(variants: list[ModelVariant], cpr: float) -> ModelVariant:
    """The variant nearest ``cpr`` on the log scale; a tie goes to the higher CPR."""
    return min(variants, key=lambda v: (abs(math.log(v.cpr_target / cpr)), -v.cpr_target))


class _Mapper:
    """Maps the paper's CPRs onto a family's variants, noting every substitution once."""

    def __init__(self, variants: list[ModelVariant], notes: list[str]):
        self.variants, self.notes = variants, notes
        self.seen: set[float] = set()

    def __call__(self, cpr: float) -> str:
        variant = nearest_variant(self.variants, cpr)
        if variant.cpr_target != cpr and cpr not in self.seen:
            self.notes.append(
                f"CPR {cpr:g} used by the paper is missing from this family: using "
                f"{variant.label} (CPR {variant.cpr_target:g}), the nearest."
            )
        self.seen.add(cpr)
        return variant.label

    def pairs(self, cprs: list[tuple[float, float]], where: str) -> tuple[tuple[str, str], ...]:
        out: list[tuple[str, str]] = []
        for a, b in cprs:
            pair = (self(a), self(b))
            if pair[0] == pair[1]:
                self.notes.append(f"{where}: CPR {a:g} vs {b:g} dropped (both map to {pair[0]}).")
            elif pair in out or pair[::-1] in out:
                self.notes.append(f"{where}: CPR {a:g} vs {b:g} dropped (repeats {pair[0]} vs "
                                  f"{pair[1]}).")  # fmt: skip
            else:
                out.append(pair)
        return tuple(out)

    def conditions(self, cprs: list[float], where: str) -> tuple[str, ...]:
        out: list[str] = []
        for cpr in cprs:
            label = self(cpr)
            if label in out:
                self.notes.append(f"{where}: CPR {cpr:g} dropped (repeats {label}).")
            else:
                out.append(label)
        return tuple(out)


def preset_plan(
    *, preset: str, family: ModelFamily, stimulus_kind: str = "", baseline: str = ""
) -> PresetPlan:
    """The experiments ``preset`` creates for ``family``; ``stimulus_kind`` and ``baseline``
    (a variant label) apply to the generic presets. Raises ``ApplicationError`` naming the
    problem (unknown preset, too few variants)."""
    if preset not in PRESETS:
        raise ApplicationError(f"Preset: unknown preset '{preset}'.")
    variants = family_variants(family)
    if len(variants) < (1 if preset == "single" else 2):
        raise ApplicationError(
            f"Preset: model family '{family.slug}' has {len(variants)} variant(s); "
            "a comparison needs at least two."
        )
    plan = PresetPlan()
    m = _Mapper(variants, plan.notes)
    pw, fc = Experiment.Kind.PAIRWISE, Experiment.Kind.FORCED_CHOICE
    if preset == "prestudy":
        for kind, word in (("heat", "heat-maps"), ("occlusion", "occlusion-maps")):
            where = f"Pre-study ({word})"
            pairs = m.pairs([(1, 2), (1, 32)], where)
            plan.experiments.append(ExperimentSpec(f"prestudy-{kind}", where, pw, kind, 3, pairs))
    elif preset == "experiment1":
        pairs = m.pairs(list(itertools.combinations([1, 2, 4, 8], 2)), "Experiment 1")
        plan.experiments.append(ExperimentSpec("exp1", "Experiment 1", pw, "heat", 5, pairs))
    elif preset == "experiment2":
        conditions = m.conditions([1, 2, 4, 8, 32], "Experiment 2")
        plan.experiments.append(
            ExperimentSpec("exp2", "Experiment 2", fc, "occlusion", conditions=conditions)
        )
    else:
        labels = [v.label for v in variants]
        kind = stimulus_kind or ("occlusion" if preset == "single" else "heat")
        if preset == "single":
            plan.experiments.append(
                ExperimentSpec("single", "Single stimulus", fc, kind, conditions=tuple(labels))
            )
        elif preset == "all-pairs":
            pairs = tuple(itertools.combinations(labels, 2))
            plan.experiments.append(ExperimentSpec("all-pairs", "All pairs", pw, kind, 5, pairs))
        else:
            base = baseline or labels[0]
            if base not in labels:
                raise ApplicationError(f"Baseline: '{base}' is not a variant of this family.")
            pairs = tuple((base, other) for other in labels if other != base)
            plan.experiments.append(
                ExperimentSpec("baseline-vs-each", f"{base} vs each", pw, kind, 5, pairs)
            )
    return plan


def _free_slug(study: Study, slug: str) -> str:
    taken = set(study.experiments.values_list("slug", flat=True))
    candidate, n = slug, 2
    while candidate in taken:
        candidate, n = f"{slug}-{n}", n + 1
    return candidate


@transaction.atomic
def preset_apply(
    *,
    study: Study,
    preset: str,
    stimulus_kind: str = "",
    baseline: str = "",
    images_per_class: int = PAPER_IMAGES_PER_CLASS,
    answers_per_task: int = PAPER_ANSWERS_PER_TASK,
    tasks_per_rater: int = 20,
) -> tuple[list[Experiment], list[str]]:
    """Create the preset's experiments in the draft ``study`` through ``experiment_create``;
    returns them and the plan's notes (substituted CPRs, dropped pairs)."""
    plan = preset_plan(
        preset=preset, family=study.family, stimulus_kind=stimulus_kind, baseline=baseline
    )
    created = [
        experiment_create(
            study=study,
            slug=_free_slug(study, spec.slug),
            name=spec.name,
            kind=spec.kind,
            stimulus_kind=spec.stimulus_kind,
            scale_points=spec.scale_points,
            pairs=[list(p) for p in spec.pairs],
            conditions=list(spec.conditions),
            images_per_class=images_per_class,
            answers_per_task=answers_per_task,
            tasks_per_rater=tasks_per_rater,
        )
        for spec in plan.experiments
    ]
    return created, plan.notes


# --- the design summary -------------------------------------------------------------------


def answers_needed(*, half_width: float, scale_points: int | None) -> int:
    """Answers per CPR for a 95 % CI of ``half_width`` (worst case; module docstring)."""
    sd = (scale_points - 1) / 2 if scale_points else 0.5
    return math.ceil((Z_95 * sd / half_width) ** 2)


@dataclass
class ProviderCost:
    provider: str
    label: str
    total: str = ""
    lines: list[str] = field(default_factory=list)
    error: str = ""


@dataclass
class ExperimentSummary:
    experiment: Experiment
    error: str = ""
    tasks: int = 0
    catch_tasks: int = 0
    answers: int = 0
    raters: int = 0
    answers_per_cpr: dict[str, int] = field(default_factory=dict)
    needed_per_cpr: int = 0
    costs: list[ProviderCost] = field(default_factory=list)

    @property
    def least_covered(self) -> tuple[str, int] | None:
        if not self.answers_per_cpr:
            return None
        return min(self.answers_per_cpr.items(), key=lambda item: item[1])

    @property
    def enough(self) -> bool:
        least = self.least_covered
        return least is not None and least[1] >= self.needed_per_cpr


def provider_costs(*, experiment: Experiment, places: int, reward: Decimal) -> list[ProviderCost]:
    """Each provider's own estimate (``CrowdProvider.cost``) for ``places`` at ``reward``,
    on an unsaved publication; a provider that cannot say (e.g. MTurk without an HTTPS
    address) gives its message instead."""
    from apps.recruitment.models import Provider, Publication
    from apps.recruitment.providers import provider_for

    out = []
    for provider in Provider:
        publication = Publication(
            study=experiment.study, experiment=experiment, provider=provider.value,
            reward=reward, places=max(places, 1), title=experiment.name[:128],
        )  # fmt: skip
        row = ProviderCost(provider=provider.value, label=provider.label)
        try:
            cost = provider_for(publication).cost(publication)
        except ApplicationError as exc:
            row.error = exc.message
        else:
            row.total = f"{cost.total} {cost.currency}".strip()
            row.lines = cost.lines()
        out.append(row)
    return out


def design_summary(
    *, study: Study, half_width: float = 0.05, reward: Decimal = Decimal("1.50")
) -> list[ExperimentSummary]:
    """Per experiment of ``study``: tasks, answers, raters, cost per provider, power."""
    labels = {v.pk: v.label for v in study.family.variants.all()}
    out = []
    for experiment in study.experiments.select_related("study__family").order_by("position", "pk"):
        row = ExperimentSummary(experiment=experiment)
        out.append(row)
        try:
            plan = experiment_plan_tasks(experiment=experiment)
        except ApplicationError as exc:
            row.error = exc.message
            continue
        row.tasks = len(plan.tasks)
        row.catch_tasks = plan.n_catch
        row.answers = row.tasks * experiment.answers_per_task
        row.raters = math.ceil(row.answers / max(experiment.tasks_per_rater, 1))
        per_cpr: Counter[str] = Counter()
        for task in plan.tasks:
            if task.is_catch:
                continue
            for stimulus in (task.stimulus_a, task.stimulus_b):
                if stimulus is not None:
                    per_cpr[labels.get(stimulus.variant_id, "?")] += experiment.answers_per_task
        row.answers_per_cpr = dict(per_cpr)
        row.needed_per_cpr = answers_needed(
            half_width=half_width, scale_points=experiment.scale_points
        )
        row.costs = provider_costs(experiment=experiment, places=row.raters, reward=reward)
    return out
