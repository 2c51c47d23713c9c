"""Faults of a real deployment, with real processes on loopback.

(a) PostgreSQL restarts while raters answer: no acknowledged answer is lost or
    doubled, and the site is ready again afterwards (persistent connections are
    health-checked, ``DB_CONN_HEALTH_CHECKS``).
(b) The GPU worker is SIGKILLed in the middle of a pipeline job: raters never see
    half a family, the stale-job reaper re-queues the job on a new worker, and it
    ends with exactly one set of stimuli, every file in the bucket.
(c) The object store goes away: ``/readyz`` says so, the rater API keeps taking
    answers (they need no storage) and the task page tells the rater what happened.
"""

from __future__ import annotations

import json
import random
import threading
import time

import pytest

from tests.stack.conftest import dump_logs
from tests.stack.harness import HttpRater, PrivateCluster, http_status, pg_query, wait_until

pytestmark = [pytest.mark.stack, pytest.mark.postgres, pytest.mark.worker]

BUILD_STUDY = (
    "from tests.studies.helpers import launched_study; "
    "s = launched_study(images_per_class={ipc}, answers_per_task=3, tasks_per_rater=1000); "
    "print('CODE', s.experiments.get(slug='pw').code)"
)


def _code(output: str) -> str:
    return next(line.split()[1] for line in output.splitlines() if line.startswith("CODE "))


def _stored_answers(database_url: str) -> list[tuple[str, int]]:
    return pg_query(
        database_url,
        "SELECT a.public_id::text, r.choice FROM studies_response r "
        "JOIN studies_assignment a ON a.id = r.assignment_id",
    )


@pytest.fixture
def private_postgres():
    cluster = PrivateCluster().init()
    try:
        cluster.pg_ctl("start")
        yield cluster
    finally:
        cluster.stop()


def test_postgres_restart_under_rater_load_loses_no_acknowledged_answer(
    private_postgres, stack_broker, make_host, web_port, tmp_path
):
    # given gunicorn on a private PostgreSQL and a study of 60 tasks x 3 answers
    database = private_postgres.createdb("xai_fault_pg")
    web = make_host("web", port=web_port, database_url=database, broker_url=stack_broker,
                    s3_endpoint=None)  # fmt: skip
    web.manage("migrate", "--noinput")
    code = _code(web.shell(BUILD_STUDY.format(ipc=3)))
    web.start_gunicorn(web_port)
    base = f"http://127.0.0.1:{web_port}"
    raters = [HttpRater(base, code) for _ in range(8)]
    acknowledged: list[tuple[str, int, int]] = []
    errors: list[BaseException] = []

    def answer(rater: HttpRater, seed: int) -> None:
        rng = random.Random(seed)
        try:
            rater.answer_all(lambda task: rng.randrange(len(task["options"])), acknowledged)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=answer, args=(r, i)) for i, r in enumerate(raters)]
    for thread in threads:
        thread.start()
    # when PostgreSQL restarts (fast shutdown: open connections are cut) mid-load
    wait_until(lambda: len(acknowledged) >= 40, timeout=120, what="40 acknowledged answers")
    restarted_at = len(acknowledged)
    private_postgres.pg_ctl("restart", "-m", "fast")
    for thread in threads:
        thread.join(300)

    # then every acknowledged answer is stored once, with the choice sent, all 180 of them
    assert errors == [], f"{errors!r}\n{dump_logs(tmp_path)}"
    assert restarted_at < 180 and not any(t.is_alive() for t in threads)
    stored = dict(_stored_answers(database))
    assert len(stored) == len(_stored_answers(database)) == 180
    assert {a for a, _, _ in acknowledged} == set(stored)
    assert all(stored[a] == c for a, c, _ in acknowledged), "a stored choice differs"
    per_task = pg_query(database, "SELECT task_id, count(*) FROM studies_response GROUP BY 1")
    assert {n for _, n in per_task} == {3}
    # and the site is ready again (readiness probes poll: wait for the next good answer)
    last: list[tuple[int, bytes]] = []

    def ready() -> bool:
        last.append(http_status(base + "/readyz", timeout=30))
        return last[-1][0] == 200

    wait_until(ready, timeout=60, every=2, what=lambda: f"/readyz 200, last answers {last[-2:]}")


# A small pipeline on generated shapes: seconds per step on two cores.
SMALL_FAMILY = {
    "images_per_class": 4, "image_size": 32, "display_size": 48,
    "gen_train_per_class": 30, "gen_val_per_class": 4, "gen_test_per_class": 8,
    "train_max_epochs": 8, "train_patience": 8, "target_accuracy": 0.6,
    "finetune_max_epochs": 1, "deletion_steps": 2,
}  # fmt: skip
MODEL_STEPS = ("train", "prune:", "attribute:")  # the gpu queue's steps


def test_worker_killed_mid_render_leaves_no_half_family_and_the_job_recovers(
    moto, stack_database, stack_broker, make_host, tmp_path
):
    hosts = {"database_url": stack_database, "broker_url": stack_broker,
             "s3_endpoint": moto.endpoint}  # fmt: skip
    web = make_host("web", **hosts)
    gpu = make_host("gpu", **hosts)
    gpu2 = make_host("gpu2", **hosts)  # the replacement host: an empty working copy
    web.manage("migrate", "--noinput")
    first = gpu.start_worker("first")
    # given a job running on the GPU host
    job_id = int(
        web.shell(
            "from apps.pipeline.services import family_create, job_create; "
            f"f = family_create(name='Killed', slug='killed', cprs=[2, 4], config={SMALL_FAMILY!r}); "
            "print(job_create(family=f).pk)"
        ).split()[-1]
    )

    def job() -> tuple[str, str, str]:
        return pg_query(
            stack_database, "SELECT status, step, error FROM pipeline_pipelinejob WHERE id = %s",
            (job_id,),
        )[0]  # fmt: skip

    # when the worker is SIGKILLed while the job is in its model steps
    def in_model_steps_or_over() -> bool:
        status, step, _ = job()
        return step.startswith(MODEL_STEPS) or status not in ("queued", "running")

    wait_until(in_model_steps_or_over, timeout=240, every=0.05,
               what=lambda: f"the job's model steps: job {job()}\n{dump_logs(tmp_path)}")  # fmt: skip
    status, step, _ = job()
    assert status == "running" and step.startswith(MODEL_STEPS), (status, step, first.log_tail())
    first.kill()
    killed_at = time.monotonic()

    # then raters can see no stimulus of the family: nothing half-imported
    stimuli_sql = (
        "SELECT s.file, s.image_id, s.variant_id, s.kind, s.method, s.catch "
        "FROM pipeline_stimulus s JOIN pipeline_modelvariant v ON v.id = s.variant_id "
        "JOIN pipeline_modelfamily f ON f.id = v.family_id WHERE f.slug = 'killed'"
    )
    assert pg_query(stack_database, stimuli_sql) == []
    assert job()[0] == "running"  # the row still says running: only the reaper can tell

    # when a new worker starts and the reaper finds the job without a heartbeat
    gpu2.start_worker("second")
    time.sleep(max(0.0, 7 - (time.monotonic() - killed_at)))  # > PIPELINE_STALE_SECONDS
    reaped = web.shell(
        "from apps.pipeline.services import jobs_reap_stale; print(jobs_reap_stale())",
        extra_env={"PIPELINE_STALE_SECONDS": "6"},  # three 2-second heartbeats
    )
    assert str(job_id) in reaped, reaped

    # then the job resumes on the new worker and succeeds
    wait_until(lambda: job()[0] in ("succeeded", "failed"), timeout=300, every=1,
               what="the re-queued job to finish")  # fmt: skip
    status, step, error = job()
    assert status == "succeeded", f"{status} at {step}: {error}\n{dump_logs(tmp_path)}"
    # with exactly one set of stimuli, each file in the bucket
    stimuli = pg_query(stack_database, stimuli_sql)
    assert stimuli
    natural_keys = [row[1:] for row in stimuli]
    assert len(natural_keys) == len(set(natural_keys)), "a stimulus was imported twice"
    in_bucket = set(moto.keys("media/"))
    missing = [f for f, *_ in stimuli if f"media/{f}" not in in_bucket]
    assert missing == [], f"{len(missing)} stimulus files not in the bucket, e.g. {missing[:3]}"
    attempts = pg_query(stack_database, "SELECT attempts FROM pipeline_pipelinejob")
    assert attempts and attempts[0][0] >= 1, attempts


def test_storage_down_readyz_names_it_and_answers_are_still_taken(
    moto, stack_database, stack_broker, make_host, web_port
):
    # given a study whose stimuli are in the bucket, and a rater holding a task
    web = make_host("web", port=web_port, database_url=stack_database,
                    broker_url=stack_broker, s3_endpoint=moto.endpoint)  # fmt: skip
    web.manage("migrate", "--noinput")
    code = _code(web.shell(BUILD_STUDY.format(ipc=1)))
    web.start_gunicorn(web_port)
    base = f"http://127.0.0.1:{web_port}"
    wait_until(lambda: http_status(base + "/readyz", timeout=30)[0] == 200, timeout=60,
               every=2, what="/readyz 200 before the fault")  # fmt: skip
    rater = HttpRater(base, code)
    _, step = rater.api("GET", "next")
    assert step["state"] == "task"

    # when the object store goes away
    moto.stop()

    # then /readyz is 503 and names each storage as down, the database as fine
    status, body = http_status(base + "/readyz", timeout=30)
    assert status == 503, body
    checks = json.loads(body)["checks"]
    storages = {name: state for name, state in checks.items() if name.startswith("storage")}
    assert storages and all(state.startswith("down") for state in storages.values()), checks
    assert checks.get("database") == "ok", checks
    # and an answer is still acknowledged and stored, with the next task to show
    task = step["task"]
    status, result = rater.api(
        "POST", "responses", {"assignment_id": task["assignment_id"], "choice": 0}
    )
    assert status in (200, 201), result
    assert result["next"]["state"] in ("task", "done")
    assert (task["assignment_id"], 0) in set(_stored_answers(stack_database))


IMAGE_ERROR = (
    "The images could not be loaded. Your answers so far are saved; please try again in a minute."
)


@pytest.mark.browser
def test_task_page_tells_the_rater_when_the_images_cannot_load(
    moto, stack_database, stack_broker, make_host, web_port
):
    from playwright.sync_api import sync_playwright

    from tests.conftest import CHROMIUM
    from tests.e2e.conftest import CHROMIUM_ARGS

    # given a study served by gunicorn (DEBUG off: static files collected) whose bucket is gone
    web = make_host("web", port=web_port, database_url=stack_database,
                    broker_url=stack_broker, s3_endpoint=moto.endpoint)  # fmt: skip
    web.manage("migrate", "--noinput")
    web.manage("collectstatic", "--noinput")
    code = _code(web.shell(BUILD_STUDY.format(ipc=1)))
    web.start_gunicorn(web_port)
    moto.stop()
    base = f"http://127.0.0.1:{web_port}"

    # when a rater joins and the task page tries to show the first task
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.set_default_timeout(20_000)
        page.goto(f"{base}/r/{code}/")
        page.check("#consent")
        page.click("#start")
        # then it says what happened, that the answers are safe, and offers a retry
        page.wait_for_selector("#retry-images")
        assert page.inner_text("#error").startswith(IMAGE_ERROR)
        assert page.is_hidden("#stimuli")
        # and the retry asks the server again (the images still fail: the same message)
        with page.expect_response(lambda r: r.url.endswith("/next")) as asked:
            page.click("#retry-images")
        assert asked.value.status == 200
        page.wait_for_selector("#retry-images")
        assert page.inner_text("#error").startswith(IMAGE_ERROR)
        browser.close()
