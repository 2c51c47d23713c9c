"""Real processes on loopback for the stack tests: moto_server (S3), gunicorn (the
"web host"), Celery workers (the "GPU host"), PostgreSQL databases and a private
PostgreSQL cluster, and an HTTP rater that does what the task page does.

Nothing here imports the project's Django settings for the stack: every process
gets its environment from :class:`Host` (``DEBUG=0`` over plain HTTP), and the test
reads the stack's database with psycopg and its bucket with boto3.
"""

from __future__ import annotations

import html
import http.client
import http.cookiejar
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PG_BIN = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
BUCKET = "xai-stack"
# moto accepts any key; botocore insists on having one.
S3_KEYS = {"AWS_ACCESS_KEY_ID": "stack-test", "AWS_SECRET_ACCESS_KEY": "stack-test-secret"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_status(url: str, timeout: float = 5) -> tuple[int, bytes]:
    """Status and body of a GET; (0, b"") when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()
    except (OSError, http.client.HTTPException):
        return 0, b""


def wait_until(predicate, *, timeout: float, every: float = 0.25, what="condition"):
    """Poll ``predicate`` until it returns a truthy value; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            described = what() if callable(what) else what
            raise AssertionError(f"gave up after {timeout:.0f} s waiting for {described}")
        time.sleep(every)


class Process:
    """A child process with its own log file and process group (killed as a whole)."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("a")
        self.popen = subprocess.Popen(
            argv, env=env, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-chars:]

    def kill(self) -> None:
        """SIGKILL the whole group at once: the host is lost, nothing cleans up."""
        if self.alive():
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(10)

    def stop(self, timeout: float = 20) -> None:
        if self.alive():
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()


@dataclass
class Host:
    """One machine of the deployment: its environment and its own local folders."""

    name: str
    root: Path
    env: dict[str, str]
    log_dir: Path
    processes: list[Process] = field(default_factory=list)

    @property
    def local_dirs(self) -> dict[str, Path]:
        return {k: Path(self.env[k]) for k in ("MEDIA_ROOT", "PIPELINE_ROOT", "RESULTS_ROOT")}

    def files_in_local_dirs(self) -> list[str]:
        return sorted(
            str(p) for d in self.local_dirs.values() if d.exists() for p in d.rglob("*")
            if p.is_file()
        )  # fmt: skip

    def manage(self, *args: str, timeout: float = 600, extra_env: dict | None = None) -> str:
        """``python manage.py ...`` on this host; fails with its output on a non-zero exit."""
        result = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env={**self.env, **(extra_env or {})},
            capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip
        if result.returncode != 0:
            raise AssertionError(
                f"manage.py {' '.join(args)} on {self.name} exited {result.returncode}:\n"
                f"{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
            )
        return result.stdout

    def shell(self, code: str, **kw) -> str:
        return self.manage("shell", "-c", code, **kw)

    def start(self, name: str, argv: list[str]) -> Process:
        process = Process(f"{self.name}-{name}", argv, self.env, self.log_dir)
        self.processes.append(process)
        return process

    def start_gunicorn(self, port: int, workers: int = 2) -> Process:
        process = self.start(
            "gunicorn",
            [sys.executable, "-m", "gunicorn", "config.wsgi:application", "-w", str(workers),
             "-k", "sync", "-b", f"127.0.0.1:{port}", "--timeout", "60",
             "--graceful-timeout", "5"],
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        try:
            wait_until(lambda: http_status(base + "/healthz")[0] == 200 or None, timeout=60,
                       what=f"gunicorn on {base}/healthz")  # fmt: skip
        except AssertionError:
            raise AssertionError(f"gunicorn did not come up:\n{process.log_tail()}") from None
        return process

    def start_worker(self, tag: str = "w", queues: str = "gpu,cpu") -> Process:
        # solo pool: the task runs in this very process, so a SIGKILL lands mid-task.
        return self.start(
            f"celery-{tag}",
            [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", queues,
             "-c", "1", "--pool", "solo", "-n", f"{self.name}-{tag}-{os.getpid()}@%h",
             "--without-heartbeat", "--without-gossip", "--without-mingle", "-l", "INFO"],
        )  # fmt: skip

    def stop_all(self) -> None:
        for process in reversed(self.processes):
            process.stop()


def host_env(
    root: Path, *, database_url: str, broker_url: str, s3_endpoint: str | None, port: int = 0
) -> dict[str, str]:
    """The environment of one host (production settings over plain-HTTP loopback)."""
    env = {
        key: value for key, value in os.environ.items()
        if not key.startswith(("AWS_", "DJANGO_", "XAI_", "PIPELINE_", "STORAGE_"))
        and key not in ("DATABASE_URL", "CELERY_BROKER_URL", "MEDIA_ROOT", "RESULTS_ROOT")
    }  # fmt: skip
    for sub in ("media", "pipeline", "results", "static", "var"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    env.update(
        DEBUG="0",
        SECRET_KEY="stack-test-secret-key-" + "x" * 40,
        COOKIES_SECURE="0",
        SECURE_SSL_REDIRECT="0",
        SECURE_HSTS_SECONDS="0",
        ALLOWED_HOSTS="127.0.0.1,localhost",
        PUBLIC_BASE_URL=f"http://127.0.0.1:{port}" if port else "http://127.0.0.1",
        DATABASE_URL=database_url,
        CELERY_BROKER_URL=broker_url,
        MEDIA_ROOT=str(root / "media"),
        PIPELINE_ROOT=str(root / "pipeline"),
        RESULTS_ROOT=str(root / "results"),
        STATIC_ROOT=str(root / "static"),
        XAI_VAR_DIR=str(root / "var"),
        SERVE_MEDIA="0",
        LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
        # Quick reconnects in these tests; production keeps the defaults.
        PIPELINE_HEARTBEAT_SECONDS="2",
    )
    if s3_endpoint:
        env.update(
            STORAGE_BACKEND="s3",
            AWS_STORAGE_BUCKET_NAME=BUCKET,
            AWS_S3_ENDPOINT_URL=s3_endpoint,
            AWS_S3_REGION_NAME="us-east-1",
            **S3_KEYS,
        )
    else:
        env["STORAGE_BACKEND"] = "local"
    return env


class MotoServer:
    """moto's standalone S3 server on a free loopback port, with the bucket created."""

    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.log_dir = log_dir
        self.process: Process | None = None

    def start(self) -> MotoServer:
        self.process = Process(
            "moto", [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(self.port)],
            {**os.environ, **S3_KEYS}, self.log_dir,
        )  # fmt: skip
        wait_until(lambda: http_status(self.endpoint + "/moto-api/")[0] == 200 or None,
                   timeout=30, what="moto_server")  # fmt: skip
        return self

    def client(self):
        import boto3

        return boto3.client(
            "s3", endpoint_url=self.endpoint, region_name="us-east-1",
            aws_access_key_id=S3_KEYS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=S3_KEYS["AWS_SECRET_ACCESS_KEY"],
        )  # fmt: skip

    def create_bucket(self) -> None:
        self.client().create_bucket(Bucket=BUCKET)

    def keys(self, prefix: str = "") -> list[str]:
        paginator = self.client().get_paginator("list_objects_v2")
        return [
            obj["Key"]
            for page in paginator.paginate(Bucket=BUCKET, Prefix=prefix)
            for obj in page.get("Contents", [])
        ]

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.stop()


def pg_binary(name: str) -> str | None:
    for directory in reversed(PG_BIN):
        if (directory / name).exists():
            return str(directory / name)
    return shutil.which(name)


class PrivateCluster:
    """A PostgreSQL cluster of the test's own (initdb into a temporary folder, its
    own port, its socket in /tmp): restarted by the test, never the one on 5432."""

    def __init__(self) -> None:
        # Its own folder directly under /tmp: the postgres user cannot enter pytest's
        # private tmp_path (mode 0700, owned by the user running the tests).
        self.root = Path(tempfile.mkdtemp(prefix="xai-stack-pg-"))
        self.data = self.root / "pgdata"
        self.port = free_port()
        self.log = self.root / "postgres.log"

    def _as_postgres(self, *argv: str) -> subprocess.CompletedProcess:
        command = list(argv)
        if os.geteuid() == 0:  # initdb and the server refuse to run as root
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise AssertionError(
                f"{' '.join(command)} exited {result.returncode}:\n{result.stdout}\n"
                f"{result.stderr}\n{log}"
            )
        return result

    def init(self) -> PrivateCluster:
        self.root.chmod(0o755)
        self.log.touch()
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
            shutil.chown(self.log, "postgres")
        self._as_postgres(pg_binary("initdb"), "-D", str(self.data), "-U", "postgres",
                          "--auth=trust", "-E", "UTF8")  # fmt: skip
        return self

    def pg_ctl(self, *args: str) -> None:
        self._as_postgres(
            pg_binary("pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60",
            "-o", f"-p {self.port} -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off", *args,
        )  # fmt: skip

    def createdb(self, name: str) -> str:
        subprocess.run(
            [pg_binary("createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
             name], check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        return f"postgres://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self.pg_ctl("stop", "-m", "immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


class HttpRater:
    """One browser on the rater pages: cookies, the join form, the task page's token,
    then the JSON API. Retries a request the server did not answer (connection
    refused or dropped, a 5xx): resubmitting an answer is safe, the server dedups."""

    def __init__(self, base: str, code: str, *, retries: int = 120) -> None:
        self.base, self.code, self.retries = base, code, retries
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )
        page = self._retrying(lambda: self.request("GET", f"/r/{code}/"))[1].decode()
        csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        assert csrf, f"no CSRF token on the join page of {code}"
        form = f"csrfmiddlewaretoken={csrf.group(1)}&consent=yes".encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded",
                   "Referer": f"{base}/r/{code}/"}  # fmt: skip
        status, body = self._retrying(lambda: self.request("POST", f"/r/{code}/", form, headers))
        task_page = self._through_practice(body.decode(), headers)
        token = re.search(r'data-token="([^"]+)"', task_page)
        assert token, f"join of {code} answered {status} without a rater token"
        self.token = token.group(1)
        self.task_page = task_page

    def _through_practice(self, page: str, headers: dict) -> str:
        """Answer the practice trials (the first option each time) until the task page."""
        for _ in range(10):
            form = re.search(r'<form method="post" action="([^"]+)" id="practice-form"', page)
            if form is None:
                return page
            action = html.unescape(form.group(1))
            fields = {}
            for name in ("token", "number", "choice"):
                found = re.search(rf'name="{name}" value="([^"]+)"', page)
                assert found, f"practice page of {self.code} has no {name}"
                fields[name] = html.unescape(found.group(1))
            data = urllib.parse.urlencode(fields).encode()
            self._retrying(lambda: self.request("POST", action, data, headers))  # noqa: B023
            page = self._retrying(lambda: self.request("GET", action))[1].decode()  # noqa: B023
        raise AssertionError(f"still on the practice page of {self.code} after 10 trials")

    def request(self, method: str, path: str, body: bytes | None = None, headers=None):
        request = urllib.request.Request(
            self.base + path, data=body, method=method, headers=headers or {}
        )
        try:
            with self.opener.open(request, timeout=30) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()

    def _retrying(self, send):
        last = None
        for _ in range(self.retries):
            try:
                status, body = send()
            except (OSError, http.client.HTTPException) as exc:  # refused, reset, timed out
                last = exc
                time.sleep(0.25)
                continue
            if status >= 500:
                last = f"HTTP {status}"
                time.sleep(0.25)
                continue
            return status, body
        raise AssertionError(f"{self.base}: no answer after {self.retries} tries ({last})")

    def api(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"X-Rater-Token": self.token, "Content-Type": "application/json"}
        status, payload = self._retrying(
            lambda: self.request(method, f"/api/r/{self.code}/{path}", data, headers)
        )
        return status, json.loads(payload or b"{}")

    def answer_all(self, choose, acknowledged: list, *, max_answers: int = 10_000) -> int:
        """Answer until the experiment says done; ``choose(task) -> choice``. Appends
        ``(assignment_id, choice, status)`` of each acknowledged (200/201) answer."""
        status, step = self.api("GET", "next")
        answered = 0
        while answered < max_answers:
            state = step.get("state")
            if state == "task":
                task = step["task"]
                body = {"assignment_id": task["assignment_id"], "choice": choose(task),
                        "response_ms": 1500}  # fmt: skip
                status, result = self.api("POST", "responses", body)
                if status in (200, 201):
                    acknowledged.append((body["assignment_id"], body["choice"], status))
                    answered += 1
                    step = result["next"]
                else:  # 409 (lease lost, ...): ask again
                    status, step = self.api("GET", "next")
            elif state in ("wait", "paused"):
                time.sleep(0.1)
                status, step = self.api("GET", "next")
            else:
                return answered
        return answered


def pg_query(url: str, sql: str, params: tuple = ()) -> list[tuple]:
    import psycopg

    with psycopg.connect(url.replace("postgres://", "postgresql://", 1), autocommit=True) as conn:
        return conn.execute(sql, params).fetchall()
