"""The Content-Security-Policy in real Chromium: no page we serve trips it.

Each page is loaded with a listener for ``securitypolicyviolation`` (installed by
Playwright before the page's own scripts, outside the policy) and with the console
watched for Chromium's "Content Security Policy" errors; both lists must stay empty
while the page does its usual work (the rater page fetches and shows a task, the
admin study page renders its panels, Swagger UI loads the schema and draws it).
"""

from __future__ import annotations

import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

import pytest
from django.contrib.auth import get_user_model

from tests.conftest import CHROMIUM
from tests.e2e.conftest import CHROMIUM_ARGS
from tests.studies.helpers import launched_study

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

_RECORD_VIOLATIONS = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push(`${e.effectiveDirective} blocked ${e.blockedURI || "inline"} `
    + `(${e.sourceFile || ""}:${e.lineNumber || ""})`);
});
"""


@pytest.fixture
def strict_page():
    """tests/e2e/conftest.py's ``page``, but enforcing the site's CSP (no bypass_csp).

    Waits use locators: ``wait_for_function`` would need the page to allow eval.
    """
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1200, "height": 900})
        page = context.new_page()
        page.set_default_timeout(15_000)
        yield page
        context.close()
        browser.close()
        from django.db import connections

        connections.close_all()
    os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


def _watch(page) -> list[str]:
    console: list[str] = []
    page.on(
        "console",
        lambda msg: console.append(msg.text) if "Content Security Policy" in msg.text else None,
    )
    page.add_init_script(_RECORD_VIOLATIONS)
    return console


def _violations(page, console: list[str]) -> list[str]:
    page.wait_for_timeout(300)  # let late violation events reach the listener
    found = [*page.evaluate("window.__csp"), *console]
    console.clear()
    return found


def _sign_in(page, base: str) -> None:
    get_user_model().objects.create_superuser("csp", "csp@example.invalid", "pw-123456")
    page.goto(f"{base}/admin/login/")
    page.fill("#id_username", "csp")
    page.fill("#id_password", "pw-123456")
    page.click("input[type=submit]")
    page.wait_for_selector("#user-tools")


def test_rater_pages_admin_and_api_docs_trip_no_csp(live_server, strict_page):
    page = strict_page
    study = launched_study(tasks_per_rater=2)
    code = study.experiments.get(slug="pw").code
    console = _watch(page)
    checked = []

    # the rater's way in and the task page, which fetches and draws a task
    page.goto(f"{live_server.url}/r/{code}/")
    page.locator("#consent").check()
    page.click("#start")
    page.locator("#options button:not([disabled])").first.wait_for()
    assert page.evaluate("getComputedStyle(document.body).fontFamily")  # rater.css applied
    checked.append(("rater task", _violations(page, console)))

    # the staff preview of a task (its progress bar width came from a style attribute)
    _sign_in(page, live_server.url)
    page.goto(f"{live_server.url}/r/{code}/preview/task/1/")
    assert page.evaluate("document.getElementById('progress-fill').style.width") == "50%"
    checked.append(("rater preview", _violations(page, console)))

    # the admin: study page and change list
    home = f"{live_server.url}/admin/studies/study/{study.pk}/change/"
    page.goto(home)
    page.wait_for_selector("#study-home")
    # Enter in the live monitor's filter filters in place (its form once had an inline onsubmit)
    page.locator("[data-role=filters] [name=q]").press("Enter")  # waits for a navigation
    assert page.url == home
    checked.append(("admin study page", _violations(page, console)))
    page.goto(f"{live_server.url}/admin/studies/study/")
    page.wait_for_selector("#result_list")
    checked.append(("admin change list", _violations(page, console)))

    # Swagger UI: its bundle, init script and the schema it fetches
    page.goto(f"{live_server.url}/api/docs/")
    page.wait_for_selector(".swagger-ui .opblock", timeout=30_000)
    checked.append(("api docs", _violations(page, console)))

    assert [(name, found) for name, found in checked if found] == []


class _OtherSite:
    """A page on another site (127.0.0.1; the app is on localhost) framing two of our pages."""

    def __init__(self, *frames: str) -> None:
        body = "".join(f'<iframe id="f{n}" src="{src}"></iframe>' for n, src in enumerate(frames))
        page = f"<!doctype html><title>other site</title>{body}".encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _frame_url(page, selector: str) -> str:
    return page.query_selector(selector).content_frame().url


def test_only_the_crowd_sites_may_frame_and_only_the_rater_pages(
    live_server, strict_page, settings
):
    page = strict_page
    assert urlparse(live_server.url).hostname == "localhost"  # another site than 127.0.0.1
    code = launched_study().experiments.get(slug="pw").code
    join, admin = f"{live_server.url}/r/{code}/", f"{live_server.url}/admin/login/"
    site = _OtherSite(join, admin)
    try:
        # a crowd site frames the rater page; the admin stays out of every frame
        settings.RATER_FRAME_ANCESTORS = [site.origin]
        # (goto returns after the load event, which waits for every frame, blocked or not)
        page.goto(f"{site.origin}/")
        page.frame_locator("#f0").locator("#consent").wait_for()
        assert _frame_url(page, "#f0") == join
        assert _frame_url(page, "#f1").startswith("chrome-error://")  # refused
        assert page.frame_locator("#f1").locator("#id_username").count() == 0

        # another site may not frame the rater page either
        settings.RATER_FRAME_ANCESTORS = ["https://worker.mturk.com"]
        page.goto(f"{site.origin}/")
        assert _frame_url(page, "#f0").startswith("chrome-error://")
        assert page.frame_locator("#f0").locator("#consent").count() == 0
    finally:
        site.close()
