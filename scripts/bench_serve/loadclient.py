"""Async load client for xai-crowd's rater loop (aiohttp, loopback only).

aiohttp is not a project dependency: run this with an interpreter that has it,
e.g. the Turkle harness's venv, ``/tmp/turkle-venv/bin/python`` (run.py does).

Each simulated rater is one browser: its own cookie jar and one connection
(``TCPConnector(limit=1)``). It does what the join and task pages do:

  join:  GET  /r/<code>/            csrfmiddlewaretoken, cookies csrftoken + xai_b
         POST /r/<code>/ consent=yes 302 -> /r/<code>/task/, cookie xr_<code>
         GET  /r/<code>/task/       the rater token (data-token on <div id="app">)
  loop:  GET  /api/r/<code>/next    once; afterwards each answer's reply carries "next"
         POST /api/r/<code>/responses  {"assignment_id", "choice", "response_ms"}
                                    201 stored / 200 already stored: acknowledged
         "wait"/"paused": sleep min(retry_after, 0.5 s), GET next again
         409: counted by its "code", then GET next
  end:   "done"/"closed": GET done_url; the rater *reached the done page* when it shows
         the completion code (id="completion-code").

All raters join first (bounded concurrency), then start together. Modes:

- closed loop (default): no think time, until every rater is done (or --duration);
- think time (--think-mean S): before each answer a rater waits an exponential time
  of mean S; with R raters that offers about R / S answers/s. The run stops at
  --duration; raters keep the task they hold.

With --await-close the client, once the load stops, prints ``load-done`` on stdout
and waits for a line on stdin (the orchestrator closes the study in between); then
every rater not yet done asks for its next step again and should be sent to the
done page. Timed runs use it so that every rater's end is checked too.

Outputs in --out: summary.json and acknowledged.jsonl (one line per acknowledged
answer: assignment_id, choice, t, latency_ms, status), read by integrity.py.
"""

from __future__ import annotations

import argparse
import asyncio
import html
import json
import os
import random
import re
import resource
import sys
import time
from collections import Counter
from urllib.parse import urlsplit

import aiohttp

CSRF_RE = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
TOKEN_RE = re.compile(r'<div id="app"[^>]*\bdata-token="([^"]+)"')
DONE_MARK = 'id="completion-code"'
TRANSPORT_ERRORS = (aiohttp.ClientError, TimeoutError)


def pct(sorted_vals: list[float], p: float) -> float | None:
    """Percentile with linear interpolation (the Turkle harness's definition)."""
    if not sorted_vals:
        return None
    k = (len(sorted_vals) - 1) * p / 100.0
    lo, hi = int(k), min(int(k) + 1, len(sorted_vals) - 1)
    return sorted_vals[lo] + (sorted_vals[hi] - sorted_vals[lo]) * (k - lo)


def latency_ms(values: list[float]) -> dict[str, float | None]:
    s = sorted(values)
    out = {f"p{p}": pct(s, p) for p in (50, 95, 99)}
    out["max"] = s[-1] if s else None
    out["mean"] = sum(s) / len(s) if s else None
    return {k: None if v is None else round(v * 1000, 2) for k, v in out.items()}


class GiveUp(Exception):
    """A rater saw too many errors in a row and stops, as a person would."""


class Stats:
    def __init__(self) -> None:
        self.acks: list[dict] = []
        self.acked_ids: set[str] = set()
        self.answer_lat: list[float] = []
        self.next_lat: list[float] = []
        self.status: Counter[str] = Counter()
        self.conflicts: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.error_samples: list[str] = []
        self.joined = 0
        self.join_failed = 0
        self.reached_done = 0
        self.done_without_code = 0
        self.gave_up = 0

    def error(self, kind: str, detail: str = "") -> None:
        self.errors[kind] += 1
        if len(self.error_samples) < 50:
            self.error_samples.append(f"{kind}: {detail}"[:300])


class Rater:
    """One simulated browser of one rater."""

    def __init__(self, idx: int, args: argparse.Namespace, stats: Stats, rng: random.Random):
        self.idx = idx
        self.args = args
        self.stats = stats
        self.rng = rng
        self.base = args.base
        self.code = args.code
        self.session: aiohttp.ClientSession | None = None
        self.headers: dict[str, str] = {}
        self.done = False
        self.errors_in_row = 0
        self.t_start = 0.0

    async def _text(self, method: str, path: str, label: str, **kw) -> tuple[int, str]:
        async with self.session.request(method, self.base + path, **kw) as r:
            body = await r.text()
        self.stats.status[f"{method} {label} {r.status}"] += 1
        return r.status, body

    async def join(self) -> None:
        page = f"/r/{self.code}/"
        status, body = await self._text("GET", page, "join")
        m = CSRF_RE.search(body)
        if status != 200 or not m:
            raise RuntimeError(f"join page answered {status} without a CSRF token")
        async with self.session.post(
            self.base + page,
            data={"csrfmiddlewaretoken": m.group(1), "consent": "yes"},
            headers={"Referer": self.base + page},
            allow_redirects=False,
        ) as r:
            await r.read()
            location = r.headers.get("Location", "")
        self.stats.status[f"POST join {r.status}"] += 1
        if r.status != 302 or not location.endswith(f"/r/{self.code}/task/"):
            raise RuntimeError(f"join POST answered {r.status} -> {location!r}")
        status, body = await self._text("GET", f"/r/{self.code}/task/", "task-page")
        m = TOKEN_RE.search(body)
        if status != 200 or not m:
            raise RuntimeError(f"task page answered {status} without a rater token")
        self.headers = {"X-Rater-Token": html.unescape(m.group(1))}

    async def _failed(self, kind: str, detail: str) -> None:
        """Count an error; back off; give up after too many in a row."""
        self.stats.error(kind, f"rater {self.idx}: {detail}")
        self.errors_in_row += 1
        if self.errors_in_row >= self.args.max_consecutive_errors:
            raise GiveUp
        await asyncio.sleep(self.args.error_backoff)

    async def next(self) -> dict:
        """GET next until it answers 200 (errors are counted and retried)."""
        while True:
            t0 = time.monotonic()
            try:
                async with self.session.get(
                    f"{self.base}/api/r/{self.code}/next", headers=self.headers
                ) as r:
                    body = await r.read()
            except TRANSPORT_ERRORS as exc:
                await self._failed(f"next_transport_{type(exc).__name__}", repr(exc))
                continue
            self.stats.next_lat.append(time.monotonic() - t0)
            self.stats.status[f"GET next {r.status}"] += 1
            if r.status == 200:
                self.errors_in_row = 0
                return json.loads(body)
            await self._failed(f"next_http_{r.status}", body[:200].decode(errors="replace"))

    async def answer(self, task: dict, shown_at: float) -> dict:
        """POST one answer; the payload of the rater's next step."""
        choice = self.rng.randrange(len(task["options"]))
        payload = {
            "assignment_id": task["assignment_id"],
            "choice": choice,
            "response_ms": int((time.monotonic() - shown_at) * 1000),
        }
        url = f"{self.base}/api/r/{self.code}/responses"
        for _ in range(self.args.post_retries + 1):
            t0 = time.monotonic()
            try:
                async with self.session.post(url, json=payload, headers=self.headers) as r:
                    body = await r.read()
            except TRANSPORT_ERRORS as exc:
                # A retried POST of the same answer is idempotent (200: already stored).
                await self._failed(f"answer_transport_{type(exc).__name__}", repr(exc))
                continue
            t1 = time.monotonic()
            self.stats.status[f"POST responses {r.status}"] += 1
            try:
                data = json.loads(body)
            except ValueError:
                data = {}
            if r.status in (200, 201):
                self.errors_in_row = 0
                self.stats.answer_lat.append(t1 - t0)
                self._acknowledge(task["assignment_id"], choice, t1, t1 - t0, r.status)
                return data["next"]
            if r.status == 409:
                self.stats.conflicts[str(data.get("code"))] += 1
                return await self.next()
            await self._failed(f"answer_http_{r.status}", body[:200].decode(errors="replace"))
            return await self.next()
        return await self.next()

    def _acknowledge(self, assignment_id: str, choice: int, t: float, lat: float, status: int):
        if assignment_id in self.stats.acked_ids:
            return  # a retry answered 200: the answer was acknowledged once already
        self.stats.acked_ids.add(assignment_id)
        self.stats.acks.append(
            {
                "assignment_id": assignment_id,
                "choice": choice,
                "rater": self.idx,
                "t": round(t - self.t_start, 4),
                "latency_ms": round(lat * 1000, 2),
                "status": status,
            }
        )

    async def reach_done(self, done_url: str) -> None:
        status, body = await self._text("GET", done_url, "done-page")
        if status == 200 and DONE_MARK in body:
            self.done = True
            self.stats.reached_done += 1
        else:
            self.stats.done_without_code += 1
            self.stats.error("done_page_without_code", f"rater {self.idx}: {status}")

    async def loop(self, deadline: float, think_mean: float) -> None:
        """Answer until the study has nothing left for this rater or the deadline passes."""
        payload = await self.next()
        while True:
            state = payload["state"]
            if state in ("done", "closed"):
                await self.reach_done(payload["done_url"])
                return
            now = time.monotonic()
            if now >= deadline:
                return
            if state == "task":
                if think_mean:
                    await asyncio.sleep(min(self.rng.expovariate(1 / think_mean), deadline - now))
                    if time.monotonic() >= deadline:
                        return
                payload = await self.answer(payload["task"], shown_at=now)
            else:  # wait / paused
                await asyncio.sleep(min(payload.get("retry_after") or 0.5, 0.5))
                payload = await self.next()

    async def finish(self) -> None:
        """After the study was closed: ask once more; it should send the rater to the end."""
        payload = await self.next()
        if payload["state"] in ("done", "closed"):
            await self.reach_done(payload["done_url"])


class Control:
    """What the raters share: start signal, deadline, and the hand-over around the close."""

    def __init__(self, args: argparse.Namespace):
        self.join_sem = asyncio.Semaphore(args.join_concurrency)
        self.joined = asyncio.Event()
        self.go = asyncio.Event()
        self.stopped = asyncio.Event()
        self.closed = asyncio.Event()
        self.t_start = 0.0
        self.deadline = float("inf")
        self.running = 0

    def loop_ended(self) -> None:
        self.running -= 1
        if self.running <= 0:
            self.stopped.set()


async def rater_main(rater: Rater, ctl: Control) -> None:
    stats, args = rater.stats, rater.args
    jar = aiohttp.CookieJar(unsafe=True)  # keep cookies for 127.0.0.1
    connector = aiohttp.TCPConnector(limit=1)
    timeout = aiohttp.ClientTimeout(total=args.timeout)
    async with aiohttp.ClientSession(cookie_jar=jar, connector=connector, timeout=timeout) as s:
        rater.session = s
        async with ctl.join_sem:
            for attempt in range(5):
                try:
                    await rater.join()
                    stats.joined += 1
                    break
                except (*TRANSPORT_ERRORS, RuntimeError) as exc:
                    stats.error("join", f"rater {rater.idx}: {exc!r}")
                    await asyncio.sleep(1 + attempt)
            else:
                stats.join_failed += 1
        if stats.joined + stats.join_failed >= args.raters:
            ctl.joined.set()
        await ctl.go.wait()
        if not rater.headers:
            return
        rater.t_start = ctl.t_start
        try:
            try:
                await rater.loop(ctl.deadline, args.think_mean)
            finally:
                ctl.loop_ended()
            if not rater.done and args.await_close:
                await ctl.closed.wait()
                async with ctl.join_sem:
                    await rater.finish()
        except GiveUp:
            stats.gave_up += 1


async def progress(stats: Stats, t_start: float) -> None:
    last = 0
    while True:
        await asyncio.sleep(10)
        n = len(stats.acks)
        print(
            f"  t={time.monotonic() - t_start:6.1f}s answers={n} (+{n - last}/10s) "
            f"errors={sum(stats.errors.values())} 409s={sum(stats.conflicts.values())} "
            f"done={stats.reached_done}",
            file=sys.stderr,
            flush=True,
        )
        last = n


async def main_async(args: argparse.Namespace) -> tuple[dict, list[dict]]:
    stats = Stats()
    ctl = Control(args)
    rng = random.Random(args.seed)
    raters = [Rater(i, args, stats, random.Random(rng.random())) for i in range(args.raters)]
    t_join = time.monotonic()
    tasks = [asyncio.create_task(rater_main(r, ctl)) for r in raters]
    try:
        await asyncio.wait_for(ctl.joined.wait(), timeout=args.join_timeout)
    except TimeoutError:
        for t in tasks:
            t.cancel()
        raise SystemExit(f"join phase took longer than {args.join_timeout}s") from None
    join_s = time.monotonic() - t_join
    print(
        f"{stats.joined} raters joined in {join_s:.1f}s ({stats.join_failed} failed); go",
        file=sys.stderr,
        flush=True,
    )
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    ctl.running = stats.joined
    if not ctl.running:
        ctl.stopped.set()
    ctl.t_start = time.monotonic()
    ctl.deadline = ctl.t_start + args.duration
    ctl.go.set()
    prog = asyncio.create_task(progress(stats, ctl.t_start))
    hard_stop = args.duration + args.timeout + 5
    if args.await_close:
        try:
            await asyncio.wait_for(ctl.stopped.wait(), timeout=hard_stop)
        except TimeoutError:
            stats.error("load_stop_timeout", f"{ctl.running} raters still in a request")
        print("load-done", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        ctl.closed.set()
        hard_stop = args.timeout + 5
    done, pending = await asyncio.wait(tasks, timeout=hard_stop)
    for t in pending:
        t.cancel()
    prog.cancel()
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    for t in done:
        if t.exception() is not None:
            stats.error("rater_crash", repr(t.exception()))
    cpu_s = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    summary = summarize(args, stats, join_s=join_s, still_running=len(pending), cpu_s=cpu_s)
    return summary, stats.acks


def summarize(
    args: argparse.Namespace, stats: Stats, *, join_s: float, still_running: int, cpu_s: float
) -> dict:
    """Rates over the window from the start signal to the last acknowledged answer."""
    n = len(stats.acks)
    last_t = max((a["t"] for a in stats.acks), default=0.0)
    lo, hi = 0.1 * last_t, 0.9 * last_t
    steady = sum(1 for a in stats.acks if lo <= a["t"] <= hi)
    per10 = Counter(int(a["t"] // 10) * 10 for a in stats.acks)
    http = Counter()
    for key, count in stats.status.items():
        http[key.rsplit(" ", 1)[1][0] + "xx"] += count
    return {
        "mode": "think-time" if args.think_mean else "closed-loop",
        "base": args.base,
        "code": args.code,
        "raters": args.raters,
        "think_mean_s": args.think_mean,
        "offered_answers_per_s": round(args.raters / args.think_mean, 2)
        if args.think_mean
        else None,
        "duration_limit_s": args.duration,
        "join_phase_s": round(join_s, 2),
        "raters_joined": stats.joined,
        "raters_join_failed": stats.join_failed,
        "answers_saved_by_client": n,
        "window_s": round(last_t, 3),
        "answers_per_s": round(n / last_t, 2) if last_t else 0.0,
        "answers_per_s_steady_10_90pct": round(steady / (hi - lo), 2) if hi > lo else None,
        "answer_latency_ms": latency_ms(stats.answer_lat),
        "next_latency_ms": latency_ms(stats.next_lat),
        "status_counts": dict(sorted(stats.status.items())),
        "http_by_class": dict(sorted(http.items())),
        "http_409": sum(v for k, v in stats.status.items() if k.endswith(" 409")),
        "conflicts_409_by_code": dict(stats.conflicts),
        "errors": dict(stats.errors),
        "error_samples": stats.error_samples[:20],
        "raters_reached_done": stats.reached_done,
        "raters_not_done": args.raters - stats.reached_done,
        "raters_done_page_without_code": stats.done_without_code,
        "raters_gave_up": stats.gave_up,
        "raters_still_running_at_stop": still_running,
        "answers_per_10s_bucket": dict(sorted(per10.items())),
        "client_cpu_s": round(cpu_s, 2),
    }


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--base", default="http://127.0.0.1:8100")
    p.add_argument("--code", required=True, help="the experiment's rater code")
    p.add_argument("--raters", type=int, default=200)
    p.add_argument("--think-mean", type=float, default=0.0, help="mean think time (s); 0: none")
    p.add_argument("--duration", type=float, default=600.0, help="stop answering after (s)")
    p.add_argument("--await-close", action="store_true", help="see the module docstring")
    p.add_argument("--timeout", type=float, default=60.0, help="per-request timeout (s)")
    p.add_argument("--join-concurrency", type=int, default=16)
    p.add_argument("--join-timeout", type=float, default=300.0)
    p.add_argument("--error-backoff", type=float, default=0.5)
    p.add_argument("--max-consecutive-errors", type=int, default=20)
    p.add_argument("--post-retries", type=int, default=2, help="after a transport error")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    host = urlsplit(args.base).hostname or ""
    if not (host == "localhost" or host.startswith("127.") or host == "::1"):
        sys.exit("refusing: --base must be a loopback address")
    summary, acks = asyncio.run(main_async(args))
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    with open(os.path.join(args.out, "acknowledged.jsonl"), "w") as f:
        for rec in acks:
            f.write(json.dumps(rec) + "\n")
    keys = ("answers_saved_by_client", "answers_per_s", "answers_per_s_steady_10_90pct")
    keys += ("answer_latency_ms", "http_409", "errors", "raters_reached_done", "raters_not_done")
    print(json.dumps({k: summary[k] for k in keys}, indent=2), file=sys.stderr)


if __name__ == "__main__":
    main()
