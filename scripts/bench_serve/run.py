"""make bench-serve: the rater loop under load, against Turkle 3.1.0 on the same machine.

One invocation, everything side by side on one PostgreSQL server (see README.md):

1. (re)create the database ``xai_crowd_bench`` and migrate it;
2. build the studies (build_study.py): N pairwise tasks × 5 answers for the closed
   loop, a larger one for the think-time run (so it cannot drain), and the
   100,000-task study; then VACUUM ANALYZE + CHECKPOINT so no run pays for the builds;
3. start gunicorn (4 sync workers, DEBUG=0, persistent DB connections) on 127.0.0.1;
4. closed loop: R raters join, then answer with no think time until the study drains;
5. Turkle right after it: the harness in turkle/ (its own venv, same server, same N, R);
6. think time ("open loop"): R raters, exponential think time of mean R / rate, for
   --duration seconds; then the study is closed and every rater must reach the end page;
7. the 100,000-task study: closed loop for --big-duration seconds, then closed likewise;
8. integrity checks (integrity.py) after each of ours; one summary table; JSON
   under bench-out/serve/<timestamp>/.

Timings are printed with the targets they are meant for, never asserted. The exit
status is 1 on an integrity fault of ours (over quota, duplicates, acknowledged but
missing, raters who did not reach the done page, …), 2 when a step crashed, else 0.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import integrity
import psycopg

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
TURKLE = HERE / "turkle"
DB_NAME = "xai_crowd_bench"
ANSWERS_PER_TASK = 5
BIG_PAIRS = 10  # the 10 pairs of 5 variants: 100,000 tasks = 10 pairs × 10,000 images
SERVER_ENV = {
    "DEBUG": "0",
    "SECRET_KEY": "bench-serve-not-secret-loopback-only",
    "ALLOWED_HOSTS": "127.0.0.1,localhost",
    "COOKIES_SECURE": "0",
    "SECURE_SSL_REDIRECT": "0",
    "DB_CONN_MAX_AGE": "600",
    "LOG_LEVEL": "WARNING",
    "DJANGO_SETTINGS_MODULE": "config.settings",
}
QUICK = {
    "raters": 20,
    "tasks": 100,
    "offered_rate": 20.0,
    "duration": 10.0,
    "skip_big": True,
    "skip_turkle": True,
}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help=f"smoke run: {QUICK}")
    p.add_argument("--raters", type=int, default=200)
    p.add_argument("--tasks", type=int, default=1000, help="closed-loop study (multiple of 10)")
    p.add_argument("--big-tasks", type=int, default=100_000, help=f"multiple of {10 * BIG_PAIRS}")
    p.add_argument("--offered-rate", type=float, default=100.0, help="think-time run, answers/s")
    p.add_argument("--duration", type=float, default=60.0, help="think-time run length (s)")
    p.add_argument("--big-duration", type=float, default=45.0, help="100k run length (s)")
    p.add_argument("--closed-cap", type=float, default=600.0, help="closed loop gives up after")
    p.add_argument("--port", type=int, default=8100, help="ours; Turkle gets PORT + 1")
    p.add_argument("--skip-turkle", action="store_true")
    p.add_argument("--skip-big", action="store_true")
    p.add_argument("--turkle-conn-max-age", type=int, default=600, help="its best setting")
    p.add_argument("--turkle-duration", type=int, default=300, help="harness cap (s)")
    p.add_argument(
        "--client-python",
        default=os.environ.get("BENCH_CLIENT_PYTHON", "/tmp/turkle-venv/bin/python"),
        help="an interpreter with aiohttp (the Turkle venv has it)",
    )
    p.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432", help="server URL")
    p.add_argument("--out", type=Path, help="default bench-out/serve/<timestamp>")
    args = p.parse_args()
    if args.quick:
        p.set_defaults(**QUICK)
        args = p.parse_args()  # explicit flags still win over --quick's values
    return args


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def uv() -> list[str]:
    found = shutil.which("uv")
    return [found] if found else [sys.executable, "-m", "uv"]


def _tee(stream, sink, log_file) -> threading.Thread:
    """Copy a child's output to our stderr and its log file as it comes."""

    def pump() -> None:
        with open(log_file, "a") as f:
            for line in stream:
                sink.write(line)
                sink.flush()
                f.write(line)

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    return thread


class Bench:
    def __init__(self, args: argparse.Namespace, out: Path):
        self.args = args
        self.out = out
        self.db_url = f"{args.pg}/{DB_NAME}"
        self.env = {**os.environ, **SERVER_ENV, "DATABASE_URL": self.db_url}
        self.base = f"http://127.0.0.1:{args.port}"

    # -- database and studies -------------------------------------------------------------

    def recreate_db(self) -> None:
        with psycopg.connect(f"{self.args.pg}/postgres", autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {DB_NAME}")
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
            cwd=ROOT,
            env=self.env,
            check=True,
        )
        log(f"database {DB_NAME} created and migrated in {time.perf_counter() - t0:.1f}s")

    def django_script(self, *argv: str) -> dict:
        """Run build_study.py with the bench database; its last stdout line is JSON."""
        done = subprocess.run(
            [sys.executable, str(HERE / "build_study.py"), *argv],
            cwd=ROOT,
            env=self.env,
            check=True,
            stdout=subprocess.PIPE,
            text=True,
        )
        return json.loads(done.stdout.strip().splitlines()[-1])

    def build(self, slug: str, tasks: int, pairs: int) -> dict:
        return self.django_script(
            "build", "--slug", slug, "--tasks", str(tasks), "--pairs", str(pairs)
        )

    def settle_db(self) -> None:
        """After the bulk builds: fresh planner statistics, no dirty pages left to flush."""
        t0 = time.perf_counter()
        with psycopg.connect(self.db_url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
            conn.execute("CHECKPOINT")
        log(f"VACUUM ANALYZE + CHECKPOINT in {time.perf_counter() - t0:.1f}s")

    def settle_after_turkle(self) -> None:
        """Turkle's run leaves the server autovacuum work (its tables and ours) that would
        otherwise land in the middle of our next timed run: done now, outside any timing."""
        t0 = time.perf_counter()
        turkle_db = os.environ.get("TB_DB_NAME", "turkle_bench")
        for url in (self.db_url, f"{self.args.pg}/{turkle_db}"):
            try:
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute("VACUUM ANALYZE")
            except psycopg.OperationalError as exc:
                log(f"  (no VACUUM of {url}: {exc})")
        with psycopg.connect(self.db_url, autocommit=True) as conn:
            conn.execute("CHECKPOINT")
        log(f"after Turkle: VACUUM ANALYZE + CHECKPOINT in {time.perf_counter() - t0:.1f}s")

    # -- our load runs --------------------------------------------------------------------

    def load(
        self, name: str, study: dict, *, think_mean: float, duration: float, timed: bool, pgid: int
    ) -> dict:
        """One load-client run; for a timed run, close the study when the load stops.

        ``pgid`` is the server's process group, for the CPU split of the run.
        """
        run_dir = self.out / name
        run_dir.mkdir(parents=True, exist_ok=True)
        cmd = [
            self.args.client_python,
            str(HERE / "loadclient.py"),
            "--base",
            self.base,
            "--code",
            study["code"],
            "--raters",
            str(self.args.raters),
            "--think-mean",
            str(think_mean),
            "--duration",
            str(duration),
            "--out",
            str(run_dir),
        ]
        if timed:
            cmd.append("--await-close")
        log(f"\n== {name}: {' '.join(cmd[1:])}")
        loadavg_before = loadavg()
        cpu_before = CpuSnapshot.take()
        proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        pump = _tee(proc.stderr, sys.stderr, run_dir / "client.log")
        for line in proc.stdout:
            if line.strip() == "load-done":
                closed = self.django_script("close", "--code", study["code"])
                log(f"  load stopped; study {closed['study_id']} is {closed['status']}")
                proc.stdin.write("closed\n")
                proc.stdin.flush()
        proc.wait()
        pump.join()
        cpu = CpuSnapshot.take().split_since(cpu_before, server_pgid=pgid)
        if proc.returncode:
            raise RuntimeError(f"{name}: load client exited {proc.returncode}")
        client = json.loads((run_dir / "summary.json").read_text())
        report = integrity.check(
            database_url=self.db_url,
            code=study["code"],
            acknowledged=run_dir / "acknowledged.jsonl",
            drained=not timed,
        )
        (run_dir / "integrity.json").write_text(json.dumps(report, indent=2) + "\n")
        return {
            "study": study,
            "client": client,
            "integrity": report,
            "loadavg_before": loadavg_before,
            "loadavg_after": loadavg(),
            "cpu_s": cpu,
        }

    # -- Turkle ---------------------------------------------------------------------------

    def turkle_setup(self) -> None:
        # A fresh database every run, as ours gets: Turkle's accept query slows down as
        # batches pile up (measured over five runs on one database: 37.6 -> 27.8 answers/s).
        log("\n== Turkle setup on a fresh database: RESET_DB=1 turkle/setup.sh")
        subprocess.run(
            ["bash", str(TURKLE / "setup.sh")],
            check=True,
            stdout=sys.stderr,
            env={**os.environ, "RESET_DB": "1"},
        )

    def turkle(self) -> dict:
        name = f"u{self.args.raters}-conn{self.args.turkle_conn_max_age}"
        env = {
            **os.environ,
            "OUT_DIR": str(self.out / "turkle"),
            "TB_CONN_MAX_AGE": str(self.args.turkle_conn_max_age),
            "PORT": str(self.args.port + 1),
            "TASKS": str(self.args.tasks),
            "ASSIGN": str(ANSWERS_PER_TASK),
        }
        cmd = ["bash", str(TURKLE / "run_bench.sh"), name, str(self.args.raters)]
        cmd.append(str(self.args.turkle_duration))
        log(f"\n== Turkle 3.1.0: {' '.join(cmd[1:])}")
        run_dir = self.out / "turkle" / name
        run_dir.mkdir(parents=True, exist_ok=True)
        proc = subprocess.Popen(
            cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        cpu_before = CpuSnapshot.take()
        pump = _tee(proc.stdout, sys.stderr, run_dir / "run_bench.log")
        proc.wait()
        pump.join()
        cpu = CpuSnapshot.take().split_since(cpu_before, server_pgid=-1)
        if proc.returncode:
            raise RuntimeError(f"turkle/run_bench.sh exited {proc.returncode}")
        del cpu["server"]  # Turkle's gunicorn is a child of the harness: counted in "client"
        self.settle_after_turkle()
        return {
            "name": name,
            "cpu_s": cpu,
            "summary": json.loads((run_dir / "summary.json").read_text()),
            "integrity": json.loads((run_dir / "integrity.json").read_text()),
        }


class Gunicorn:
    """Our server as deployed: gunicorn, 4 sync workers; stopped (its process group) on exit."""

    def __init__(self, bench: Bench):
        self.bench = bench
        self.proc: subprocess.Popen | None = None
        self.log_path = bench.out / "gunicorn.log"

    def __enter__(self) -> Gunicorn:
        port = self.bench.args.port
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                raise RuntimeError(f"something already listens on 127.0.0.1:{port}; use --port")
        cmd = [*uv(), "run", "--frozen", "gunicorn", "config.wsgi:application"]
        cmd += ["-w", "4", "-k", "sync", "-b", f"127.0.0.1:{port}", "--backlog", "2048"]
        cmd += ["--timeout", "60"]
        self.command = " ".join(cmd[1:])
        log(f"\n== starting {self.command}")
        with open(self.log_path, "a") as f:
            self.proc = subprocess.Popen(
                cmd,
                cwd=ROOT,
                env=self.bench.env,
                stdout=f,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stopped as a whole
            )
        self.pgid = self.proc.pid
        try:
            self._wait_ready()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited {self.proc.returncode}; see {self.log_path}")
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"{self.bench.base}/", timeout=2) as r,
            ):
                if r.status == 200:
                    log(f"gunicorn answers on {self.bench.base}")
                    return
            time.sleep(0.5)
        raise RuntimeError(f"gunicorn did not answer within 60s; see {self.log_path}")

    def __exit__(self, *exc) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        log("gunicorn stopped")

    def error_lines(self) -> int:
        """Lines of the server log that report an error (a 500's traceback, a worker timeout)."""
        if not self.log_path.exists():
            return 0
        text = self.log_path.read_text(errors="replace").splitlines()
        return sum(1 for line in text if "ERROR" in line or "CRITICAL" in line)


class CpuSnapshot:
    """CPU seconds used so far: the machine, each live process, and our reaped children.

    The difference of two snapshots splits a run's CPU into our server (its process
    group), PostgreSQL (every ``postgres`` process), the bench client (run.py's
    children: the load client and the close script) and everything else, which
    shows when a neighbour took CPU from the run.
    """

    TICK = os.sysconf("SC_CLK_TCK")

    def __init__(self, busy: float, procs: dict[int, tuple[str, int, float]], children: float):
        self.busy, self.procs, self.children = busy, procs, children
        self.at = time.monotonic()

    @classmethod
    def take(cls) -> CpuSnapshot:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
        ticks = [int(x) for x in fields]
        user, nice, system, _idle, _iowait, irq, softirq = ticks[:7]
        busy = (user + nice + system + irq + softirq) / cls.TICK
        procs = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                text = stat.read_text()
                comm = text[text.index("(") + 1 : text.rindex(")")]
                rest = text[text.rindex(")") + 2 :].split()
                # utime + stime + cutime + cstime: a postmaster's children are the
                # backends, so those that ended during the run still count
                procs[int(stat.parent.name)] = (
                    comm,
                    int(rest[2]),
                    sum(int(x) for x in rest[11:15]) / cls.TICK,
                )
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return cls(busy, procs, usage.ru_utime + usage.ru_stime)

    def split_since(self, before: CpuSnapshot, *, server_pgid: int) -> dict[str, float]:
        def used(pid: int) -> float:
            old = before.procs.get(pid)
            return self.procs[pid][2] - (old[2] if old and old[0] == self.procs[pid][0] else 0)

        server = sum(used(pid) for pid, (_, pgrp, _) in self.procs.items() if pgrp == server_pgid)
        postgres = sum(used(pid) for pid, (comm, _, _) in self.procs.items() if comm == "postgres")
        client = self.children - before.children
        busy = self.busy - before.busy
        split = {"wall": self.at - before.at, "machine_busy": busy, "server": server}
        split |= {"postgres": postgres, "client": client}
        split["other"] = busy - server - postgres - client
        return {k: round(v, 1) for k, v in split.items()}


def loadavg() -> list[str]:
    return Path("/proc/loadavg").read_text().split()[:3]


def machine_info(args: argparse.Namespace) -> dict:
    def sh(*cmd: str) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT).stdout.strip()
        except OSError:
            return ""

    with psycopg.connect(f"{args.pg}/postgres") as conn:
        settings = {
            name: conn.execute(f"SHOW {name}").fetchone()[0]
            for name in (
                "server_version",
                "max_connections",
                "shared_buffers",
                "synchronous_commit",
            )
        }
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next(
        (line.split(":", 1)[1].strip() for line in cpuinfo if "model name" in line),
        platform.processor(),
    )
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "loadavg_before": loadavg(),
        "python": platform.python_version(),
        "postgres": settings,
        "git_commit": sh("git", "rev-parse", "HEAD"),
        "git_dirty": bool(sh("git", "status", "--porcelain", "--untracked-files=no")),
    }


# -- summary ------------------------------------------------------------------------------


def _ours_row(run: dict | None) -> dict | None:
    if run is None:
        return None
    c, i = run["client"], run["integrity"]
    lat = c["answer_latency_ms"]
    return {
        "answers": c["answers_saved_by_client"],
        "answers_per_s": c["answers_per_s"],
        "steady_per_s": c["answers_per_s_steady_10_90pct"],
        "p50_ms": lat["p50"],
        "p95_ms": lat["p95"],
        "p99_ms": lat["p99"],
        "http_409": c["http_409"],
        "http_5xx": c["http_by_class"].get("5xx", 0),
        "client_errors": sum(c["errors"].values()),
        "raters_not_done": c["raters_not_done"],
        "over_quota_tasks": i["over_quota_tasks"],
        "duplicates": i["duplicate_responses"] + i["duplicate_assignments"],
        "ack_missing": i["acknowledged_missing"],
        "cpu": "{server:.0f}/{postgres:.0f}/{client:.0f}/{other:.0f}".format(**run["cpu_s"]),
        "cpu_ms_per_answer": _per_answer(run["cpu_s"], c["answers_saved_by_client"]),
    }


def _per_answer(cpu: dict, answers: int) -> float | None:
    """Our server's and PostgreSQL's CPU per stored answer: barely moved by a busy neighbour."""
    return round((cpu["server"] + cpu["postgres"]) * 1000 / answers, 2) if answers else None


def _turkle_row(run: dict | None) -> dict | None:
    if run is None:
        return None
    s, i = run["summary"], run["integrity"]
    lat = s["pair_latency_s"]
    ms = {k: None if lat[k] is None else round(lat[k] * 1000, 2) for k in ("p50", "p95", "p99")}
    return {
        "answers": s["answers_saved_by_client"],
        "answers_per_s": s["answers_per_s"],
        "steady_per_s": s["answers_per_s_steady_10_90pct"],
        "p50_ms": ms["p50"],
        "p95_ms": ms["p95"],
        "p99_ms": ms["p99"],
        "http_409": sum(v for k, v in s["status_counts"].items() if k.endswith(" 409")),
        "http_5xx": s["http_5xx"],
        "client_errors": sum(s["errors"].values()),
        "raters_not_done": s["users"] - s["users_finished_no_more_tasks"],
        "over_quota_tasks": i["over_assignment_tasks_any_gt_n"],
        "duplicates": i["duplicate_user_task_pairs"],
        "ack_missing": i["lost_answers"],
        "cpu": "{client:.0f}/{postgres:.0f}/incl./{other:.0f}".format(**run["cpu_s"]),
        "cpu_ms_per_answer": None,
    }


ROWS = [
    ("answers stored (client)", "answers", "{:,}"),
    ("answers/s (start→last)", "answers_per_s", "{:,.1f}"),
    ("answers/s steady 10–90 %", "steady_per_s", "{:,.1f}"),
    ("latency p50 ms", "p50_ms", "{:,.1f}"),
    ("latency p95 ms", "p95_ms", "{:,.1f}"),
    ("latency p99 ms", "p99_ms", "{:,.1f}"),
    ("409 responses", "http_409", "{:,}"),
    ("5xx responses", "http_5xx", "{:,}"),
    ("client errors", "client_errors", "{:,}"),
    ("raters not at done page", "raters_not_done", "{:,}"),
    ("over-quota tasks", "over_quota_tasks", "{:,}"),
    ("duplicates", "duplicates", "{:,}"),
    ("acknowledged but missing", "ack_missing", "{:,}"),
    ("CPU s app/pg/client/other", "cpu", "{}"),
    ("app+pg CPU ms per answer", "cpu_ms_per_answer", "{:.2f}"),
]


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


def _vs(a: float | None, b: float | None) -> str:
    return f"{'—' if a is None else a} vs {'—' if b is None else b} answers/s"


def targets(results: dict, args: argparse.Namespace) -> list[dict]:
    closed, big, open_ = (results["runs"].get(k) for k in ("closed", "big", "open"))
    turkle = results.get("turkle")
    out = []
    ours_rate = closed and closed["client"]["answers_per_s"]
    turkle_rate = turkle and turkle["summary"]["answers_per_s"]
    ratio = _ratio(ours_rate, turkle_rate)
    out.append(
        {
            "target": f"ours / Turkle answers/s, {args.raters} raters, {args.tasks:,} tasks × 5",
            "value": ratio,
            "goal": ">= 10",
            "met": None if ratio is None else ratio >= 10,
            "detail": _vs(ours_rate, turkle_rate),
        }
    )
    big_rate = big and big["client"]["answers_per_s_steady_10_90pct"]
    small_rate = closed and closed["client"]["answers_per_s_steady_10_90pct"]
    ratio = _ratio(big_rate, small_rate)
    out.append(
        {
            "target": f"steady answers/s at {args.big_tasks:,} tasks / at {args.tasks:,} tasks",
            "value": ratio,
            "goal": ">= 0.90 (within 10 %)",
            "met": None if ratio is None else ratio >= 0.9,
            "detail": _vs(big_rate, small_rate),
        }
    )
    p99 = open_ and open_["client"]["answer_latency_ms"]["p99"]
    achieved = open_ and open_["client"]["answers_per_s"]
    out.append(
        {
            "target": f"answer p99 at an offered {args.offered_rate:g} answers/s",
            "value": p99,
            "goal": "< 100 ms",
            "met": None if p99 is None else p99 < 100,
            "detail": f"achieved {'—' if achieved is None else achieved} answers/s",
        }
    )
    faults = {name: run["faults"] for name, run in results["runs"].items() if run.get("faults")}
    out.append(
        {
            "target": "integrity in every run of ours",
            "value": faults or 0,
            "goal": "0 over quota, duplicates, missing; every rater at the done page",
            "met": not faults and bool(results["runs"]),
            "detail": ", ".join(results["runs"]) or "no run",
        }
    )
    return out


def print_summary(results: dict, args: argparse.Namespace) -> None:
    runs = results["runs"]
    columns = [
        (f"ours {args.tasks:,} closed", _ours_row(runs.get("closed"))),
        (f"Turkle {args.tasks:,}", _turkle_row(results.get("turkle"))),
        (f"ours think {args.offered_rate:g}/s", _ours_row(runs.get("open"))),
        (f"ours {args.big_tasks:,}", _ours_row(runs.get("big"))),
    ]
    columns = [(title, row) for title, row in columns if row is not None]
    width = max([len(title) for title, _ in columns] + [12]) + 2
    print(f"\n{'':28}" + "".join(f"{title:>{width}}" for title, _ in columns))
    for label, key, fmt in ROWS:
        cells = ["—" if row[key] is None else fmt.format(row[key]) for _, row in columns]
        print(f"{label:28}" + "".join(f"{c:>{width}}" for c in cells))
    print(
        "latency: ours = one answer POST (it returns the next task); "
        "Turkle = accept + iframe + submit of one answer"
    )
    print(
        "CPU s: during the client run (join, load, close), our gunicorn / every PostgreSQL "
        "process / load client / everything else; Turkle: its gunicorn and client together"
    )
    measured = {**runs, **({"turkle": results["turkle"]} if results.get("turkle") else {})}
    for name, run in measured.items():
        cpu = run["cpu_s"]
        if cpu["other"] > 0.1 * cpu["machine_busy"]:
            print(
                f"note: during '{name}' other processes used {cpu['other']:.0f} of "
                f"{cpu['machine_busy']:.0f} busy CPU s: its figures are low"
            )
    print()
    for t in results["targets"]:
        mark = {True: "MET ", False: "MISS", None: "SKIP"}[t["met"]]
        value = t["value"] if t["value"] is not None else "—"
        print(f"[{mark}] {t['target']}: {value} (goal {t['goal']}; {t['detail']})")
    for step, message in results["crashed"].items():
        print(f"[CRASH] {step}: {message}")
    print(f"\nresults: {results['out']}")


def run_faults(run: dict) -> dict:
    """Our integrity faults of one run, plus the client's: raters who did not reach the end."""
    faults = dict(run["integrity"]["faults"])
    if run["client"]["raters_not_done"]:
        faults["raters_not_done"] = run["client"]["raters_not_done"]
    return faults


def main() -> int:
    args = parse_args()
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out = (args.out or ROOT / "bench-out" / "serve" / stamp).resolve()
    out.mkdir(parents=True, exist_ok=True)
    bench = Bench(args, out)
    open_tasks = max(args.tasks, math.ceil(2 * args.offered_rate * args.duration / 50) * 10)
    results: dict = {
        "out": str(out),
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "machine": machine_info(args),
        "studies": {},
        "runs": {},
        "crashed": {},
    }
    step = "setup"
    try:
        if not args.skip_turkle:
            step = "turkle setup"
            bench.turkle_setup()
        step = "client"
        check = subprocess.run([args.client_python, "-c", "import aiohttp"], capture_output=True)
        if check.returncode:
            raise RuntimeError(
                f"{args.client_python} cannot import aiohttp: run "
                "`bash scripts/bench_serve/turkle/setup.sh` or pass --client-python"
            )
        step = "database"
        bench.recreate_db()
        step = "build"
        log("\n== building studies")
        studies = results["studies"]
        studies["closed"] = bench.build("bench-closed", args.tasks, 1)
        studies["open"] = bench.build("bench-open", open_tasks, 1)
        if not args.skip_big:
            studies["big"] = bench.build("bench-big", args.big_tasks, BIG_PAIRS)
        bench.settle_db()
        with Gunicorn(bench) as server:
            results["server"] = {"command": server.command, "env": SERVER_ENV}
            step = "closed loop"
            run = bench.load(
                "closed",
                studies["closed"],
                think_mean=0,
                duration=args.closed_cap,
                timed=False,
                pgid=server.pgid,
            )
            results["runs"]["closed"] = run
            if not args.skip_turkle:
                step = "turkle"
                try:
                    results["turkle"] = bench.turkle()
                except Exception as exc:  # noqa: BLE001 - ours go on; reported as a crash
                    traceback.print_exc()
                    results["crashed"][step] = repr(exc)
            step = "think time"
            results["runs"]["open"] = bench.load(
                "open",
                studies["open"],
                think_mean=args.raters / args.offered_rate,
                duration=args.duration,
                timed=True,
                pgid=server.pgid,
            )
            if not args.skip_big:
                step = "100k"
                results["runs"]["big"] = bench.load(
                    "big",
                    studies["big"],
                    think_mean=0,
                    duration=args.big_duration,
                    timed=True,
                    pgid=server.pgid,
                )
            results["server"]["log_error_lines"] = server.error_lines()
    except Exception as exc:  # noqa: BLE001 - reported, then exit 2
        traceback.print_exc()
        results["crashed"][step] = repr(exc)
    finally:
        for run in results["runs"].values():
            run["faults"] = run_faults(run)
        results["targets"] = targets(results, args)
        results["machine"]["loadavg_after"] = loadavg()
        (out / "summary.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
        print_summary(results, args)
    if results["crashed"]:
        return 2
    return 1 if any(run["faults"] for run in results["runs"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
