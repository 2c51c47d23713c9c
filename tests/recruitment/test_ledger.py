"""The exactly-once ledger: a call's row commits first, a retry reconciles, never sends twice."""

from __future__ import annotations

import pytest
from django.db import transaction

from apps.recruitment.ledger import Outcome, Refused, call_once
from apps.recruitment.models import ExternalCall
from tests.recruitment.helpers import published_study

pytestmark = pytest.mark.django_db(transaction=True)


class Flaky(Exception):
    pass


def _publication():
    _, publications = published_study(provider="link")
    return publications[0]


def test_a_done_call_is_never_sent_again():
    publication = _publication()
    sent = []

    def send(row):
        sent.append(row.key)
        return Outcome("X1", {"n": len(sent)})

    first = call_once(publication=publication, kind="create", key="k-1", request={}, send=send)
    again = call_once(publication=publication, kind="create", key="k-1", request={}, send=send)

    assert sent == ["k-1"]
    assert (first.pk, again.state, again.external_id, again.result) == (
        again.pk, ExternalCall.State.DONE, "X1", {"n": 1},
    )  # fmt: skip


def test_a_lost_answer_is_reconciled_from_the_provider_not_resent():
    """The provider acted, then the answer was lost: the next run finds it and sends nothing."""
    publication = _publication()
    provider_side = []

    def send_then_lose(row):
        provider_side.append(row.key)
        raise Flaky("read timeout")

    with pytest.raises(Flaky):
        call_once(publication=publication, kind="pay", key="k-2", request={}, send=send_then_lose)
    row = ExternalCall.objects.get(key="k-2")
    assert (row.state, row.attempts) == (ExternalCall.State.PENDING, 1)

    def reconcile(row):
        return Outcome("P1", {"found": True}) if row.key in provider_side else None

    def must_not_send(row):
        raise AssertionError("sent twice")

    done = call_once(
        publication=publication, kind="pay", key="k-2", request={},
        send=must_not_send, reconcile=reconcile,
    )  # fmt: skip
    assert (done.state, done.external_id, provider_side) == ("done", "P1", ["k-2"])


def test_a_pending_call_the_provider_never_saw_is_sent_again_with_the_same_key():
    publication = _publication()
    ExternalCall.objects.create(publication=publication, kind="pay", key="k-3", attempts=1)
    sent = []
    done = call_once(
        publication=publication, kind="pay", key="k-3", request={},
        send=lambda row: sent.append(row.key) or Outcome("P2"), reconcile=lambda row: None,
    )  # fmt: skip
    assert (sent, done.state, done.attempts) == (["k-3"], "done", 2)


def test_a_refusal_is_recorded_and_a_later_run_may_try_again():
    publication = _publication()

    def refuse(row):
        raise Refused("reward too low", code="RequestError")

    with pytest.raises(Refused):
        call_once(publication=publication, kind="pay", key="k-4", request={}, send=refuse)
    row = ExternalCall.objects.get(key="k-4")
    assert (row.state, row.error) == ("failed", "RequestError: reward too low")

    done = call_once(
        publication=publication, kind="pay", key="k-4", request={}, send=lambda r: Outcome("ok")
    )
    assert (done.state, done.error, done.attempts) == ("done", "", 2)


def test_a_call_inside_a_transaction_is_refused_before_anything_is_sent():
    publication = _publication()
    with transaction.atomic(), pytest.raises(RuntimeError, match="outside a transaction"):
        call_once(
            publication=publication, kind="pay", key="k-5", request={},
            send=lambda r: pytest.fail("sent"),
        )  # fmt: skip


def test_a_key_names_one_kind_of_call():
    publication = _publication()
    call_once(publication=publication, kind="pay", key="k-6", request={}, send=lambda r: Outcome())
    with pytest.raises(RuntimeError, match="already names a pay call"):
        call_once(
            publication=publication, kind="approve", key="k-6", request={},
            send=lambda r: pytest.fail("sent"),
        )  # fmt: skip
