"""A loopback stand-in for Prolific's REST API, enough for the provider's calls.

In memory: studies, submissions and bonus payments. Every request is
recorded (method, path, query, JSON body, Authorization header). Lists are
paginated with ``_links.next`` (small pages, so paging is exercised).
Faults are injected per request: ``fault("POST", "/studies/", "drop")``
lets the next matching request take effect and then closes the connection
without an answer (a crash or lost answer after Prolific acted);
``"timeout"`` does the same after sleeping past the client's timeout;
``503``/``429`` answer that status without acting.

Like Prolific (per its documentation), a repeated submission transition is
ignored, but paying a bulk bonus twice pays twice.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

PREFIX = "/api/v1"
REJECTION_CATEGORIES = {
    "TOO_QUICKLY", "TOO_SLOWLY", "FAILED_INSTRUCTIONS", "INCOMP_LONGITUDINAL", "FAILED_CHECK",
    "LOW_EFFORT", "MALINGERING", "NO_CODE", "BAD_CODE", "NO_DATA", "UNSUPP_DEVICE", "OTHER",
}  # fmt: skip
REQUIRED_STUDY_FIELDS = (
    "name", "description", "external_study_url", "prolific_id_option", "completion_codes",
    "total_available_places", "estimated_completion_time", "reward",
)  # fmt: skip


def new_id() -> str:
    return secrets.token_hex(12)  # 24 characters, like Prolific's ids


@dataclass
class Recorded:
    method: str
    path: str  # without /api/v1
    query: dict[str, list[str]]
    body: Any
    auth: str


@dataclass
class Fault:
    method: str
    path: str  # a regular expression matched against the path without /api/v1
    mode: str | int  # "drop", "timeout" (act, then no answer) or an HTTP status (no action)


class _Refuse(Exception):
    def __init__(self, status: int, detail: str) -> None:
        self.status = status
        self.detail = detail


@dataclass
class FakeProlific:
    token: str = "test-token"
    page_size: int = 2
    sleep_s: float = 1.5
    refuse_repeat_pay: bool = False  # answer 400 "already paid" instead of paying again
    studies: dict[str, dict[str, Any]] = field(default_factory=dict)
    submissions: dict[str, dict[str, Any]] = field(default_factory=dict)
    bonuses: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)

    # --- test-facing helpers -----------------------------------------------

    def start(self) -> FakeProlific:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return None

            def do_GET(self) -> None:
                fake._serve(self, "GET")

            def do_POST(self) -> None:
                fake._serve(self, "POST")

        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def url(self) -> str:
        return self.origin + PREFIX

    def fault(self, method: str, path: str, mode: str | int) -> None:
        self.faults.append(Fault(method, path, mode))

    def calls(self, method: str | None = None, path: str = "") -> list[Recorded]:
        """Recorded requests of ``method`` whose path matches the regular expression ``path``."""
        return [
            r
            for r in self.requests
            if (method is None or r.method == method) and re.search(path, r.path)
        ]

    def add_study(self, internal_name: str = "", status: str = "ACTIVE") -> str:
        study_id = new_id()
        self.studies[study_id] = {"id": study_id, "internal_name": internal_name, "status": status}
        return study_id

    def add_submission(
        self, study_id: str, participant_id: str, status: str = "AWAITING REVIEW"
    ) -> str:
        submission_id = new_id()
        self.submissions[submission_id] = {
            "id": submission_id,
            "study_id": study_id,
            "participant": participant_id,
            "status": status,
            "bonus_payments": [],
        }
        return submission_id

    # --- the server ----------------------------------------------------------

    def _serve(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(handler.path)
        path = parts.path.removeprefix(PREFIX)
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        auth = handler.headers.get("Authorization", "")
        with self._lock:
            self.requests.append(Recorded(method, path, parse_qs(parts.query), body, auth))
            fault = next(
                (f for f in self.faults if f.method == method and re.search(f.path, path)), None
            )
            if fault is not None:
                self.faults.remove(fault)
            if isinstance(fault, Fault) and isinstance(fault.mode, int):
                return self._answer(handler, fault.mode, {"error": {"detail": "injected fault"}})
            try:
                if auth != f"Token {self.token}":
                    raise _Refuse(401, "Invalid token.")
                status, answer = self._route(method, path, parse_qs(parts.query), body)
            except _Refuse as exc:
                status, answer = exc.status, {"error": {"status": exc.status, "detail": exc.detail}}
        if fault is not None:  # it took effect; the answer is lost
            if fault.mode == "timeout":
                time.sleep(self.sleep_s)
            handler.close_connection = True
            return None
        return self._answer(handler, status, answer)

    def _answer(self, handler: BaseHTTPRequestHandler, status: int, answer: Any) -> None:
        data = json.dumps(answer).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def _page(self, items: list[dict[str, Any]], path: str, query: dict) -> dict[str, Any]:
        page = int((query.get("page") or ["1"])[0])
        start = (page - 1) * self.page_size
        more = start + self.page_size < len(items)
        href = f"{self.url}{path}?page={page + 1}" if more else None
        return {
            "results": items[start : start + self.page_size],
            "_links": {"next": {"href": href, "title": "Next page"}},
            "meta": {"count": len(items)},
        }

    def _route(self, method: str, path: str, query: dict, body: Any) -> tuple[int, Any]:
        routes = [
            ("GET", r"/studies/", self._list_studies),
            ("POST", r"/studies/", self._create_study),
            ("GET", r"/studies/(\w+)/", self._get_study),
            ("POST", r"/studies/(\w+)/transition/", self._transition_study),
            ("GET", r"/studies/(\w+)/submissions/", self._list_submissions),
            ("POST", r"/submissions/bonus-payments/", self._create_bonus),
            ("GET", r"/submissions/(\w+)/", self._get_submission),
            ("POST", r"/submissions/(\w+)/transition/", self._transition_submission),
            ("POST", r"/bulk-bonus-payments/(\w+)/pay/", self._pay_bonus),
        ]
        for route_method, pattern, view in routes:
            match = re.fullmatch(pattern, path)
            if route_method == method and match:
                return view(*match.groups(), path=path, query=query, body=body or {})
        raise _Refuse(404, f"No route {method} {path}.")

    def _study(self, study_id: str) -> dict[str, Any]:
        if study_id not in self.studies:
            raise _Refuse(404, f"Study {study_id} not found.")
        return self.studies[study_id]

    def _submission(self, submission_id: str) -> dict[str, Any]:
        if submission_id not in self.submissions:
            raise _Refuse(404, f"Submission {submission_id} not found.")
        return self.submissions[submission_id]

    def _list_studies(self, *, path: str, query: dict, body: Any) -> tuple[int, Any]:
        return 200, self._page(list(self.studies.values()), path, query)

    def _create_study(self, *, path: str, query: dict, body: Any) -> tuple[int, Any]:
        missing = [f for f in REQUIRED_STUDY_FIELDS if f not in body]
        if missing:
            raise _Refuse(400, f"Missing fields: {', '.join(missing)}.")
        if not isinstance(body["reward"], int):
            raise _Refuse(400, "reward must be an integer (pence / cents).")
        study = {**body, "id": new_id(), "status": "UNPUBLISHED"}
        self.studies[study["id"]] = study
        return 201, study

    def _get_study(self, study_id: str, **_: Any) -> tuple[int, Any]:
        return 200, self._study(study_id)

    def _transition_study(self, study_id: str, *, body: Any, **_: Any) -> tuple[int, Any]:
        study = self._study(study_id)
        action, status = body.get("action"), study["status"]
        if action == "PUBLISH" and status == "UNPUBLISHED":
            study["status"] = "ACTIVE"
        elif action == "STOP" and status in ("ACTIVE", "PAUSED"):
            study["status"] = "AWAITING REVIEW"
        else:
            raise _Refuse(400, f"Cannot {action} a study that is {status}.")
        return 200, study

    def _list_submissions(self, study_id: str, *, path: str, query: dict, **_: Any):
        self._study(study_id)
        items = [
            {"id": s["id"], "participant_id": s["participant"], "status": s["status"]}
            for s in self.submissions.values()
            if s["study_id"] == study_id
        ]
        return 200, self._page(items, path, query)

    def _get_submission(self, submission_id: str, **_: Any) -> tuple[int, Any]:
        return 200, self._submission(submission_id)

    def _transition_submission(self, submission_id: str, *, body: Any, **_: Any):
        submission = self._submission(submission_id)
        action, status = body.get("action"), submission["status"]
        target = {"APPROVE": "APPROVED", "REJECT": "REJECTED"}.get(action)
        if target is None:
            raise _Refuse(400, f"Unknown action {action!r}.")
        if status == target:
            return 200, submission  # idempotent: the repeated request is ignored
        if status != "AWAITING REVIEW":
            raise _Refuse(400, f"Cannot {action} a submission that is {status}.")
        if action == "REJECT":
            if len(body.get("message") or "") < 100:
                raise _Refuse(400, "message: at least 100 characters.")
            if body.get("rejection_category") not in REJECTION_CATEGORIES:
                raise _Refuse(400, "rejection_category: not a valid choice.")
        submission["status"] = target
        return 200, submission

    def _create_bonus(self, *, body: Any, **_: Any) -> tuple[int, Any]:
        study_id = body.get("study_id")
        self._study(study_id)
        lines = []
        for line in str(body.get("csv_bonuses", "")).strip().splitlines():
            who, amount = line.split(",")
            found = [
                s
                for s in self.submissions.values()
                if s["study_id"] == study_id and who in (s["id"], s["participant"])
            ]
            if not found:
                raise _Refuse(400, f"{who} did not take part in study {study_id}.")
            lines.append((found[0]["id"], int(Decimal(amount) * 100)))
        bonus_id = new_id()
        total = sum(c for _, c in lines)
        self.bonuses[bonus_id] = {"id": bonus_id, "study": study_id, "lines": lines, "paid": 0}
        return 201, {"id": bonus_id, "study": study_id, "amount": total, "fees": 0, "vat": 0}

    def _pay_bonus(self, bonus_id: str, **_: Any) -> tuple[int, Any]:
        bonus = self.bonuses.get(bonus_id)
        if bonus is None:
            raise _Refuse(404, f"Bulk bonus payment {bonus_id} not found.")
        if bonus["paid"] and self.refuse_repeat_pay:
            raise _Refuse(400, "This bonus payment has already been paid.")
        bonus["paid"] += 1
        for submission_id, amount in bonus["lines"]:
            self.submissions[submission_id]["bonus_payments"].append(amount)
        return 202, f"Bulk bonus payment with ID {bonus_id} is being processed asynchronously."
