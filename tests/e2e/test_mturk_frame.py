"""An MTurk worker does a HIT inside a cross-site iframe in real Chromium, without cookies.

A tiny HTTP server on another site stands in for MTurk: it serves the worker
page that frames our join URL (with ``workerId``, ``assignmentId``, ``hitId``
and ``turkSubmitTo``) and receives ``/mturk/externalSubmit``. The app runs on
``localhost`` and the fake MTurk on ``127.0.0.1``: two sites, so Chromium
neither sends nor stores our ``SameSite=Lax`` cookies in the frame, as on the
real worker site. The worker starts, answers every task, reopens the HIT
midway, and submits; a forged ``turkSubmitTo`` is never posted to.
"""

from __future__ import annotations

import html
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlparse

import pytest

from apps.studies.models import Participation
from tests.studies.helpers import launched_study

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WORKER = "A2FRAMEWORKER01"
ASSIGNMENT = "3FRAMEASSIGN01"
HIT = "3FRAMEHIT0001"


class FakeMTurk:
    """The worker site (``/hit`` frames ``self.frame_src``) and the submit endpoint."""

    def __init__(self) -> None:
        self.frame_src = ""
        self.submitted: list[dict[str, list[str]]] = []
        self.got_submit = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _send(self, body: str) -> None:
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._send(
                    "<!doctype html><title>HIT</title><h1>Fake worker site</h1>"
                    f'<iframe id="hit" src="{html.escape(fake.frame_src)}"'
                    ' width="1150" height="850"></iframe>'
                )

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                form = parse_qs(self.rfile.read(length).decode())
                if urlparse(self.path).path == "/mturk/externalSubmit":
                    fake.submitted.append(form)
                    fake.got_submit.set()
                self._send('<p id="submitted">Your HIT has been submitted.</p>')

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeMTurk:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def mturk(settings):
    with FakeMTurk() as fake:
        settings.RATER_FRAME_ANCESTORS = [fake.origin]
        settings.MTURK_SUBMIT_HOSTS = {"sandbox": fake.origin, "production": fake.origin}
        yield fake


def _open_hit(page, mturk: FakeMTurk, join_url: str, **params: str):
    mturk.frame_src = f"{join_url}?{urlencode(params)}"
    page.goto(f"{mturk.origin}/hit")
    frame = page.frame_locator("#hit")
    frame.locator("#consent").check()
    frame.locator("#start").click()
    return frame, page.main_frame.child_frames[0]


def _wait_for_task(hit_frame, number: int, target: int) -> None:
    hit_frame.wait_for_function(
        "([t]) => document.getElementById('progress-text')?.textContent === t"
        " && !document.getElementById('stimuli').hidden"
        " && document.querySelectorAll('#options button:not([disabled])').length > 0",
        arg=[f"Task {number} of {target}"],
    )


def _answer(frame, number: int) -> None:
    frame.locator("#options button").nth(number % 3).click()


def test_an_mturk_worker_does_the_hit_inside_a_cross_site_frame(live_server, page, mturk):
    # given a live study whose pages MTurk (here: the fake) may frame
    assert urlparse(live_server.url).hostname == "localhost"  # another site than 127.0.0.1
    study = launched_study(tasks_per_rater=3)
    experiment = study.experiments.get(slug="pw")
    join_url = f"{live_server.url}/r/{experiment.code}/"
    ids = {"workerId": WORKER, "assignmentId": ASSIGNMENT, "hitId": HIT}

    # when the worker accepts the HIT and starts inside the frame
    frame, hit_frame = _open_hit(page, mturk, join_url, **ids, turkSubmitTo=mturk.origin)
    _wait_for_task(hit_frame, 1, 3)
    _answer(frame, 1)
    _wait_for_task(hit_frame, 2, 3)
    assert "t=" in urlparse(hit_frame.url).query  # the session lives in the URL
    # then nothing of ours is stored as a cookie: the frame really is cookie-less
    assert not page.context.cookies(live_server.url)

    # when they reopen the HIT (a fresh frame, no cookie) they continue where they were
    frame, hit_frame = _open_hit(page, mturk, join_url, **ids, turkSubmitTo=mturk.origin)
    _wait_for_task(hit_frame, 2, 3)
    assert Participation.objects.count() == 1
    _answer(frame, 2)
    _wait_for_task(hit_frame, 3, 3)
    _answer(frame, 3)

    # then the end page offers MTurk's submit form, posting to the recorded host
    submit = frame.locator("#mturk-submit")
    assert submit.get_attribute("action") == f"{mturk.origin}/mturk/externalSubmit"
    participation = Participation.objects.get()
    assert participation.answered == 3 and participation.status == "completed"
    assert participation.external_session["turkSubmitTo"] == mturk.origin
    frame.locator("#submit-hit").click()
    assert mturk.got_submit.wait(15)
    assert mturk.submitted[0]["assignmentId"] == [ASSIGNMENT]
    assert mturk.submitted[0]["completion_code"] == [participation.completion_code]
    frame.locator("#submitted").wait_for()


def test_a_forged_turk_submit_to_is_never_posted_to(live_server, page, mturk):
    study = launched_study(tasks_per_rater=1)
    experiment = study.experiments.get(slug="fc")
    join_url = f"{live_server.url}/r/{experiment.code}/"
    frame, hit_frame = _open_hit(
        page,
        mturk,
        join_url,
        workerId="A2FORGED0001",
        assignmentId="3FORGED0001",
        hitId=HIT,
        turkSubmitTo="https://evil.example",
    )
    _wait_for_task(hit_frame, 1, 1)
    _answer(frame, 1)
    # the end page posts to the allowed MTurk host (no publication: production), never evil
    action = frame.locator("#mturk-submit").get_attribute("action")
    assert action == f"{mturk.origin}/mturk/externalSubmit"
    assert "turkSubmitTo" not in Participation.objects.get().external_session
    frame.locator("#submit-hit").click()
    assert mturk.got_submit.wait(15)
    assert mturk.submitted[0]["assignmentId"] == ["3FORGED0001"]
