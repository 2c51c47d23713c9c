"""A loopback MTurk requester endpoint: AWS JSON 1.1 over plain HTTP, for boto3's real client.

moto has no MTurk backend, so this small server plays the part MTurk plays
in exactly-once publishing and paying: it reads ``X-Amz-Target:
MTurkRequesterServiceV20170117.<Op>``, keeps HITs, assignments and bonuses,
remembers every ``UniqueRequestToken`` (a replay is a ``RequestError`` with
``TurkErrorCode`` ``AWS.MechanicalTurk.HitAlreadyExists`` naming the HIT, as
MTurk documents), pages lists by ``NextToken``, and answers errors the way
botocore's JSON parser reads them (HTTP 400 ``{"__type": "RequestError",
"Message", "TurkErrorCode"}``, HTTP 500 ``ServiceFault``).

Faults are queued per operation (``fake.faults["CreateHITWithHITType"] =
["drop"]``), one consumed per request: ``drop`` does the operation and then
closes the connection unanswered, ``sleep`` does it and answers only after
the client's read timeout, ``fault`` answers 500 without doing anything,
``ok`` is a normal answer. Signatures are not checked.
"""

from __future__ import annotations

import json
import secrets
import string
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HIT_EXISTS = "AWS.MechanicalTurk.HitAlreadyExists"
_ID_CHARS = string.ascii_uppercase + string.digits


def new_id(prefix: str = "3") -> str:
    """An id shaped like MTurk's (30 upper-case letters and digits)."""
    return prefix + "".join(secrets.choice(_ID_CHARS) for _ in range(30 - len(prefix)))


class RequestError(Exception):
    def __init__(self, message: str, code: str = "AWS.BadRequest") -> None:
        super().__init__(message)
        self.message, self.code = message, code


class FakeMTurk:
    def __init__(self, *, page_limit: int = 2, sleep_seconds: float = 2.5) -> None:
        self.page_limit = page_limit  # at most this many items per page, whatever MaxResults
        self.sleep_seconds = sleep_seconds
        self.faults: dict[str, list[str]] = {}
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.hit_types: dict[str, dict[str, Any]] = {}  # id -> parameters
        self.hits: dict[str, dict[str, Any]] = {}
        self.assignments: dict[str, dict[str, Any]] = {}
        self.bonuses: list[dict[str, Any]] = []
        self.tokens: dict[str, str] = {}  # UniqueRequestToken -> HIT id / bonus assignment id
        self.expired: set[tuple[str, float]] = set()
        self.blocks: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # --- the server ------------------------------------------------------------------

    def start(self) -> str:
        """Serve on a free loopback port; returns the endpoint URL for boto3."""
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                op = self.headers.get("X-Amz-Target", "").rsplit(".", 1)[-1]
                status, payload, fault = fake.answer(op, json.loads(body or b"{}"))
                if fault == "drop":
                    self.close_connection = True
                    return
                if fault == "sleep":
                    time.sleep(fake.sleep_seconds)
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/x-amz-json-1.1")
                    self.send_header("Content-Length", str(len(data)))
                    self.send_header("x-amzn-RequestId", new_id("R"))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the client gave up waiting
                    self.close_connection = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def answer(self, op: str, params: dict[str, Any]) -> tuple[int, dict[str, Any], str]:
        with self._lock:
            queue = self.faults.get(op) or []
            fault = queue.pop(0) if queue else "ok"
            self.calls.append((op, params))
            if fault == "fault":
                body = {"__type": "ServiceFault", "Message": "Try again.", "TurkErrorCode": ""}
                return 500, body, fault
            handler = getattr(self, f"_op_{op}", None)
            try:
                if handler is None:
                    raise RequestError(f"{op} is not in the fake", "AWS.NotImplemented")
                return 200, handler(params), fault
            except RequestError as exc:
                body = {"__type": "RequestError", "Message": exc.message, "TurkErrorCode": exc.code}
                return 400, body, fault

    # --- for tests -------------------------------------------------------------------

    def count(self, op: str) -> int:
        return sum(1 for name, _ in self.calls if name == op)

    def add_assignment(
        self, hit_id: str, worker_id: str, *, assignment_id: str = "", status: str = "Submitted"
    ) -> str:
        assignment_id = assignment_id or new_id("3A")
        self.assignments[assignment_id] = {
            "AssignmentId": assignment_id,
            "WorkerId": worker_id,
            "HITId": hit_id,
            "AssignmentStatus": status,
            "SubmitTime": time.time(),
            "Answer": "<QuestionFormAnswers/>",
        }
        return assignment_id

    # --- operations ------------------------------------------------------------------

    def _page(self, items: list[dict[str, Any]], key: str, params: dict[str, Any]):
        start = int(params.get("NextToken") or 0)
        end = start + min(int(params.get("MaxResults") or 10), self.page_limit)
        page = {key: items[start:end], "NumResults": len(items[start:end])}
        if end < len(items):
            page["NextToken"] = str(end)
        return page

    def _op_CreateHITType(self, params):  # noqa: N802
        for type_id, known in self.hit_types.items():
            if known == params:  # identical parameters: the same HIT type, as on MTurk
                return {"HITTypeId": type_id}
        type_id = new_id("3T")
        self.hit_types[type_id] = params
        return {"HITTypeId": type_id}

    def _op_CreateHITWithHITType(self, params):  # noqa: N802
        token = params.get("UniqueRequestToken")
        if token in self.tokens:
            raise RequestError(
                f'The HIT with ID "{self.tokens[token]}" already exists. (1700000000000)',
                HIT_EXISTS,
            )
        kind = self.hit_types.get(params["HITTypeId"])
        if kind is None:
            raise RequestError(f"HITType {params['HITTypeId']} does not exist.")
        hit_id = new_id()
        self.hits[hit_id] = {
            **{k: kind[k] for k in ("Title", "Description", "Reward") if k in kind},
            "HITId": hit_id,
            "HITTypeId": params["HITTypeId"],
            "HITGroupId": "G" + params["HITTypeId"][2:],
            "MaxAssignments": params.get("MaxAssignments", 1),
            "Question": params.get("Question", ""),
            "RequesterAnnotation": params.get("RequesterAnnotation", ""),
            "HITStatus": "Assignable",
            "CreationTime": time.time(),
            "Expiration": time.time() + params["LifetimeInSeconds"],
        }
        if token:
            self.tokens[token] = hit_id
        return {"HIT": self.hits[hit_id]}

    def _hit(self, hit_id: str) -> dict[str, Any]:
        if hit_id not in self.hits:
            raise RequestError(
                f"Hit {hit_id} does not exist.", "AWS.MechanicalTurk.HITDoesNotExist"
            )
        return self.hits[hit_id]

    def _op_GetHIT(self, params):  # noqa: N802
        return {"HIT": self._hit(params["HITId"])}

    def _op_ListHITs(self, params):  # noqa: N802
        return self._page(list(self.hits.values()), "HITs", params)

    def _op_UpdateExpirationForHIT(self, params):  # noqa: N802
        hit = self._hit(params["HITId"])
        replay = (params["HITId"], params["ExpireAt"])
        if replay in self.expired:
            raise RequestError(
                f'The idempotency token "{params["HITId"]}{params["ExpireAt"]}" has already '
                "been processed. (1700000000000)"
            )
        self.expired.add(replay)
        hit["Expiration"] = params["ExpireAt"]
        hit["HITStatus"] = "Unassignable"
        return {}

    def _op_ListAssignmentsForHIT(self, params):  # noqa: N802
        statuses = params.get("AssignmentStatuses") or ["Submitted", "Approved", "Rejected"]
        self._hit(params["HITId"])
        found = [
            a
            for a in self.assignments.values()
            if a["HITId"] == params["HITId"] and a["AssignmentStatus"] in statuses
        ]
        return self._page(found, "Assignments", params)

    def _assignment(self, assignment_id: str) -> dict[str, Any]:
        if assignment_id not in self.assignments:
            raise RequestError(f"Assignment {assignment_id} does not exist.")
        return self.assignments[assignment_id]

    def _op_GetAssignment(self, params):  # noqa: N802
        a = self._assignment(params["AssignmentId"])
        return {"Assignment": a, "HIT": self._hit(a["HITId"])}

    def _decide(self, params: dict[str, Any], status: str) -> dict[str, Any]:
        a = self._assignment(params["AssignmentId"])
        if a["AssignmentStatus"] != "Submitted":
            raise RequestError(
                "This operation can be called with a status of: Submitted (1700000000000)"
            )
        a["AssignmentStatus"] = status
        a["RequesterFeedback"] = params.get("RequesterFeedback", "")
        return {}

    def _op_ApproveAssignment(self, params):  # noqa: N802
        return self._decide(params, "Approved")

    def _op_RejectAssignment(self, params):  # noqa: N802
        if not params.get("RequesterFeedback"):
            raise RequestError("RequesterFeedback is required to reject.")
        return self._decide(params, "Rejected")

    def _op_SendBonus(self, params):  # noqa: N802
        token = params.get("UniqueRequestToken")
        if token in self.tokens:  # the provider looks the payment up; the code is not read
            raise RequestError(
                f'The idempotency token "{token}" has already been processed. (1700000000000)'
            )
        a = self._assignment(params["AssignmentId"])
        if a["WorkerId"] != params["WorkerId"]:
            raise RequestError("The worker did not do this assignment.")
        self.bonuses.append(
            {
                "WorkerId": params["WorkerId"],
                "BonusAmount": params["BonusAmount"],
                "AssignmentId": params["AssignmentId"],
                "Reason": params["Reason"],
                "GrantTime": time.time(),
            }
        )
        if token:
            self.tokens[token] = params["AssignmentId"]
        return {}

    def _op_ListBonusPayments(self, params):  # noqa: N802
        def wanted(bonus: dict[str, Any]) -> bool:
            hit_id = self.assignments[bonus["AssignmentId"]]["HITId"]
            return (
                params.get("AssignmentId", bonus["AssignmentId"]) == bonus["AssignmentId"]
                and params.get("HITId", hit_id) == hit_id
            )

        return self._page([b for b in self.bonuses if wanted(b)], "BonusPayments", params)

    def _op_CreateWorkerBlock(self, params):  # noqa: N802
        self.blocks.append(params)
        return {}

    def _op_GetAccountBalance(self, params):  # noqa: N802
        return {"AvailableBalance": "10000.00"}
