"""The whole stack on two "hosts" sharing nothing but PostgreSQL, Redis and a bucket.

Real processes on loopback: moto_server is the S3 store; gunicorn (2 workers) is
the web host, a Celery worker (gpu and cpu queues) the GPU host, each with its
own MEDIA_ROOT / PIPELINE_ROOT / RESULTS_ROOT; both STORAGE_BACKEND=s3 on the same
bucket, on a fresh PostgreSQL database and Redis db 14. The demo study is built
through Celery (``manage.py demo --no-serve``: the laptop demo's own family and
pipeline, run by the worker; a smaller model left CPR 32 without usable maps), answered
through the rater pages and API over HTTP, analysed by the results page (on the
worker), and its results zip downloaded by a staff session. The web host's local
folders must stay empty: every file went through the bucket.
"""

from __future__ import annotations

import io
import json
import random
import re
import time
import urllib.request
import zipfile

import pytest

from tests.stack.conftest import dump_logs
from tests.stack.harness import HttpRater, http_status, pg_query, wait_until

pytestmark = [pytest.mark.stack, pytest.mark.postgres, pytest.mark.worker]

DEMO_ADMIN_PASSWORD = "stack-admin-password-1"


class StaffSession:
    """The researcher's browser: logs into the admin, then reads staff pages."""

    def __init__(self, base: str, username: str, password: str) -> None:
        import http.cookiejar

        self.base = base
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )
        page = self.get("/admin/login/")[1].decode()
        csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        form = f"csrfmiddlewaretoken={csrf}&username={username}&password={password}&next=/admin/"
        request = urllib.request.Request(
            base + "/admin/login/", data=form.encode(), method="POST",
            headers={"Content-Type": "application/x-www-form-urlencoded",
                     "Referer": base + "/admin/login/"},
        )  # fmt: skip
        with self.opener.open(request, timeout=30) as response:
            assert response.url.endswith("/admin/"), f"admin login failed: {response.url}"

    def get(self, path: str, headers: dict | None = None) -> tuple[int, bytes, dict]:
        request = urllib.request.Request(self.base + path, headers=headers or {})
        try:
            with self.opener.open(request, timeout=120) as response:
                return response.status, response.read(), dict(response.headers)
        except urllib.error.HTTPError as err:
            return err.code, err.read(), dict(err.headers)


def test_demo_study_end_to_end_through_the_bucket(moto, stack_database, stack_broker, make_host,
                                                   web_port, tmp_path):  # fmt: skip
    started = time.monotonic()
    hosts = {"database_url": stack_database, "broker_url": stack_broker,
             "s3_endpoint": moto.endpoint}  # fmt: skip
    web = make_host("web", port=web_port, **hosts)
    gpu = make_host("gpu", **hosts)
    base = f"http://127.0.0.1:{web_port}"
    web.env["DEMO_ADMIN_PASSWORD"] = DEMO_ADMIN_PASSWORD

    # given a migrated database, the GPU host's worker and the web host's gunicorn
    web.manage("migrate", "--noinput")
    worker = gpu.start_worker()
    web.start_gunicorn(web_port)

    # when the demo is built: the pipeline runs on the worker, through Celery
    # (about 4 minutes on 2 quiet cores: it trains and prunes the demo CNN; far longer on a
    # loaded machine, hence the generous limit)
    out = web.manage(
        "demo", "--no-serve", "--images-per-class", "1", "--answers-per-task", "1", timeout=2400
    )
    built = time.monotonic()
    assert worker.alive(), worker.log_tail()
    codes = re.findall(r"/r/([A-Za-z0-9_-]+)/", out)
    assert len(codes) == 4, out

    # and raters answer every experiment over HTTP
    acknowledged: list[tuple[str, object, int]] = []
    rng = random.Random(13)
    checked_image = False
    for code in codes:
        for _ in range(50):  # new raters until the experiment has nothing left to give
            rater = HttpRater(base, code)
            status, step = rater.api("GET", "next")
            if step.get("state") != "task":
                break
            if not checked_image:  # a stimulus comes straight from the bucket, presigned
                task = step["task"]
                url = task.get("left_url") or task.get("map_url")
                assert url.startswith(moto.endpoint + "/xai-stack/media/"), url
                assert "X-Amz-Signature=" in url, url
                with urllib.request.urlopen(url, timeout=10) as response:
                    assert response.read(8) == b"\x89PNG\r\n\x1a\n"
                checked_image = True
            rater.answer_all(lambda task: rng.randrange(len(task["options"])), acknowledged)
        else:
            pytest.fail(f"experiment {code} still had tasks after 50 raters")
    answered = time.monotonic()
    stored = pg_query(
        stack_database,
        "SELECT a.public_id::text, r.choice FROM studies_response r "
        "JOIN studies_assignment a ON a.id = r.assignment_id",
    )
    # attention checks and consistency probes are answered too; they are stored apart
    checks = pg_query(
        stack_database,
        "SELECT public_id::text FROM studies_checkitem WHERE submitted_at IS NOT NULL",
    )
    assert checked_image and len(acknowledged) > 0
    assert {a for a, _, _ in acknowledged} == {a for a, _ in stored} | {c for (c,) in checks}

    # and the researcher opens the results page: the analysis runs on the worker
    staff = StaffSession(base, "admin", DEMO_ADMIN_PASSWORD)
    slug = "less-is-more-demo"

    def results_ready():
        status, body, _ = staff.get(f"/studies/{slug}/results/")
        assert status in (200, 202), (status, body[:2000], dump_logs(tmp_path))
        return status == 200 and b'id="computing"' not in body

    wait_until(results_ready, timeout=240, every=2, what="the analysis on the worker")
    status, archive, headers = staff.get(f"/studies/{slug}/results.zip")
    assert status == 200 and headers.get("Content-Type") == "application/zip", status
    with zipfile.ZipFile(io.BytesIO(archive)) as results_zip:
        names = results_zip.namelist()
        assert results_zip.testzip() is None
    assert any(name.endswith(".csv") for name in names), names

    # and the researcher API (token from `manage.py api_token`) lists the same analysis
    token = web.manage("api_token", "admin").strip().splitlines()[-1]
    request = urllib.request.Request(
        f"{base}/api/v1/studies/{slug}/results/", headers={"Authorization": f"Token {token}"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        listing = json.loads(response.read())
    assert listing["n_answers"] == len(stored) and listing["files"], listing

    # then nothing was written to the web host's own folders, all went to the bucket
    assert web.files_in_local_dirs() == []
    for prefix in ("media/", "pipeline/", "results/"):
        assert moto.keys(prefix), f"nothing under {prefix} in the bucket"
    # and the site reports itself ready
    status, body = http_status(base + "/readyz")
    assert status == 200, body
    print(
        f"\nstack smoke: build {built - started:.0f} s, {len(acknowledged)} answers in "
        f"{answered - built:.0f} s, analysis+download {time.monotonic() - answered:.0f} s, "
        f"total {time.monotonic() - started:.0f} s"
    )
