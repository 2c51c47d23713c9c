"""Pay verdicts follow the providers' policy on attention checks (README "Who is paid").

A rejection only on failed fair attention checks (instructed-response items):
at least 2 on a study over 5 minutes, else 1, on Prolific and on MTurk alike;
fewer on Prolific: held, with a request to return the submission; catch trials,
consistency, side bias and speed never reject (the rater is paid, the data is
excluded). Most tests give pay a crafted quality table (``study_rater_quality``
replaced); the last one goes through the real response CSV and the check items
in the database, and runs once the export writes them.
"""

from __future__ import annotations

import inspect
from datetime import timedelta

import pandas as pd
import pytest
from django.utils import timezone

from apps.recruitment.models import Provider, Publication, Submission
from apps.recruitment.providers.base import RemoteSubmission
from apps.recruitment.services import publication_publish, study_pay
from apps.recruitment.services.paying import RETURN_REQUEST, rejection_message
from apps.studies import exports
from apps.studies.models import CheckItem, Participation, Response
from tests.recruitment.helpers import MTURK, crowd_rater_finishes, published_study
from tests.recruitment.test_paying import MemoryCrowd

pytestmark = pytest.mark.django_db(transaction=True)

PROLIFIC_MIN_MESSAGE = 100  # Prolific refuses shorter rejection messages


@pytest.fixture
def crowd(monkeypatch) -> MemoryCrowd:
    fake = MemoryCrowd()
    for module in ("paying", "syncing", "publishing"):
        monkeypatch.setattr(f"apps.recruitment.services.{module}.provider_for", lambda p: fake)
    return fake


def fail_attention_checks(participation: Participation, n: int) -> None:
    """``n`` answered attention checks on the rater's answered pairwise tasks, each
    answered with an extreme option where the question asked for the middle one."""
    now = timezone.now()
    answered = Response.objects.filter(rater=participation.rater).select_related("task")
    for number, response in enumerate(answered[:n], start=1):
        left_is_a = bool(response.task.left_is_a)
        CheckItem.objects.create(
            participation=participation, rater=participation.rater,
            kind=CheckItem.Kind.ATTENTION, due_after=number, task=response.task,
            left_is_a=left_is_a, instructed_choice=2,  # the middle option: "no difference"
            served_at=now, choice=0, answer="2" if left_is_a else "-2",
            value=2 if left_is_a else -2, answer_raw="left much more",
            response_ms=2500, submitted_at=now + timedelta(seconds=number),
        )  # fmt: skip


def _worker(n: int) -> str:
    return f"A{n:012d}"


def _study_with_one_finished_rater(crowd: MemoryCrowd, *, provider: str, minutes: int):
    """A published study (MTurk records on the memory crowd), one rater who earned the code,
    the submission waiting for review; the publication then set to ``provider``/``minutes``
    (the pay policy reads only those two fields)."""
    study, publications = published_study(provider="mturk")
    for publication in publications:
        publication_publish(publication=publication)
    publication = publications[0]  # pairwise: the crowd's records are its
    session = {"workerId": _worker(1), "assignmentId": "ASG000000001", "hitId": "HIT1"}
    participation = crowd_rater_finishes(
        publication.experiment, source=MTURK, worker_id=_worker(1), session=session
    )
    crowd.publication_id = Publication.objects.order_by("pk").first().pk
    crowd.records.append(RemoteSubmission(_worker(1), "ASG000000001", "Submitted", hit_id="HIT1"))
    study_pay(study=study, dry_run=True)  # sync: the Submission row exists from here on
    Publication.objects.filter(pk=publication.pk).update(estimated_minutes=minutes)
    # The policy asks the publication's provider; matching (sync) asked the rater's source.
    Publication.objects.filter(pk=publication.pk).update(provider=provider)
    return study, participation


def _quality(monkeypatch, participation: Participation, **figures) -> None:
    """Pay sees this one-row quality table (per rater and experiment)."""
    row = {
        "rater_id": str(participation.rater.public_id),
        "experiment": participation.experiment.slug,
        "n_attention": 2,
        "attention_failed": 0,
        "n_catch": 0,
        "catch_accuracy": float("nan"),
        "reasons": "",
        **figures,
    }
    row["excluded"] = bool(row["reasons"])
    table = pd.DataFrame([row])
    monkeypatch.setattr(
        "apps.analysis.services.study_rater_quality",
        lambda *, study, rules=None, by_experiment=False: table,
    )


def _decided(study) -> tuple[str, str]:
    report = study_pay(study=study, dry_run=True)
    [decision] = report.decisions
    return decision.action, decision.reason


@pytest.mark.parametrize(
    ("provider", "minutes", "failed", "action"),
    [
        (Provider.PROLIFIC, 12, 1, "hold"),  # over 5 minutes: 2 needed; ask for a return
        (Provider.PROLIFIC, 12, 2, "reject"),
        (Provider.PROLIFIC, 5, 1, "reject"),  # 5 minutes or less: 1 is enough
        (Provider.PROLIFIC, 6, 0, "approve"),
        (Provider.MTURK, 12, 1, "approve"),  # as fair as Prolific; no return on MTurk
        (Provider.MTURK, 12, 2, "reject"),
        (Provider.MTURK, 3, 1, "reject"),
    ],
)
def test_failed_attention_checks_decide_by_provider_and_length(
    crowd, monkeypatch, provider, minutes, failed, action
):
    study, participation = _study_with_one_finished_rater(crowd, provider=provider, minutes=minutes)
    _quality(
        monkeypatch, participation, attention_failed=failed,
        reasons="attention" if failed else "",
    )  # fmt: skip

    decided, reason = _decided(study)

    assert decided == action
    if action == "hold":
        assert reason.startswith(RETURN_REQUEST) and "needs 2" in reason


def test_a_prolific_rater_below_the_threshold_is_held_with_a_return_request(crowd, monkeypatch):
    study, participation = _study_with_one_finished_rater(
        crowd, provider=Provider.PROLIFIC, minutes=12
    )
    _quality(monkeypatch, participation, attention_failed=1, reasons="attention")

    report = study_pay(study=study)

    assert [d.action for d in report.decisions] == ["hold"] and crowd.sent == []
    submission = Submission.objects.get()
    assert submission.decision == "" and RETURN_REQUEST in submission.decision_reason


def test_a_rejection_states_the_failed_checks_in_over_100_characters(crowd, monkeypatch):
    study, participation = _study_with_one_finished_rater(
        crowd, provider=Provider.PROLIFIC, minutes=12
    )
    _quality(monkeypatch, participation, attention_failed=2, n_attention=3, reasons="attention")

    report = study_pay(study=study)

    [decision] = report.done
    assert decision.action == "reject" and crowd.sent == [("reject", "ASG000000001")]
    message = decision.message
    assert len(message) >= PROLIFIC_MIN_MESSAGE
    assert "failed 2 of the 3 attention checks" in message
    assert "the question itself named the answer" in message
    submission = Submission.objects.get()
    assert submission.decision == "rejected"
    assert submission.decision_reason == f"failed 2 of 3 attention checks: {message}"


def test_every_generated_message_is_long_enough_for_prolific():
    for failed, checks in ((1, 1), (1, 2), (2, 2), (10, 10)):
        assert len(rejection_message(failed=failed, checks=checks)) >= PROLIFIC_MIN_MESSAGE


def test_the_researchers_reject_reason_replaces_the_generated_one(crowd, monkeypatch):
    study, participation = _study_with_one_finished_rater(crowd, provider=Provider.MTURK, minutes=5)
    _quality(monkeypatch, participation, attention_failed=1, reasons="attention")
    mine = "The attention question told you which option to pick; another one was chosen."

    [decision] = study_pay(study=study, reject_reason=mine).done

    assert decision.message == mine
    assert Submission.objects.get().decision_reason == f"failed 1 of 2 attention checks: {mine}"


@pytest.mark.parametrize(
    "reasons", ["catch", "consistency", "side_bias", "too_fast", "straight_lining",
                "catch;consistency;side_bias;too_fast"],
)  # fmt: skip
@pytest.mark.parametrize("provider", [Provider.PROLIFIC, Provider.MTURK])
def test_other_rules_never_reject_the_rater_is_paid(crowd, monkeypatch, provider, reasons):
    study, participation = _study_with_one_finished_rater(crowd, provider=provider, minutes=3)
    _quality(monkeypatch, participation, attention_failed=0, catch_accuracy=0.0, n_catch=3,
             reasons=reasons)  # fmt: skip

    report = study_pay(study=study, reject_reason="x" * 120)

    assert [(d.action, d.reason) for d in report.done] == [
        ("approve", f"paid; data excluded by quality rules ({reasons})")
    ]
    assert crowd.sent == [("approve", "ASG000000001")]


def test_attention_failures_in_another_experiment_do_not_count(crowd, monkeypatch):
    study, participation = _study_with_one_finished_rater(
        crowd, provider=Provider.PROLIFIC, minutes=3
    )
    _quality(monkeypatch, participation, experiment="fc", attention_failed=2, reasons="attention")

    assert _decided(study) == ("approve", "")


_EXPORT_WRITES_CHECK_ITEMS = "CheckItem" in inspect.getsource(exports)


@pytest.mark.skipif(
    not _EXPORT_WRITES_CHECK_ITEMS,
    reason="waits for the export of CheckItem rows (apps/studies/exports.py)",
)
def test_real_csv_failed_attention_check_items_in_the_database_lead_to_a_rejection(crowd):
    """End to end through the export: answered attention CheckItems, each answered with
    another option than the instructed one, reach the quality table and the pay verdict."""
    study, participation = _study_with_one_finished_rater(
        crowd, provider=Provider.PROLIFIC, minutes=12
    )
    fail_attention_checks(participation, 2)

    report = study_pay(study=study)

    [decision] = report.done
    assert decision.action == "reject", decision.reason
    assert "failed 2 of 2 attention checks" in decision.reason
    assert len(decision.message) >= PROLIFIC_MIN_MESSAGE
