"""A gunicorn worker killed with SIGKILL under load loses no acknowledged answer.

Real processes: gunicorn (2 sync workers) serves the test's PostgreSQL
database; 12 rater threads join through the pages and answer through the
API over HTTP until their experiment is drained, retrying a request whose
connection died. Meanwhile a worker is killed three times (the master
starts a new one). Every answer a rater got a 200/201 for must be in the
database with the choice sent, no task over its quota, every rater done.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
from django.db import connection

from apps.studies.models import Participation, Response
from tests.studies.helpers import launched_study

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def gunicorn(tmp_path):
    db = connection.settings_dict
    url = f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "DEBUG": "0",
        "SECRET_KEY": "gunicorn-kill-test",
        "ALLOWED_HOSTS": "127.0.0.1",
        "COOKIES_SECURE": "0",
        "SECURE_SSL_REDIRECT": "0",
        "MEDIA_ROOT": str(tmp_path / "media"),
        "LOG_LEVEL": "WARNING",
    }
    log = (tmp_path / "gunicorn.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "config.wsgi:application", "-w", "2", "-k", "sync",
         "-b", f"127.0.0.1:{port}", "--timeout", "30", "--graceful-timeout", "5"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(base + "/", timeout=5)
                break
            except OSError:  # refused while starting, or a timeout
                time.sleep(0.2)
        yield base, process.pid
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        log.close()


def _workers(master: int) -> list[int]:
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == master:
            children.append(int(stat.parent.name))
    return children


class HttpRater:
    """One browser: cookies, the join form, the task page's token, the JSON API."""

    def __init__(self, base: str, code: str) -> None:
        self.base, self.code = base, code
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )
        page = self._request("GET", f"/r/{code}/").decode()
        csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        task_page = self._request(
            "POST", f"/r/{code}/", f"csrfmiddlewaretoken={csrf}&consent=yes".encode(),
            {"Content-Type": "application/x-www-form-urlencoded", "Referer": base + f"/r/{code}/"},
        ).decode()  # fmt: skip
        self.token = re.search(r'data-token="([^"]+)"', task_page).group(1)

    def _request(self, method: str, path: str, body: bytes | None = None, headers=None) -> bytes:
        request = urllib.request.Request(
            self.base + path, data=body, method=method, headers=headers or {}
        )
        with self.opener.open(request, timeout=30) as response:
            return response.read()

    def api(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        """Retries until the server answers: a killed worker drops the connection."""
        data = json.dumps(body).encode() if body is not None else None
        headers = {"X-Rater-Token": self.token, "Content-Type": "application/json"}
        for _ in range(50):
            try:
                payload = self._request(method, f"/api/r/{self.code}/{path}", data, headers)
                return 200, json.loads(payload)
            except urllib.error.HTTPError as err:
                if err.code >= 500:
                    time.sleep(0.1)
                    continue
                return err.code, json.loads(err.read() or b"{}")
            except (OSError, http.client.HTTPException):  # connection dropped by a kill
                time.sleep(0.1)
        raise AssertionError(f"{path}: no answer after 50 tries")


def test_a_worker_killed_under_load_loses_no_acknowledged_answer(gunicorn):
    base, master = gunicorn
    study = launched_study(images_per_class=3, answers_per_task=3, tasks_per_rater=1000)
    experiment = study.experiments.get(slug="pw")  # 60 tasks x 3 = 180 answers
    acknowledged: list[tuple[str, int]] = []
    done: list[bool] = []
    errors: list[BaseException] = []

    def rater(seed: int) -> None:
        try:
            rng = random.Random(seed)
            client = HttpRater(base, experiment.code)
            status, step = client.api("GET", "next")
            while True:
                if step.get("state") == "task":
                    choice = rng.randint(0, 4)
                    body = {"assignment_id": step["task"]["assignment_id"], "choice": choice}
                    status, result = client.api("POST", "responses", body)
                    assert status == 200, result
                    acknowledged.append((body["assignment_id"], choice))
                    step = result["next"]
                elif step.get("state") == "wait":
                    time.sleep(0.05)
                    status, step = client.api("GET", "next")
                else:
                    page = client._request("GET", f"/r/{experiment.code}/done/").decode()
                    done.append('id="completion-code"' in page)
                    return
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=rater, args=(i,)) for i in range(12)]
    for thread in threads:
        thread.start()
    kills = 0
    for target in (30, 80, 130):  # kill a worker at these numbers of acknowledged answers
        while len(acknowledged) < target and any(t.is_alive() for t in threads):
            time.sleep(0.005)
        workers = _workers(master)
        if workers:
            os.kill(random.Random(target).choice(workers), signal.SIGKILL)
            kills += 1
    for thread in threads:
        thread.join(120)

    assert errors == [] and kills == 3
    assert done == [True] * 12
    stored = {
        str(public_id): choice
        for public_id, choice in Response.objects.values_list("assignment__public_id", "choice")
    }
    # every acknowledged answer is stored with the choice sent (a retry may be acknowledged twice)
    assert all(stored.get(a) == c for a, c in acknowledged)
    assert len(stored) == len(set(acknowledged)) == 180
    assert set(Counter(Response.objects.values_list("task_id", flat=True)).values()) == {3}
    assert set(Participation.objects.values_list("status", flat=True)) == {"completed"}
