"""MTurk provider: exact requests (botocore Stubber) and exactly-once calls (a loopback fake).

The fake (``fake_mturk``) speaks MTurk's JSON protocol to boto3's real client,
so botocore's own retries, timeouts and error parsing are exercised; faults
make MTurk act and then lose the answer, and a crash between a call and our
commit is simulated by making the ledger's final write fail once.
"""

from __future__ import annotations

from decimal import Decimal

import boto3
import pytest
from botocore.stub import Stubber

from apps.recruitment import ledger
from apps.recruitment.models import ExternalCall, Publication, Submission
from apps.recruitment.providers import provider_for
from apps.recruitment.providers.base import ProviderError
from apps.recruitment.providers.mturk import MTurkProvider
from apps.recruitment.providers.mturk_spec import QUESTION_NS, hit_spec
from apps.recruitment.services import (
    publication_close,
    publication_publish,
    publication_sync,
    study_pay,
)
from tests.recruitment.fake_mturk import HIT_EXISTS, FakeMTurk
from tests.recruitment.helpers import MTURK, crowd_rater_finishes, published_study

WORKER = "A1B2C3D4E5"
transactional = pytest.mark.django_db(transaction=True)


class Crash(Exception):
    """The process dies after the provider acted and before our commit."""


@pytest.fixture
def fake(settings):
    server = FakeMTurk()
    settings.MTURK_ENDPOINT_URL = server.start()
    settings.PROVIDER_TIMEOUT_SECONDS = 1
    yield server
    server.stop()


@pytest.fixture
def crash_once(monkeypatch):
    """``crash_once("bonus")``: the next ledger call of that kind dies before it is marked done."""

    def arm(kind: str) -> None:
        real = ledger._finish

        def finish(row, outcome):
            if row.kind == kind:
                monkeypatch.setattr(ledger, "_finish", real)
                raise Crash(kind)
            return real(row, outcome)

        monkeypatch.setattr(ledger, "_finish", finish)

    return arm


def _publication(places: int = 13, **kwargs) -> Publication:
    _, publications = published_study(**kwargs)
    publication = publications[0]
    publication.places = places
    publication.save(update_fields=["places"])
    return publication


def _calls(publication: Publication) -> list[tuple[str, str, str, str]]:
    rows = ExternalCall.objects.filter(publication=publication).order_by("pk")
    return [
        (r.kind, r.key.removeprefix(publication.key_root), r.state, r.external_id) for r in rows
    ]


def _hit_ids(publication: Publication) -> list[str]:
    rows = ExternalCall.objects.filter(publication=publication, kind="create_hit").order_by("pk")
    return [row.external_id for row in rows]


# --- exact requests ----------------------------------------------------------------------


@transactional
def test_publish_sends_exactly_these_parameters_and_nothing_the_second_time():
    publication = _publication(options={"locales": ["US", "GB"], "min_approved_hits": 500})
    root = publication.key_root
    provider = MTurkProvider(sandbox=False)
    client = boto3.client(
        "mturk",
        region_name="us-east-1",
        endpoint_url="https://mturk.invalid",
        aws_access_key_id="x",
        aws_secret_access_key="y",
    )
    provider.client = client
    url = f"https://study.example.org/r/{publication.experiment.code}/"
    question = (
        '<ExternalQuestion xmlns="http://mechanicalturk.amazonaws.com/'
        'AWSMechanicalTurkDataSchemas/2006-07-14/ExternalQuestion.xsd">'
        f"<ExternalURL>{url}</ExternalURL><FrameHeight>0</FrameHeight></ExternalQuestion>"
    )
    guarded = {"ActionsGuarded": "DiscoverPreviewAndAccept"}
    with Stubber(client) as stub:
        stub.add_response(
            "create_hit_type",
            {"HITTypeId": "3TYPE"},
            {
                "Title": publication.title,
                "Description": publication.description,
                "Reward": "1.50",
                "AssignmentDurationInSeconds": 1800,
                "AutoApprovalDelayInSeconds": 3 * 86400,
                "Keywords": "image, classification, research, survey",
                "QualificationRequirements": [
                    {
                        "QualificationTypeId": "000000000000000000L0",
                        "Comparator": "GreaterThan",
                        "IntegerValues": [90],
                        **guarded,
                    },
                    {
                        "QualificationTypeId": "00000000000000000040",
                        "Comparator": "GreaterThanOrEqualTo",
                        "IntegerValues": [500],
                        **guarded,
                    },
                    {
                        "QualificationTypeId": "00000000000000000071",
                        "Comparator": "In",
                        "LocaleValues": [{"Country": "US"}, {"Country": "GB"}],
                        **guarded,
                    },
                ],
            },
        )
        for n, size in ((1, 9), (2, 4)):
            hit = {
                "HITId": f"3HIT{n}",
                "HITTypeId": "3TYPE",
                "HITGroupId": "3G",
                "MaxAssignments": size,
            }
            stub.add_response(
                "create_hit_with_hit_type",
                {"HIT": hit},
                {
                    "HITTypeId": "3TYPE",
                    "LifetimeInSeconds": 72 * 3600,
                    "MaxAssignments": size,
                    "Question": question,
                    "RequesterAnnotation": f"{root}-hit{n}",
                    "UniqueRequestToken": f"{root}-hit{n}",
                },
            )
        provider.publish(publication)
        stub.assert_no_pending_responses()
    publication.refresh_from_db()
    assert publication.external_id == "3TYPE"
    assert _calls(publication) == [
        ("create_hit_type", "-type", "done", "3TYPE"),
        ("create_hit", "-hit1", "done", "3HIT1"),
        ("create_hit", "-hit2", "done", "3HIT2"),
    ]
    row = ExternalCall.objects.get(key=f"{root}-hit2")
    assert row.result == {
        "HITId": "3HIT2",
        "HITGroupId": "3G",
        "HITTypeId": "3TYPE",
        "MaxAssignments": 4,
    }
    assert all(len(key) <= 64 for key in ExternalCall.objects.values_list("key", flat=True))
    with Stubber(client):  # nothing queued: any call would raise
        provider.publish(publication)
    assert ExternalCall.objects.filter(publication=publication).count() == 3


@transactional
def test_a_refused_hit_is_marked_failed_and_may_be_asked_again():
    publication = _publication(places=3)
    provider = MTurkProvider(sandbox=False)
    client = boto3.client(
        "mturk", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y"
    )
    provider.client = client
    with Stubber(client) as stub:
        stub.add_response("create_hit_type", {"HITTypeId": "3TYPE"})
        stub.add_client_error(
            "create_hit_with_hit_type",
            service_error_code="RequestError",
            service_message="Insufficient funds.",
            http_status_code=400,
            modeled_fields={"TurkErrorCode": "AWS.MechanicalTurk.InsufficientFunds"},
        )
        with pytest.raises(ProviderError, match="InsufficientFunds: Insufficient funds"):
            provider.publish(publication)
    row = ExternalCall.objects.get(key=f"{publication.key_root}-hit1")
    assert row.state == "failed"
    assert row.error == "AWS.MechanicalTurk.InsufficientFunds: Insufficient funds."

    # Nothing was made: the HIT may be asked for again, with other parameters.
    publication.places = 2
    with Stubber(client) as stub:
        stub.add_response("create_hit_with_hit_type", {"HIT": {"HITId": "3HIT1"}})
        provider.publish(publication)
    row.refresh_from_db()
    assert (row.state, row.attempts, row.request["MaxAssignments"]) == ("done", 2, 2)
    # The HIT type was made with the old reward: a new one is not sent under its key.
    publication.reward = Decimal("2.00")
    with Stubber(client), pytest.raises(ProviderError, match="other parameters"):
        provider.publish(publication)


@pytest.mark.django_db
def test_question_escapes_the_url_and_masters_depends_on_the_sandbox():
    publication = _publication(options={"masters": True, "frame_height": 800})
    spec = hit_spec(publication, sandbox=True)
    assert spec.question("https://e.org/j?a=1&b=2") == (
        f'<ExternalQuestion xmlns="{QUESTION_NS}"><ExternalURL>https://e.org/j?a=1&amp;b=2'
        "</ExternalURL><FrameHeight>800</FrameHeight></ExternalQuestion>"
    )
    assert spec.qualifications[-1] == {
        "QualificationTypeId": "2ARFPLSP75KLA8M8DH1HTEQVJT3SY6",
        "Comparator": "Exists",
        "ActionsGuarded": "DiscoverPreviewAndAccept",
    }
    production = hit_spec(publication, sandbox=False).qualifications[-1]
    assert production["QualificationTypeId"] == "2F1QJWKUDD8XADTFD2Q0G6UTO95ALH"


# --- plan, cost, check -------------------------------------------------------------------


@pytest.mark.django_db
def test_plan_and_cost():
    publication = _publication(places=13)
    provider = MTurkProvider(sandbox=False)
    plan = provider.plan(publication)
    assert "2 HITs: 1 × 9 assignments + 1 × 4, open 72 h" in plan
    assert any("reward USD 1.50" in line and "approval rate above 90 %" in line for line in plan)
    assert any(line.startswith("ExternalQuestion https://study.example.org/r/") for line in plan)
    cost = provider.cost(publication)
    assert (cost.currency, cost.rewards, cost.fees) == ("USD", Decimal("19.50"), Decimal("3.90"))
    assert any("bonuses carry MTurk's 20 % fee too" in note for note in cost.notes)

    publication.places = 29
    publication.options = {"max_assignments_per_hit": 10}
    assert "3 HITs: 2 × 10 assignments + 1 × 9, open 72 h" in provider.plan(publication)
    cost = provider.cost(publication)
    # 29 x 0.30 commission + 20 x 0.30 for the assignments in HITs of 10 or more
    assert cost.fees == Decimal("14.70")
    assert any("20 assignments in HITs of 10 or more" in note for note in cost.notes)

    publication.reward = Decimal("0.02")
    assert provider.cost(publication).fees == Decimal("0.29")  # the 0.01 minimum per assignment
    sandbox = MTurkProvider(sandbox=True)
    assert "sandbox: nothing is paid" in sandbox.cost(publication).notes
    assert sandbox.plan(publication)[0].startswith("MTurk sandbox")


@pytest.mark.django_db
def test_check_wants_https_and_names_a_bad_option(settings):
    publication = _publication()
    provider = MTurkProvider(sandbox=False)
    provider.check(publication)
    settings.PUBLIC_BASE_URL = "http://study.example.org"
    with pytest.raises(ProviderError, match="PUBLIC_BASE_URL"):
        provider.check(publication)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"min_approval_rate": "90"}, "min_approval_rate"),
        ({"min_approval_rate": 101}, "min_approval_rate"),
        ({"min_approved_hits": -1}, "min_approved_hits"),
        ({"locales": "US"}, "locales"),
        ({"locales": ["usa"]}, "locales"),
        ({"masters": "yes"}, "masters"),
        ({"lifetime_hours": 0}, "lifetime_hours"),
        ({"assignment_duration_minutes": 1.5}, "assignment_duration_minutes"),
        ({"auto_approval_days": 31}, "auto_approval_days"),
        ({"max_assignments_per_hit": 0}, "max_assignments_per_hit"),
        ({"keywords": 5}, "keywords"),
        ({"frame_height": True}, "frame_height"),
        ({"qualifications": []}, "qualifications"),
    ],
)
def test_check_names_the_bad_option(options, named):
    publication = _publication()
    publication.options = options
    with pytest.raises(ProviderError, match=named):
        MTurkProvider(sandbox=False).check(publication)


@pytest.mark.django_db
def test_check_wants_a_reward():
    publication = _publication()
    publication.reward = Decimal("0.00")
    with pytest.raises(ProviderError, match="reward"):
        MTurkProvider(sandbox=False).check(publication)


def test_reject_reason_problem():
    provider = MTurkProvider(sandbox=False)
    assert provider.reject_reason_problem("  ")
    assert "1024" in provider.reject_reason_problem("x" * 1025)
    assert provider.reject_reason_problem("You answered every question the same way.") is None


# --- exactly once, through the fake ------------------------------------------------------


@transactional
@pytest.mark.parametrize("fault", ["drop", "sleep"])
def test_botocore_retries_after_mturk_acted_make_one_hit(fake, fault):
    publication = _publication(places=13)
    fake.faults["CreateHITWithHITType"] = [fault]
    publication_publish(publication=publication)
    # The first HIT's answer was lost; botocore resent it with the same token and
    # MTurk answered HitAlreadyExists, naming the HIT.
    assert fake.count("CreateHITWithHITType") == 3
    assert len(fake.hits) == 2
    annotations = sorted(hit["RequesterAnnotation"] for hit in fake.hits.values())
    assert annotations == [f"{publication.key_root}-hit1", f"{publication.key_root}-hit2"]
    assert _calls(publication)[1:] == [
        ("create_hit", "-hit1", "done", fake.tokens[f"{publication.key_root}-hit1"]),
        ("create_hit", "-hit2", "done", fake.tokens[f"{publication.key_root}-hit2"]),
    ]
    assert [fake.hits[h]["MaxAssignments"] for h in _hit_ids(publication)] == [9, 4]
    publication.refresh_from_db()
    assert publication.status == "published"
    assert publication.external_id in fake.hit_types
    sent = len(fake.calls)
    publication_publish(publication=publication)
    assert len(fake.calls) == sent


@transactional
def test_when_every_retry_is_lost_the_next_run_finds_the_hit(fake):
    publication = _publication(places=13)
    fake.faults["CreateHITWithHITType"] = ["drop", "drop", "drop"]
    with pytest.raises(ProviderError, match="did not answer create_hit_with_hit_type"):
        publication_publish(publication=publication)
    row = ExternalCall.objects.get(key=f"{publication.key_root}-hit1")
    assert (row.state, row.attempts) == ("pending", 1)
    assert len(fake.hits) == 1
    publication.refresh_from_db()
    assert publication.status == "draft"

    publication_publish(publication=publication)
    assert fake.count("ListHITs") >= 1
    assert fake.count("CreateHITWithHITType") == 4  # three lost attempts, then HIT 2 only
    assert len(fake.hits) == 2
    assert sorted(_hit_ids(publication)) == sorted(fake.hits)


@transactional
def test_a_crash_after_mturk_made_the_hit_is_reconciled_by_annotation(fake, crash_once):
    publication = _publication(places=13)
    fake.page_limit = 1  # ListHITs needs its paginator
    crash_once("create_hit")
    with pytest.raises(Crash):
        publication_publish(publication=publication)
    row = ExternalCall.objects.get(key=f"{publication.key_root}-hit1")
    assert (row.state, row.attempts) == ("pending", 1)
    (made,) = fake.hits
    assert fake.hits[made]["RequesterAnnotation"] == row.key
    fake.tokens.clear()  # tokens expire after 24 h: only the reconciliation protects us now

    publication_publish(publication=publication)
    row.refresh_from_db()
    assert (row.state, row.external_id) == ("done", made)
    assert fake.count("CreateHITWithHITType") == 2  # HIT 1 once, then HIT 2
    assert len(fake.hits) == 2


def _paid_study(fake, *, others: int = 4):
    study, publications = published_study(bonus="0.50")
    publication = publication_publish(publication=publications[0])
    hit_id = _hit_ids(publication)[0]
    assignment = "3ASSIGNMENTXYZ"
    crowd_rater_finishes(
        publication.experiment,
        source=MTURK,
        worker_id=WORKER,
        session={"workerId": WORKER, "assignmentId": assignment, "hitId": hit_id},
    )
    fake.add_assignment(hit_id, WORKER, assignment_id=assignment)
    for n in range(others):  # nobody of ours: listed, never approved
        fake.add_assignment(hit_id, f"AOTHER{n}")
    return study, publication, assignment


@transactional
def test_sync_pages_through_assignments(fake):
    _, publication, assignment = _paid_study(fake)
    report = publication_sync(publication=publication)
    assert (report.seen, report.new, len(report.unmatched)) == (5, 5, 4)
    hit_id = _hit_ids(publication)[0]
    pages = [p for op, p in fake.calls if op == "ListAssignmentsForHIT" and p["HITId"] == hit_id]
    assert [p.get("NextToken") for p in pages] == [None, "2", "4"]  # pages of two
    mine = Submission.objects.get(external_id=assignment)
    assert (mine.worker_id, mine.provider_status, mine.participation_id is not None) == (
        WORKER,
        "Submitted",
        True,
    )
    assert mine.hit_id == _hit_ids(publication)[0]


@transactional
def test_pay_approves_and_bonuses_once_whatever_botocore_retries(fake):
    study, publication, assignment = _paid_study(fake)
    fake.faults["ApproveAssignment"] = ["drop"]  # approved, answer lost: the retry is refused
    fake.faults["SendBonus"] = ["drop"]  # paid, answer lost: the retry's token is a replay
    report = study_pay(study=study, dry_run=False)
    assert report.errors == []
    assert [d.action for d in report.done] == ["approve"]
    assert fake.assignments[assignment]["AssignmentStatus"] == "Approved"
    assert fake.count("ApproveAssignment") == 2
    assert fake.count("SendBonus") == 2
    assert [(b["WorkerId"], b["BonusAmount"], b["AssignmentId"]) for b in fake.bonuses] == [
        (WORKER, "0.50", assignment)
    ]
    submission = Submission.objects.get(external_id=assignment)
    assert (submission.decision, submission.bonus_paid) == ("approved", Decimal("0.50"))
    assert ExternalCall.objects.get(key=f"{publication.key_root}-bonus{submission.pk}").state == (
        "done"
    )

    sent = [op for op, _ in fake.calls if op not in ("ListAssignmentsForHIT",)]
    report = study_pay(study=study, dry_run=False)
    assert report.done == []
    assert [op for op, _ in fake.calls if op not in ("ListAssignmentsForHIT",)] == sent
    assert len(fake.bonuses) == 1


@transactional
def test_a_crash_between_the_bonus_and_our_commit_pays_no_second_bonus(fake, crash_once):
    study, publication, assignment = _paid_study(fake, others=0)
    crash_once("bonus")
    with pytest.raises(Crash):
        study_pay(study=study, dry_run=False)
    submission = Submission.objects.get(external_id=assignment)
    row = ExternalCall.objects.get(key=f"{publication.key_root}-bonus{submission.pk}")
    assert (row.state, row.attempts, submission.bonus_paid) == ("pending", 1, Decimal("0.00"))
    assert len(fake.bonuses) == 1
    fake.tokens.clear()  # the token has expired: only the reconciliation protects us now

    report = study_pay(study=study, dry_run=False)
    assert report.errors == []
    assert [d.action for d in report.done] == ["bonus"]
    assert fake.count("SendBonus") == 1
    assert fake.count("ListBonusPayments") >= 1
    assert len(fake.bonuses) == 1
    submission.refresh_from_db()
    assert submission.bonus_paid == Decimal("0.50")
    row.refresh_from_db()
    assert row.state == "done"


@transactional
def test_reject_sends_the_reason_once(fake):
    _, publication, assignment = _paid_study(fake, others=0)
    publication_sync(publication=publication)
    submission = Submission.objects.get(external_id=assignment)
    provider = provider_for(publication)
    with pytest.raises(ProviderError, match="stated reason"):
        provider.reject(submission, reason=" ")
    provider.reject(submission, reason="Every answer was the same.")
    provider.reject(submission, reason="Every answer was the same.")
    assert fake.count("RejectAssignment") == 1
    assert fake.assignments[assignment]["AssignmentStatus"] == "Rejected"
    assert fake.assignments[assignment]["RequesterFeedback"] == "Every answer was the same."


@transactional
def test_close_expires_every_hit_once(fake, crash_once):
    publication = publication_publish(publication=_publication(places=13))
    crash_once("expire_hit")  # the first expiry is made and then forgotten by us
    with pytest.raises(Crash):
        publication_close(publication=publication)
    publication.refresh_from_db()
    assert publication.status == "published"

    publication_close(publication=publication)  # the replay is "already processed": success
    assert fake.count("UpdateExpirationForHIT") == 3
    assert len(fake.expired) == 2
    assert {hit["HITStatus"] for hit in fake.hits.values()} == {"Unassignable"}
    rows = ExternalCall.objects.filter(publication=publication, kind="expire_hit")
    assert sorted(r.key.removeprefix(publication.key_root) for r in rows) == ["-exp1", "-exp2"]
    assert {r.state for r in rows} == {"done"}
    publication.refresh_from_db()
    assert publication.status == "closed"

    provider_for(publication).close(publication)  # every row done: nothing is sent
    assert fake.count("UpdateExpirationForHIT") == 3


@transactional
def test_block_worker_and_balance(fake):
    publication = _publication()
    provider = MTurkProvider(sandbox=False)
    assert provider.balance() == Decimal("10000.00")
    provider.block_worker(publication, WORKER, "Automated answers.")
    provider.block_worker(publication, WORKER, "Automated answers.")
    assert fake.blocks == [{"WorkerId": WORKER, "Reason": "Automated answers."}]


def test_fake_names_the_hit_on_a_replayed_token():
    fake = FakeMTurk()
    type_id = fake._op_CreateHITType({"Title": "t"})["HITTypeId"]
    params = {"HITTypeId": type_id, "LifetimeInSeconds": 60, "UniqueRequestToken": "k"}
    hit_id = fake._op_CreateHITWithHITType(params)["HIT"]["HITId"]
    status, body, _ = fake.answer("CreateHITWithHITType", params)
    assert (status, body["__type"], body["TurkErrorCode"]) == (400, "RequestError", HIT_EXISTS)
    assert hit_id in body["Message"]
