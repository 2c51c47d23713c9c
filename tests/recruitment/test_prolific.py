"""The Prolific provider against a loopback fake of its API (``fake_prolific``).

Publishing and paying go through the ledger, which refuses to run inside a
transaction: those tests use ``transaction=True``.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from apps.core.exceptions import ApplicationError
from apps.recruitment.models import ExternalCall, Publication, Submission
from apps.recruitment.providers import provider_for
from apps.recruitment.providers.base import ProviderError, entry_path
from apps.recruitment.providers.prolific_client import ProlificClient
from apps.recruitment.services import publication_close, publication_publish, study_pay
from tests.recruitment.fake_prolific import FakeProlific, new_id
from tests.recruitment.helpers import PROLIFIC, crowd_rater_finishes, published_study
from tests.studies.helpers import answer, join, next_task

PLACEHOLDERS = (
    "?PROLIFIC_PID={{%PROLIFIC_PID%}}&STUDY_ID={{%STUDY_ID%}}&SESSION_ID={{%SESSION_ID%}}"
)
REASON = (
    "Your answers came faster than anyone can look at two heat-maps and compare them "
    "(well under a second each), so we cannot use them."
)

transactional = pytest.mark.django_db(transaction=True)


@pytest.fixture
def fake(settings):
    server = FakeProlific().start()
    settings.PROLIFIC_API_URL = server.url
    settings.PROVIDER_TIMEOUT_SECONDS = 1
    yield server
    server.stop()


def _published(fake: FakeProlific, **kwargs) -> tuple:
    study, publications = published_study(provider="prolific", **kwargs)
    return study, publication_publish(publication=publications[0])


def _participant(fake: FakeProlific, publication: Publication, **kwargs):
    """A participant with a submission on the fake, who joined through the study URL."""
    worker = new_id()
    submission_id = fake.add_submission(publication.external_id, worker, **kwargs)
    session = {"PROLIFIC_PID": worker, "STUDY_ID": publication.external_id}
    return worker, submission_id, {**session, "SESSION_ID": submission_id}


def _posts(fake: FakeProlific) -> list[tuple[str, object]]:
    return [(r.path, r.body) for r in fake.calls("POST")]


# --- the study -----------------------------------------------------------------------


@pytest.mark.django_db
def test_entry_url_carries_literal_placeholders():
    _, [publication, _] = published_study(provider="prolific")
    url = provider_for(publication).entry_url(publication)
    assert url == "https://study.example.org" + entry_path(publication) + PLACEHOLDERS


@pytest.mark.django_db
def test_check_names_what_is_missing(settings):
    _, [publication, _] = published_study(provider="prolific")
    provider = provider_for(publication)
    provider.check(publication)
    settings.PROLIFIC_API_TOKEN = ""
    with pytest.raises(ProviderError, match="PROLIFIC_API_TOKEN"):
        provider.check(publication)
    settings.PROLIFIC_API_TOKEN = "t"
    settings.PUBLIC_BASE_URL = "http://study.example.org"
    with pytest.raises(ProviderError, match="PUBLIC_BASE_URL"):
        provider.check(publication)
    settings.PUBLIC_BASE_URL = "https://study.example.org"
    publication.reward = Decimal("0.00")
    with pytest.raises(ProviderError, match="reward"):
        provider.check(publication)


@pytest.mark.django_db
def test_cost_and_plan(settings):
    settings.PROLIFIC_FEE_PERCENT = 33
    _, [publication, _] = published_study(provider="prolific", reward="1.25")
    publication.places = 10
    cost = provider_for(publication).cost(publication)
    assert (cost.currency, cost.rewards, cost.fees) == ("GBP", Decimal("12.50"), Decimal("4.13"))
    assert "VAT" in " ".join(cost.notes)
    publication.options = {"currency": "USD"}
    assert provider_for(publication).cost(publication).currency == "USD"
    plan = "\n".join(provider_for(publication).plan(publication))
    assert "10 places, reward 1.25 USD (125 in the smallest unit)" in plan
    assert PLACEHOLDERS in plan
    assert publication.completion_code in plan and publication.no_tasks_code in plan
    assert publication.no_consent_code in plan
    assert "published at once" in plan and "blocklist" not in plan


@transactional
def test_publish_sends_the_draft_then_publishes_once(fake):
    _, publications = published_study(provider="prolific", reward="1.50")
    publication = publication_publish(publication=publications[0])
    key = f"{publication.key_root}-study"
    [create] = fake.calls("POST", r"^/studies/$")
    assert create.auth == "Token test-token"
    assert create.body == {
        "name": publication.title,
        "internal_name": key,
        "description": publication.description,
        "external_study_url": "https://study.example.org" + entry_path(publication) + PLACEHOLDERS,
        "prolific_id_option": "url_parameters",
        "completion_codes": [
            {
                "code": publication.completion_code,
                "code_type": "COMPLETED",
                "actions": [{"action": "MANUALLY_REVIEW"}],
            },
            {
                "code": publication.no_tasks_code,
                "code_type": "OTHER",
                "actions": [{"action": "MANUALLY_REVIEW"}],
            },
            {
                "code": publication.no_consent_code,
                "code_type": "NO_CONSENT",
                "actions": [{"action": "MANUALLY_REVIEW"}],
            },
        ],
        "total_available_places": publication.places,
        "estimated_completion_time": publication.estimated_minutes,
        "reward": 150,
        "device_compatibility": ["desktop"],
        "filters": [],
    }
    study_id = publication.external_id
    assert fake.studies[study_id]["internal_name"] == key
    assert _posts(fake)[1:] == [(f"/studies/{study_id}/transition/", {"action": "PUBLISH"})]
    assert fake.studies[study_id]["status"] == "ACTIVE"
    assert publication.status == Publication.Status.PUBLISHED

    publication_publish(publication=publication)  # again: everything is in the ledger
    assert len(fake.calls("POST")) == 2


@transactional
def test_a_study_created_before_a_crash_is_found_not_created_again(fake):
    for n in range(3):  # someone else's studies, so the lookup pages through the list
        fake.add_study(internal_name=f"other-{n}")
    _, [publication, _] = published_study(provider="prolific")
    fake.fault("POST", r"^/studies/$", "drop")  # Prolific creates it; the answer is lost
    with pytest.raises(ProviderError, match="POST /api/v1/studies/"):
        publication_publish(publication=publication)
    row = ExternalCall.objects.get(kind="create_study")
    assert (row.state, row.attempts, row.external_id) == ("pending", 1, "")

    publication = publication_publish(publication=publication)
    ours = [s for s in fake.studies.values() if s["internal_name"] == row.key]
    assert len(ours) == 1 and len(fake.calls("POST", r"^/studies/$")) == 1
    assert publication.external_id == ours[0]["id"]
    assert ours[0]["status"] == "ACTIVE"
    assert any(r.query.get("page") == ["2"] for r in fake.calls("GET", r"^/studies/$"))


@transactional
def test_blocklist_of_earlier_prolific_studies_and_option_filters(fake):
    old, old_publications = published_study(provider="prolific", slug="old")
    earlier = new_id()
    Publication.objects.filter(pk=old_publications[0].pk).update(
        external_id=earlier, status=Publication.Status.CLOSED
    )  # the other experiment of the old study never reached Prolific: nothing to block
    extra = {"filter_id": "approval_rate", "selected_range": {"lower": 95}}
    new, [publication, _] = published_study(
        provider="prolific", slug="new", options={"filters": [extra]}
    )
    new.exclude_raters_of.add(old)
    assert f"blocklist: participants of Prolific studies {earlier}" in provider_for(
        publication
    ).plan(publication)
    publication_publish(publication=publication)
    [create] = fake.calls("POST", r"^/studies/$")
    assert create.body["filters"] == [
        {"filter_id": "previous_studies", "selected_values": [earlier]},
        extra,
    ]


@transactional
def test_close_stops_the_study_once(fake):
    _, publication = _published(fake)
    publication_close(publication=publication)
    assert fake.studies[publication.external_id]["status"] == "AWAITING REVIEW"
    assert _posts(fake)[-1] == (
        f"/studies/{publication.external_id}/transition/",
        {"action": "STOP"},
    )
    assert ExternalCall.objects.get(kind="stop_study").state == "done"


# --- review and pay ---------------------------------------------------------------


@transactional
def test_pay_approves_and_bonuses_exactly_once_and_holds_strangers(fake):
    study, publication = _published(fake, bonus="0.50")
    worker, submission_id, session = _participant(fake, publication)
    crowd_rater_finishes(publication.experiment, source=PROLIFIC, worker_id=worker, session=session)
    stranger = fake.add_submission(publication.external_id, new_id())
    before = len(fake.calls("POST"))

    report = study_pay(study=study)
    assert report.errors == []
    study_id = publication.external_id
    assert _posts(fake)[before:] == [
        (f"/submissions/{submission_id}/transition/", {"action": "APPROVE"}),
        ("/submissions/bonus-payments/", {"study_id": study_id, "csv_bonuses": f"{worker},0.50"}),
        (f"/bulk-bonus-payments/{next(iter(fake.bonuses))}/pay/", {}),
    ]
    assert fake.submissions[submission_id]["status"] == "APPROVED"
    assert fake.submissions[submission_id]["bonus_payments"] == [50]
    assert fake.submissions[stranger]["status"] == "AWAITING REVIEW"
    held = Submission.objects.get(external_id=stranger)
    assert held.decision == "" and "no participation" in held.decision_reason
    paid = Submission.objects.get(external_id=submission_id)
    assert (paid.decision, paid.bonus_paid) == ("approved", Decimal("0.50"))

    posts = len(fake.calls("POST"))
    assert study_pay(study=study).errors == []
    assert len(fake.calls("POST")) == posts


@transactional
def test_a_bonus_paid_before_a_crash_is_not_paid_again(fake):
    study, publication = _published(fake, bonus="0.50")
    worker, submission_id, session = _participant(fake, publication)
    crowd_rater_finishes(publication.experiment, source=PROLIFIC, worker_id=worker, session=session)
    fake.fault("POST", r"/pay/$", "drop")  # Prolific pays; the answer is lost

    [error] = study_pay(study=study).errors
    assert "pay/" in error
    row = ExternalCall.objects.get(kind="bonus_pay")
    assert (row.state, row.attempts) == ("pending", 1)

    assert study_pay(study=study).errors == []
    assert len(fake.calls("POST", r"/pay/$")) == 1
    assert fake.submissions[submission_id]["bonus_payments"] == [50]
    assert ExternalCall.objects.get(kind="bonus_pay").state == "done"
    assert Submission.objects.get(external_id=submission_id).bonus_paid == Decimal("0.50")


@transactional
def test_an_unknown_pay_without_trace_is_not_resent_but_a_rate_limited_one_is(fake):
    study, publication = _published(fake, bonus="0.50")
    worker, submission_id, session = _participant(fake, publication)
    crowd_rater_finishes(publication.experiment, source=PROLIFIC, worker_id=worker, session=session)
    fake.fault("POST", r"/pay/$", 502)  # no answer that says whether it was paid
    assert "HTTP 502" in study_pay(study=study).errors[0]
    [error] = study_pay(study=study).errors
    assert "may have been paid already" in error and "not sent again" in error
    assert len(fake.calls("POST", r"/pay/$")) == 1

    fake.submissions[submission_id]["bonus_payments"].append(50)  # paid in Prolific's app
    assert study_pay(study=study).errors == []
    assert len(fake.calls("POST", r"/pay/$")) == 1

    # A 429 is known not to have paid: the next run pays.
    study2, publication2 = _published(fake, bonus="0.50", slug="rec2")
    worker2, submission2, session2 = _participant(fake, publication2)
    crowd_rater_finishes(
        publication2.experiment, source=PROLIFIC, worker_id=worker2, session=session2
    )
    fake.fault("POST", r"/pay/$", 429)
    assert "HTTP 429" in study_pay(study=study2).errors[0]
    assert study_pay(study=study2).errors == []
    assert fake.submissions[submission2]["bonus_payments"] == [50]


@transactional
def test_reject_needs_a_long_enough_reason_then_sends_message_and_category(fake):
    from tests.recruitment.test_pay_policy import fail_attention_checks

    study, publication = _published(fake)  # 10 minutes: two failed attention checks reject
    worker, submission_id, session = _participant(fake, publication)
    participation = join(publication.experiment, source=PROLIFIC, worker_id=worker, session=session)
    while (assignment := next_task(participation)) is not None:
        answer(participation, assignment)
    fail_attention_checks(participation, 2)

    with pytest.raises(ApplicationError, match=r"at least 100 characters \(this one has 9\)"):
        study_pay(study=study, reject_reason="Too fast.")
    assert fake.calls("POST", r"^/submissions/") == []

    report = study_pay(study=study, reject_reason=REASON)
    assert report.errors == [] and [d.action for d in report.done] == ["reject"]
    assert fake.calls("POST", r"^/submissions/")[-1].body == {
        "action": "REJECT",
        "message": REASON,
        "rejection_category": "OTHER",
    }
    assert fake.submissions[submission_id]["status"] == "REJECTED"
    assert Submission.objects.get(external_id=submission_id).decision == "rejected"


# --- failures ------------------------------------------------------------------------


@transactional
def test_5xx_and_429_leave_the_call_pending_and_the_next_run_finishes(fake):
    _, [publication, _] = published_study(provider="prolific")
    fake.fault("POST", r"^/studies/$", 503)
    with pytest.raises(ProviderError, match=r"POST /api/v1/studies/: HTTP 503: injected fault"):
        publication_publish(publication=publication)
    assert ExternalCall.objects.get(kind="create_study").state == "pending"
    assert fake.studies == {}

    fake.fault("POST", r"/transition/$", 429)
    with pytest.raises(ProviderError, match="HTTP 429"):
        publication_publish(publication=publication)
    assert ExternalCall.objects.get(kind="publish_study").state == "pending"

    publication = publication_publish(publication=publication)
    [study] = fake.studies.values()
    assert study["status"] == "ACTIVE" and publication.external_id == study["id"]


@transactional
def test_a_refusal_fails_the_call_and_a_timeout_leaves_it_pending(fake):
    _, [publication, _] = published_study(provider="prolific")
    fake.fault("POST", r"^/studies/$", 400)
    with pytest.raises(ProviderError, match=r"refused create_study .*HTTP 400: injected fault"):
        publication_publish(publication=publication)
    assert ExternalCall.objects.get(kind="create_study").state == "failed"
    publication = publication_publish(publication=publication)  # a failed call is sent again
    assert len(fake.studies) == 1

    worker, submission_id, session = _participant(fake, publication)
    crowd_rater_finishes(publication.experiment, source=PROLIFIC, worker_id=worker, session=session)
    fake.fault("POST", r"^/submissions/\w+/transition/$", "timeout")
    [error] = study_pay(study=publication.study).errors
    assert f"POST /api/v1/submissions/{submission_id}/transition/: no answer within 1 s" in error
    row = ExternalCall.objects.get(kind="approve")
    assert (row.state, row.attempts) == ("pending", 1)


def test_pagination_links_to_another_host_are_not_followed():
    client = ProlificClient(base_url="https://api.prolific.com/api/v1", token="t", timeout=1)
    assert client._url("/studies/") == "https://api.prolific.com/api/v1/studies/"
    assert (
        client._url("/api/v1/studies/?page=2") == "https://api.prolific.com/api/v1/studies/?page=2"
    )
    with pytest.raises(ProviderError, match="another host"):
        client._url("https://evil.example/api/v1/studies/?page=2")
