"""A rater's browser over the Django test client: join, consent, then the JSON API."""

from __future__ import annotations

import json
import re

from django.test import Client


class HttpRater:
    def __init__(self, code: str) -> None:
        self.code = code
        self.client = Client(enforce_csrf_checks=True)
        assert self.client.get(f"/r/{code}/").status_code == 200
        csrf = self.client.cookies["csrftoken"].value
        joined = self.client.post(f"/r/{code}/", {"csrfmiddlewaretoken": csrf, "consent": "yes"})
        assert joined.status_code == 302, joined.content[:300]
        page = self.client.get(joined["Location"]).content.decode()
        self.token = re.search(r'data-token="([^"]+)"', page).group(1)

    def next(self) -> dict:
        response = self.client.get(f"/api/r/{self.code}/next", HTTP_X_RATER_TOKEN=self.token)
        assert response.status_code == 200, response.content[:300]
        return response.json()

    def answer(self, assignment_id: str, choice: int, response_ms: int = 1500) -> int:
        body = {"assignment_id": assignment_id, "choice": choice, "response_ms": response_ms}
        return self.client.post(
            f"/api/r/{self.code}/responses",
            data=json.dumps(body),
            content_type="application/json",
            HTTP_X_RATER_TOKEN=self.token,
        ).status_code

    def answer_all(self, choose) -> list[dict]:
        """Answer every task with ``choose(task) -> choice``; returns the tasks seen."""
        seen = []
        while (step := self.next())["state"] == "task":
            task = step["task"]
            assert self.answer(task["assignment_id"], choose(task)) == 201
            seen.append(task)
        return seen
