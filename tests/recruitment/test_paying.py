"""Who is paid: decisions of ``pay`` over a provider kept in memory, each call exactly once.

The provider here is an in-memory crowd behind the real ledger (``call_once``);
the MTurk and Prolific wire formats are tested against their fakes in
test_mturk.py and test_prolific.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest

from apps.core.exceptions import ApplicationError
from apps.recruitment.ledger import Outcome, call_once
from apps.recruitment.models import ExternalCall, Publication, Submission
from apps.recruitment.providers.base import Cost, CrowdProvider, RemoteSubmission
from apps.recruitment.services import publication_publish, study_pay
from apps.studies.models import Response
from apps.studies.services import study_close
from tests.recruitment.helpers import MTURK, crowd_rater_finishes, published_study
from tests.studies.helpers import answer_one, join

pytestmark = pytest.mark.django_db(transaction=True)

LONG_REASON = (
    "You chose a different option than the one each attention question asked for, in two of "
    "the attention questions of this study."
)


class MemoryCrowd(CrowdProvider):
    """A crowd whose records the test writes; approvals, rejections and bonuses are counted."""

    name = "memory"
    awaiting_review = frozenset({"Submitted"})
    approved = frozenset({"Approved"})

    def __init__(self) -> None:
        self.records: list[RemoteSubmission] = []  # all of the first publication's
        self.publication_id: int | None = None
        self.sent: list[tuple[str, str]] = []

    def entry_url(self, publication: Publication) -> str:
        return "https://crowd.example/x"

    def plan(self, publication: Publication) -> list[str]:
        return ["one memory study"]

    def cost(self, publication: Publication) -> Cost:
        return Cost("USD", publication.places, publication.reward, Decimal("0"), Decimal("0"))

    def publish(self, publication: Publication) -> None:
        return None

    def remote_submissions(self, publication: Publication) -> Iterator[RemoteSubmission]:
        return iter(list(self.records) if publication.pk == self.publication_id else [])

    def _send(self, kind: str, submission: Submission, **request) -> None:
        def send(row):
            self.sent.append((kind, submission.external_id))
            return Outcome(submission.external_id)

        call_once(
            publication=submission.publication, kind=kind,
            key=f"{submission.publication.key_root}-{kind}{submission.pk}", request=request,
            send=send,
        )  # fmt: skip

    def approve(self, submission: Submission) -> None:
        self._send("approve", submission)

    def reject(self, submission: Submission, *, reason: str) -> None:
        self._send("reject", submission, reason=reason)

    def pay_bonus(self, submission: Submission, *, amount: Decimal, reason: str) -> None:
        self._send("bonus", submission, amount=str(amount))

    def close(self, publication: Publication) -> None:
        return None


@pytest.fixture
def crowd(monkeypatch) -> MemoryCrowd:
    fake = MemoryCrowd()
    for module in ("paying", "syncing", "publishing"):
        monkeypatch.setattr(f"apps.recruitment.services.{module}.provider_for", lambda p: fake)
    return fake


def _published(bonus: str = "0.00", **kwargs):
    study, publications = published_study(provider="mturk", bonus=bonus, **kwargs)
    for publication in publications:
        publication_publish(publication=publication)
    return study, publications[0]  # the pairwise experiment: the crowd's records are its


def _worker(n: int) -> str:
    return f"A{n:012d}"


def _finishes(publication: Publication, n: int, **kwargs):
    session = {"workerId": _worker(n), "assignmentId": f"ASG{n:09d}", "hitId": "HIT1"}
    return crowd_rater_finishes(
        publication.experiment, source=MTURK, worker_id=_worker(n), session=session, **kwargs
    )


def _submitted(crowd: MemoryCrowd, n: int, status: str = "Submitted") -> None:
    crowd.publication_id = Publication.objects.order_by("pk").first().pk
    crowd.records.append(RemoteSubmission(_worker(n), f"ASG{n:09d}", status, hit_id="HIT1"))


def test_completed_work_is_approved_and_bonused_once(crowd):
    study, publication = _published(bonus="0.50")
    _finishes(publication, 1)
    _submitted(crowd, 1)

    report = study_pay(study=study)
    again = study_pay(study=study)

    assert crowd.sent == [("approve", "ASG000000001"), ("bonus", "ASG000000001")]
    assert [d.action for d in report.done] == ["approve"] and again.decisions == []
    submission = Submission.objects.get()
    assert (submission.decision, submission.bonus_paid) == ("approved", Decimal("0.50"))
    assert ExternalCall.objects.filter(state="done").count() == 2


def test_a_dry_run_sends_nothing_and_decides_nothing(crowd):
    study, publication = _published()
    _finishes(publication, 1)
    _submitted(crowd, 1)

    report = study_pay(study=study, dry_run=True)

    assert [d.action for d in report.decisions] == ["approve"]
    assert crowd.sent == [] and Submission.objects.get().decision == ""


def test_unknown_workers_unfinished_work_and_second_submissions_are_held(crowd):
    study, publication = _published()
    _finishes(publication, 1)
    started = join(
        publication.experiment, source=MTURK, worker_id=_worker(2),
        session={"workerId": _worker(2), "assignmentId": "ASG000000002"},
    )  # fmt: skip
    answer_one(started)
    _submitted(crowd, 1)
    _submitted(crowd, 2)  # submitted with 1 of 5 answers and no code shown
    _submitted(crowd, 3)  # never joined
    crowd.records.append(RemoteSubmission(_worker(1), "ASG000000099", "Submitted"))  # 2nd HIT

    report = study_pay(study=study)

    actions = {d.submission.external_id: (d.action, d.reason) for d in report.decisions}
    assert actions["ASG000000001"] == ("approve", "")
    assert (
        actions["ASG000000002"][0] == "hold" and "no completion code" in actions["ASG000000002"][1]
    )
    assert actions["ASG000000003"] == ("hold", "no participation of this worker in the experiment")
    assert actions["ASG000000099"] == ("hold", "another submission of this participation is paid")
    assert crowd.sent == [("approve", "ASG000000001")]
    held = Submission.objects.get(external_id="ASG000000003")
    assert (held.decision, held.decision_reason) == ("", actions["ASG000000003"][1])


def test_work_cut_short_by_closing_the_study_is_approved_on_the_next_run(crowd):
    study, publication = _published()
    started = join(
        publication.experiment, source=MTURK, worker_id=_worker(2),
        session={"workerId": _worker(2), "assignmentId": "ASG000000002"},
    )  # fmt: skip
    answer_one(started)
    _submitted(crowd, 2)
    assert [d.action for d in study_pay(study=study).decisions] == ["hold"]

    study_close(study=study)

    assert [d.action for d in study_pay(study=study).done] == ["approve"]


def test_raters_excluded_for_speed_are_paid_and_their_data_left_out(crowd):
    """Through the real response CSV: a rule other than failed attention checks never
    rejects, even with a --reject-reason; the reason on the submission says why the data
    is excluded."""
    study, publication = _published()
    _finishes(publication, 1)
    Response.objects.filter(rater__external_id=_worker(1)).update(response_ms=50)  # too fast
    _submitted(crowd, 1)

    report = study_pay(study=study, reject_reason=LONG_REASON)

    assert [(d.action, d.reason) for d in report.done] == [
        ("approve", "paid; data excluded by quality rules (too_fast)")
    ]
    assert crowd.sent == [("approve", "ASG000000001")]
    submission = Submission.objects.get()
    assert submission.decision == "approved" and "too_fast" in submission.decision_reason


def test_work_the_provider_approved_by_itself_still_gets_its_bonus(crowd):
    study, publication = _published(bonus="0.25")
    _finishes(publication, 1)
    _submitted(crowd, 1, status="Approved")  # auto-approved after the delay

    report = study_pay(study=study)

    assert [d.action for d in report.done] == ["bonus"]
    assert crowd.sent == [("bonus", "ASG000000001")]
    assert study_pay(study=study).decisions == []


def test_a_reject_reason_the_provider_would_refuse_stops_pay_before_any_call(crowd, monkeypatch):
    study, publication = _published()
    _finishes(publication, 1)
    _submitted(crowd, 1)
    monkeypatch.setattr(
        MemoryCrowd, "reject_reason_problem", lambda self, reason: "needs 100 characters"
    )

    with pytest.raises(ApplicationError, match="needs 100 characters"):
        study_pay(study=study, reject_reason="short")
    assert crowd.sent == []


@pytest.mark.postgres
def test_a_second_pay_of_the_same_study_waits_its_turn(crowd):
    """Two pay runs at once could both send a pending call: the second is refused."""
    import psycopg
    from django.db import connection

    from apps.core.exceptions import ConflictError
    from apps.recruitment.services.locks import _NAMESPACE

    study, publication = _published()
    _finishes(publication, 1)
    _submitted(crowd, 1)
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    other = psycopg.connect(**{k: v for k, v in params.items() if k != "prepare_threshold"})
    try:
        other.execute("SELECT pg_advisory_lock(%s, %s)", [_NAMESPACE, study.pk])
        with pytest.raises(ConflictError, match="Another publish, sync or pay"):
            study_pay(study=study)
        assert crowd.sent == []
        other.execute("SELECT pg_advisory_unlock(%s, %s)", [_NAMESPACE, study.pk])
        assert [d.action for d in study_pay(study=study).done] == ["approve"]
    finally:
        other.close()
