"""Structured logs: JSON lines with the request or task id, raters' ids only hashed."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client

from apps.core.logs import ContextFilter, JsonFormatter, hash_rater_id, logging_config
from config.celery_app import app as celery_app
from tests.studies.helpers import launched_study

ROOT = Path(__file__).resolve().parents[2]
WORKER = "A3LOGWORKER0042"
PID = "65aa0f3e9a1b2c4d6e8f0a1b"


@pytest.fixture
def json_log():
    """Every log record from here on as one JSON line, parsed; as the json settings write them."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)

    def lines() -> list[dict]:
        text = stream.getvalue()
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    yield lines
    root.removeHandler(handler)
    root.setLevel(previous)


@pytest.mark.django_db
def test_a_log_line_of_a_request_carries_the_request_id_of_its_response(json_log):
    study = launched_study()
    code = study.experiments.get(slug="pw").code
    client = Client()
    client.get(f"/r/{code}/")
    joined = client.post(f"/r/{code}/", {"consent": "yes"})
    assert joined.status_code == 302
    [line] = [line for line in json_log() if line["message"].startswith("rater joined")]
    assert line["request_id"] == joined["X-Request-ID"]
    assert set(line) >= {"time", "level", "logger", "message", "request_id", "task_id"}
    assert line["level"] == "INFO" and line["logger"] == "apps.studies.services.raters"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", line["time"])


@pytest.mark.django_db
def test_a_not_found_page_is_logged_with_its_request_id(json_log):
    response = Client().get("/no-such-page/", HTTP_X_REQUEST_ID="edge-4f1c.77_a")
    assert response.status_code == 404
    assert response["X-Request-ID"] == "edge-4f1c.77_a"  # a sane id from the proxy is kept
    [line] = [line for line in json_log() if line["logger"] == "django.request"]
    assert line["request_id"] == "edge-4f1c.77_a" and line["level"] == "WARNING"


@pytest.mark.parametrize("sent", ["a b", "x" * 65, "id\nforged line", "ü", ""])
def test_an_unsafe_request_id_is_replaced_by_a_fresh_one(sent):
    response = Client().get("/healthz", HTTP_X_REQUEST_ID=sent)
    assert re.fullmatch(r"[0-9a-f]{32}", response["X-Request-ID"])


def test_each_request_gets_its_own_id_and_none_leaks_after_it(json_log):
    first, second = Client().get("/healthz"), Client().get("/healthz")
    assert first["X-Request-ID"] != second["X-Request-ID"]
    logging.getLogger("tests.core").info("between requests")
    assert json_log()[-1]["request_id"] == "-"


def test_exception_text_goes_into_the_line(json_log):
    try:
        raise ValueError("broken on purpose")
    except ValueError:
        logging.getLogger("tests.core").exception("it failed")
    [line] = json_log()
    assert line["message"] == "it failed" and line["level"] == "ERROR"
    assert "Traceback" in line["exc"] and "ValueError: broken on purpose" in line["exc"]


@celery_app.task(name="tests.core.logging_task")
def _logging_task() -> None:
    logging.getLogger("tests.core").info("inside the task")


def test_a_task_log_line_carries_the_task_id(json_log):
    result = _logging_task.apply()
    [line] = [line for line in json_log() if line["message"] == "inside the task"]
    assert line["task_id"] == result.id


# -- raters' worker ids -----------------------------------------------------------------


def test_hash_rater_id_is_keyed_short_and_stable(settings):
    first = hash_rater_id(WORKER)
    assert re.fullmatch(r"[0-9a-f]{16}", first) and first == hash_rater_id(WORKER)
    assert hash_rater_id("A3OTHER") != first
    settings.SECRET_KEY = "another-deployment-key"
    assert hash_rater_id(WORKER) != first
    assert hash_rater_id("") == hash_rater_id(None) == "-"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "worker"),
    [
        (f"?workerId={WORKER}&assignmentId=3ASSIGN0001&hitId=3HIT0001", WORKER),
        (f"?PROLIFIC_PID={PID}&STUDY_ID={PID}&SESSION_ID=60aa11bb22cc33dd44ee55ff", PID),
    ],
    ids=["mturk", "prolific"],
)
def test_a_crowd_join_logs_the_worker_id_hashed_never_in_clear(query, worker, json_log, caplog):
    study = launched_study()
    code = study.experiments.get(slug="fc").code
    client = Client()
    assert client.get(f"/r/{code}/{query}").status_code == 200
    assert client.post(f"/r/{code}/{query}", {"consent": "yes"}).status_code == 302
    text = "\n".join(json.dumps(line) for line in json_log())
    assert hash_rater_id(worker) in text
    assert worker not in text
    assert worker not in caplog.text


def test_the_gunicorn_access_line_leaves_out_the_query_string():
    # MTurk and Prolific put the worker id in the query string of the rater link.
    config = runpy.run_path(str(ROOT / "deploy" / "gunicorn.conf.py"))
    access = config["access_log_format"]
    assert "%(U)s" in access and "%({x-request-id}o)s" in access
    assert not any(atom in access for atom in ("%(r)s", "%(q)s", "%(f)s"))


# -- LOG_FORMAT -------------------------------------------------------------------------


def _settings_in_a_fresh_process(tmp_path, **env) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "LOG_FORMAT")}
    return subprocess.run(
        [sys.executable, "-c", "import config.settings as s; print(s.LOG_FORMAT)"],
        env={**clean, "PYTHONPATH": str(ROOT), "XAI_VAR_DIR": str(tmp_path), **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
    )


def test_log_format_follows_debug_unless_set(tmp_path):
    quiet = _settings_in_a_fresh_process(tmp_path, DEBUG="0", SECRET_KEY="k" * 50)
    assert quiet.stdout.strip() == "json", quiet.stderr
    debugging = _settings_in_a_fresh_process(tmp_path, DEBUG="1")
    assert debugging.stdout.strip() == "plain", debugging.stderr
    chosen = _settings_in_a_fresh_process(tmp_path, DEBUG="1", LOG_FORMAT="json")
    assert chosen.stdout.strip() == "json", chosen.stderr


def test_an_unknown_log_format_is_refused_by_name(tmp_path):
    refused = _settings_in_a_fresh_process(tmp_path, DEBUG="1", LOG_FORMAT="xml")
    assert refused.returncode != 0
    assert "LOG_FORMAT='xml' is not a log format; use json or plain" in refused.stderr
    with pytest.raises(ValueError, match="LOG_FORMAT='yaml'"):
        logging_config(log_format="yaml", level="INFO", quiet_kombu=False)


def test_the_json_config_writes_one_json_object_a_line():
    script = (
        "import logging, logging.config\n"
        "from apps.core.logs import logging_config\n"
        "logging.config.dictConfig(logging_config(log_format='json', level='INFO',"
        " quiet_kombu=True))\n"
        "logging.getLogger('xai.test').warning('two\\nlines')\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    [line] = run.stderr.splitlines()
    assert json.loads(line) | {"time": "t"} == {
        "time": "t",
        "level": "WARNING",
        "logger": "xai.test",
        "message": "two\nlines",
        "request_id": "-",
        "task_id": "-",
    }
