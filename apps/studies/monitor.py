"""The live monitor of a study: reads only, a fixed handful of aggregate queries.

Per experiment (:func:`monitor_experiments`): in-quota answers over slots,
the answer rate over the last :data:`RATE_WINDOW` and the time left at that
rate, tasks on a screen now (live leases), late, over-quota and reopened
answers, and *stranded* slots: leases that ran out without an answer and
that the periodic ``leases_expire`` has not freed yet (a claim treats them
as free, so they only delay; many of them mean the beat task is not running).

Per rater (:func:`monitor_raters`): one row per participation, read in one
query with its rater and experiment; the quality figures come from
``Participation.quality``, which the quality pass writes
(``apps.studies.services.quality``), so they lag the answers by at most one
pass. Filters and the row limit are applied in the database, so a poll
stays cheap with 10,000 participations.

Six queries, however many experiments and raters: experiments, slots,
responses, participations per experiment, the raters' count and their rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, Q

from apps.core import clock
from apps.studies.models import Participation, Rater, Response, Slot, Study

RATE_WINDOW = timedelta(minutes=5)
DEFAULT_RATER_LIMIT = 500


@dataclass(frozen=True)
class ExperimentMonitor:
    id: int
    slug: str
    name: str
    answers: int  # in-quota answers (filled slots)
    target: int  # slots: tasks x quota
    answers_last_window: int  # in-quota answers submitted in the last RATE_WINDOW
    answers_per_minute: float
    eta_seconds: int | None  # time to fill the open slots at that rate; None at rate 0
    on_screen: int  # live leases: tasks on a rater's screen now
    stranded: int  # leases that ran out without an answer, not freed yet
    late: int  # answers after their lease ran out
    over_quota: int  # late answers kept outside the quota
    reopened: int  # answers of excluded raters whose slot went back to the pool
    participations: int
    excluded: int


@dataclass(frozen=True)
class RaterMonitor:
    participation_id: int
    rater_id: str  # the rater's public id
    source: str
    external_id: str  # crowd worker id; "browser" for a plain link
    experiment: str  # slug
    status: str
    answered: int
    target: int
    checks_answered: int
    checks_planned: int
    median_ms: float | None
    attention_accuracy: float | None
    catch_accuracy: float | None
    share_left_more: float | None  # side bias: share of non-equal answers for the left map
    consistency: float | None
    flags: list[str]  # the quality rules that fire now (excluded or not yet)
    excluded_at: str | None
    exclusion_reasons: str
    quality_updated_at: str | None


def _by_experiment(rows, key: str) -> dict[int, dict[str, int]]:
    return {row.pop(key): row for row in rows}


def monitor_experiments(*, study: Study, now: datetime | None = None) -> list[ExperimentMonitor]:
    """The per-experiment figures of ``study`` at ``now`` (the service clock by default)."""
    now = now or clock.now()
    experiments = list(study.experiments.order_by("position", "pk").values("pk", "slug", "name"))
    ids = [e["pk"] for e in experiments]
    slots = _by_experiment(
        Slot.objects.filter(experiment_id__in=ids)
        .values("experiment_id")
        .annotate(
            target=Count("pk"),
            answers=Count("pk", filter=Q(is_answered=True)),
            on_screen=Count("pk", filter=Q(is_answered=False, lease_expires_at__gt=now)),
            stranded=Count("pk", filter=Q(is_answered=False, lease_expires_at__lte=now)),
        )
        .order_by(),
        "experiment_id",
    )
    since = now - RATE_WINDOW
    answers = _by_experiment(
        Response.objects.filter(task__experiment_id__in=ids)
        .values("task__experiment_id")
        .annotate(
            late=Count("pk", filter=Q(late=True)),
            over_quota=Count("pk", filter=Q(over_quota=True)),
            reopened=Count("pk", filter=Q(reopened=True)),
            recent=Count(
                "pk",
                filter=Q(submitted_at__gt=since, submitted_at__lte=now, slot__isnull=False),
            ),
        )
        .order_by(),
        "task__experiment_id",
    )
    people = _by_experiment(
        Participation.objects.filter(experiment_id__in=ids)
        .values("experiment_id")
        .annotate(n=Count("pk"), excluded=Count("pk", filter=Q(excluded_at__isnull=False)))
        .order_by(),
        "experiment_id",
    )
    window_minutes = RATE_WINDOW.total_seconds() / 60
    rows = []
    for e in experiments:
        s = slots.get(e["pk"], {})
        a = answers.get(e["pk"], {})
        p = people.get(e["pk"], {})
        recent = a.get("recent", 0)
        rate = recent / window_minutes
        left = max(s.get("target", 0) - s.get("answers", 0), 0)
        eta = round(left / rate * 60) if rate > 0 else (0 if left == 0 else None)
        rows.append(
            ExperimentMonitor(
                id=e["pk"],
                slug=e["slug"],
                name=e["name"],
                answers=s.get("answers", 0),
                target=s.get("target", 0),
                answers_last_window=recent,
                answers_per_minute=round(rate, 2),
                eta_seconds=eta,
                on_screen=s.get("on_screen", 0),
                stranded=s.get("stranded", 0),
                late=a.get("late", 0),
                over_quota=a.get("over_quota", 0),
                reopened=a.get("reopened", 0),
                participations=p.get("n", 0),
                excluded=p.get("excluded", 0),
            )
        )
    return rows


def _flags(reasons: str | None) -> list[str]:
    return [r.strip() for r in (reasons or "").replace(",", ";").split(";") if r.strip()]


def monitor_raters(
    *,
    study: Study,
    search: str = "",
    experiment: str = "",
    only: str = "",
    limit: int = DEFAULT_RATER_LIMIT,
) -> tuple[list[RaterMonitor], int]:
    """The study's participations (newest first) matching the filters, and how many match.

    ``search``: part of the rater's public id or external id; ``experiment``:
    an experiment slug; ``only``: ``"excluded"`` (excluded by the quality
    rules) or ``"flagged"`` (excluded, or a rule fires in the latest quality
    figures). At most ``limit`` rows; the count is of all matches.
    """
    rows = Participation.objects.filter(experiment__study=study)
    if experiment:
        rows = rows.filter(experiment__slug=experiment)
    if search:
        term = search.strip()
        rows = rows.filter(
            Q(rater__public_id__icontains=term)
            | Q(rater__external_id__icontains=term, rater__source__in=_CROWD)
        )
    if only == "excluded":
        rows = rows.filter(excluded_at__isnull=False)
    elif only == "flagged":
        rows = rows.filter(Q(excluded_at__isnull=False) | _has_reasons())
    total = rows.count()
    values = rows.order_by("-pk").values(
        "pk",
        "rater__public_id",
        "rater__source",
        "rater__external_id",
        "experiment__slug",
        "status",
        "answered",
        "target",
        "checks_answered",
        "checks_planned",
        "quality",
        "excluded_at",
        "exclusion_reasons",
    )[: max(limit, 0)]
    return [_rater_row(v) for v in values], total


_CROWD = [s for s in Rater.Source.values if s != Rater.Source.LINK]


def _has_reasons() -> Q:
    """Quality figures with a non-empty ``reasons`` (portable JSON lookups: no SQL per row)."""
    return Q(quality__has_key="reasons") & ~Q(quality__reasons="") & ~Q(quality__reasons=None)


def _rater_row(v: Mapping[str, Any]) -> RaterMonitor:
    q = v["quality"] or {}
    source = v["rater__source"]
    return RaterMonitor(
        participation_id=v["pk"],
        rater_id=str(v["rater__public_id"]),
        source=source,
        external_id="browser" if source == Rater.Source.LINK else v["rater__external_id"],
        experiment=v["experiment__slug"],
        status=v["status"],
        answered=v["answered"],
        target=v["target"],
        checks_answered=v["checks_answered"],
        checks_planned=v["checks_planned"],
        median_ms=q.get("median_ms"),
        attention_accuracy=q.get("attention_accuracy"),
        catch_accuracy=q.get("catch_accuracy"),
        share_left_more=q.get("share_left_more"),
        consistency=q.get("consistency"),
        flags=_flags(q.get("reasons")),
        excluded_at=v["excluded_at"].isoformat() if v["excluded_at"] else None,
        exclusion_reasons=v["exclusion_reasons"],
        quality_updated_at=q.get("updated_at"),
    )


def study_monitor(
    *,
    study: Study,
    search: str = "",
    experiment: str = "",
    only: str = "",
    limit: int = DEFAULT_RATER_LIMIT,
) -> dict[str, Any]:
    """Everything the monitor page shows, JSON-ready (the endpoint's body)."""
    now = clock.now()
    experiments = monitor_experiments(study=study, now=now)
    raters, total = monitor_raters(
        study=study, search=search, experiment=experiment, only=only, limit=limit
    )
    answers = sum(e.answers for e in experiments)
    target = sum(e.target for e in experiments)
    return {
        "study": {"id": study.pk, "slug": study.slug, "name": study.name, "status": study.status},
        "now": now.isoformat(),
        "rate_window_seconds": int(RATE_WINDOW.total_seconds()),
        "totals": {
            "answers": answers,
            "target": target,
            "on_screen": sum(e.on_screen for e in experiments),
            "stranded": sum(e.stranded for e in experiments),
            "late": sum(e.late for e in experiments),
            "over_quota": sum(e.over_quota for e in experiments),
            "reopened": sum(e.reopened for e in experiments),
        },
        "experiments": [asdict(e) for e in experiments],
        "raters": [asdict(r) for r in raters],
        "raters_total": total,
        "raters_limit": limit,
    }
