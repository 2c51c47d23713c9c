"""The MTurk requester API through boto3, with MTurk's answers sorted into two kinds of error.

- :class:`~apps.recruitment.ledger.Refused`: MTurk said no for good (a 4xx
  ``RequestError``); the ledger marks the call failed. The caller may first
  recognise a "no" that means "done already" (a replayed token).
- :class:`~.base.ProviderError`: no answer, a 5xx ``ServiceFault`` or
  throttling, after botocore's own retries; the ledger row stays pending and
  the next run reconciles it.

Also the lookups that reconcile a pending call from MTurk's own records.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings

from apps.recruitment.ledger import Refused
from apps.recruitment.providers.base import ProviderError

REGION = "us-east-1"
ENDPOINTS = {
    False: "https://mturk-requester.us-east-1.amazonaws.com",
    True: "https://mturk-requester-sandbox.us-east-1.amazonaws.com",
}
PAGE = {"PageSize": 100}  # MTurk's largest MaxResults


def sorted_error(op: str, exc: ClientError) -> Refused | ProviderError:
    """Refused for MTurk's definitive no (4xx); ProviderError (try again later) for faults."""
    body = exc.response
    kind = body.get("Error", {}).get("Code", "")
    code = body.get("TurkErrorCode") or kind  # botocore adds the modeled TurkErrorCode
    message = body.get("Message") or body.get("Error", {}).get("Message", "") or str(exc)
    status = body.get("ResponseMetadata", {}).get("HTTPStatusCode", 400)
    if status >= 500 or kind == "ServiceFault" or "throttl" in code.lower():
        return ProviderError(
            f"MTurk could not {op} now ({code}: {message}); run the command again later.",
            code="mturk_unavailable",
        )
    return Refused(message, code=code)


class MTurkApi:
    def __init__(self, *, sandbox: bool) -> None:
        self.sandbox = sandbox
        self._client: Any = None

    @property
    def endpoint(self) -> str:
        return settings.MTURK_ENDPOINT_URL or ENDPOINTS[self.sandbox]

    @property
    def client(self) -> Any:
        """boto3's MTurk client, built on first use (a test may set a stubbed one)."""
        if self._client is None:
            timeout = settings.PROVIDER_TIMEOUT_SECONDS
            config = Config(
                region_name=REGION,
                connect_timeout=timeout,
                read_timeout=timeout,
                retries={"mode": "standard"},
            )
            keys = {}
            if settings.MTURK_ACCESS_KEY_ID and settings.MTURK_SECRET_ACCESS_KEY:
                keys = {
                    "aws_access_key_id": settings.MTURK_ACCESS_KEY_ID,
                    "aws_secret_access_key": settings.MTURK_SECRET_ACCESS_KEY,
                }  # else boto3's own chain (AWS_* variables, ~/.aws, an instance role)
            self._client = boto3.session.Session().client(
                "mturk", region_name=REGION, endpoint_url=self.endpoint, config=config, **keys
            )
        return self._client

    @client.setter
    def client(self, value: Any) -> None:
        self._client = value

    def call(self, op: str, **params: Any) -> dict[str, Any]:
        """One operation (botocore retries faults itself); see the module docstring."""
        try:
            response = getattr(self.client, op)(**params)
        except ClientError as exc:
            raise sorted_error(op, exc) from exc
        except BotoCoreError as exc:  # no answer after botocore's retries, or no credentials
            raise ProviderError(
                f"MTurk did not answer {op} ({exc}); run the command again: what was done "
                "is in the ledger and is not done twice.",
                code="mturk_unreachable",
            ) from exc
        response.pop("ResponseMetadata", None)
        return response

    def pages(self, op: str, items: str, **params: Any) -> Iterator[dict[str, Any]]:
        """Every item of a paginated list (a refusal is a ProviderError here: nothing to mark)."""
        try:
            for page in self.client.get_paginator(op).paginate(**params, PaginationConfig=PAGE):
                yield from page.get(items, [])
        except ClientError as exc:
            error = sorted_error(op, exc)
            if isinstance(error, Refused):
                error = ProviderError(f"MTurk refused {op}: {error.code}: {error.message}")
            raise error from exc
        except BotoCoreError as exc:
            raise ProviderError(f"MTurk did not answer {op} ({exc}).") from exc

    def hit_by_annotation(self, annotation: str) -> dict[str, Any] | None:
        """The account's HIT created with this ``RequesterAnnotation`` (our call key)."""
        for hit in self.pages("list_hits", "HITs"):
            if hit.get("RequesterAnnotation") == annotation:
                return hit
        return None

    def assignment_status(self, assignment_id: str) -> str | None:
        try:
            found = self.call("get_assignment", AssignmentId=assignment_id)
        except Refused:
            return None
        return found["Assignment"].get("AssignmentStatus")

    def bonus_paid(self, *, assignment_id: str, worker_id: str, amount: str) -> bool:
        """Whether MTurk holds a bonus of ``amount`` on this assignment to this worker."""
        return any(
            pay.get("WorkerId") == worker_id
            and Decimal(str(pay.get("BonusAmount", "0"))) == Decimal(amount)
            for pay in self.pages(
                "list_bonus_payments", "BonusPayments", AssignmentId=assignment_id
            )
        )
