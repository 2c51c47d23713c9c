"""Exactly-once external calls: a row with a unique key is committed before the call.

::

    call = call_once(publication=p, kind="create_hit", key=..., request={...},
                     send=lambda row: client.create_hit(...), reconcile=lookup)

1. ``get_or_create`` the :class:`ExternalCall` by ``key`` and commit it
   (state ``pending``). A second run with the same key finds it.
2. ``done``: returned as it is; the provider is not called again.
3. ``pending`` with an earlier attempt: that attempt's outcome is unknown (a
   timeout after the provider acted, a crash between the call and our
   commit). ``reconcile(row)`` asks the provider's own records; what it finds
   marks the row done. Only when the provider has no trace is it sent again —
   with the same key, which MTurk also dedupes as ``UniqueRequestToken``.
4. ``send(row)`` returns the provider's answer as a JSON-able dict and the
   provider's id of what it made (:class:`Outcome`); the row becomes ``done``.
   A :class:`Refused` (the provider said no, definitively) marks it ``failed``
   and is raised; anything else (network, timeout, crash) leaves it
   ``pending`` for the next run to reconcile.

Must not run inside a transaction: the pending row has to be committed before
the call leaves this process, whatever happens afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, connection, transaction

from apps.recruitment.models import ExternalCall, Publication


@dataclass(frozen=True)
class Outcome:
    external_id: str = ""
    result: dict[str, Any] = field(default_factory=dict)


class Refused(Exception):
    """The provider refused the call for good (bad parameter, wrong state): not retried as is."""

    def __init__(self, message: str, *, code: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def call_once(
    *,
    publication: Publication,
    kind: str,
    key: str,
    request: dict[str, Any],
    send: Callable[[ExternalCall], Outcome],
    reconcile: Callable[[ExternalCall], Outcome | None] | None = None,
) -> ExternalCall:
    """The call's row, ``done``: sent at most once per key (see the module docstring)."""
    if connection.in_atomic_block:
        raise RuntimeError("call_once must run outside a transaction (its row must commit first)")
    if len(key) > 64:
        raise ValueError(f"call key longer than 64 characters: {key!r}")
    row = _row(publication=publication, kind=kind, key=key, request=request)
    if row.state == ExternalCall.State.DONE:
        return row
    if row.state == ExternalCall.State.PENDING and row.attempts > 0 and reconcile is not None:
        found = reconcile(row)
        if found is not None:
            return _finish(row, found)
    row.attempts += 1
    row.state = ExternalCall.State.PENDING
    row.error = ""
    row.save(update_fields=["attempts", "state", "error", "updated_at"])
    try:
        outcome = send(row)
    except Refused as exc:
        row.state = ExternalCall.State.FAILED
        row.error = f"{exc.code}: {exc.message}" if exc.code else exc.message
        row.save(update_fields=["state", "error", "updated_at"])
        raise
    return _finish(row, outcome)


def _row(*, publication: Publication, kind: str, key: str, request: dict[str, Any]) -> ExternalCall:
    try:
        with transaction.atomic():
            row, _ = ExternalCall.objects.get_or_create(
                key=key, defaults={"publication": publication, "kind": kind, "request": request}
            )
    except IntegrityError:  # a concurrent run wrote it first
        row = ExternalCall.objects.get(key=key)
    if row.kind != kind or row.publication_id != publication.pk:
        raise RuntimeError(f"call key {key!r} already names a {row.kind} call of another row")
    return row


def _finish(row: ExternalCall, outcome: Outcome) -> ExternalCall:
    row.state = ExternalCall.State.DONE
    row.external_id = outcome.external_id
    row.result = outcome.result
    row.error = ""
    row.save(update_fields=["state", "external_id", "result", "error", "updated_at"])
    return row
