"""Benchmark of the analysis engine on a generated study (``make bench-analysis``).

Generates a realistic response CSV (default 1,000,000 answers: a 3-point
pre-study with cpr1~cpr2 and cpr1~cpr32, a 5-point Experiment 1 over all six
pairs of cpr1/2/4/8, a forced-choice Experiment 2 over cpr1/2/4/8/32; five
answers per task), then runs the whole analysis in a fresh child process and
prints its wall time and peak RSS, plus the RSS of reading the CSV alone.

Parts: ``--part generate|read|analyze|all`` (an ``export`` part, the streamed
DB export, plugs in the same way once the study app provides it).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _memory import peak_rss_mb  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CLASSES = (
    "fish", "dog", "cassette player", "chain saw", "church",
    "French horn", "garbage truck", "gas pump", "golf ball", "parachute",
)  # fmt: skip
COLUMNS = (
    "study", "experiment", "experiment_kind", "scale_points", "task_id", "image_id", "image_class",
    "rater_id", "rater_source", "condition_a", "condition_b", "shown_left", "answer", "answer_raw",
    "response_ms", "submitted_at",
)  # fmt: skip
PER_TASK = 5


def _raters(n_tasks: int, n_raters: int, rng: np.random.Generator, offset: int) -> np.ndarray:
    """(n_tasks*5,) rater ids, five distinct raters per task."""
    base = rng.integers(0, n_raters, n_tasks)
    step = n_raters // PER_TASK
    slots = np.arange(PER_TASK)
    return ((base[:, None] + slots[None, :] * step) % n_raters + offset).ravel()


def _pairwise(name, pairs, scale, n_tasks, rng, n_raters, rater_offset):
    k = (scale - 1) // 2
    n = n_tasks * PER_TASK
    pair = np.repeat(rng.integers(0, len(pairs), n_tasks), PER_TASK)
    # Latent task preference plus rater noise, rounded onto the scale.
    pref = np.repeat(rng.normal(0, 0.6, n_tasks), PER_TASK)
    value = np.clip(np.rint(pref + rng.normal(0, 0.9, n)), -k, k).astype(int)
    shown_a_left = rng.random(n) < 0.5
    left_view = np.where(shown_a_left, value, -value)
    labels = (
        {1: "left more", 0: "equal", -1: "right more"}
        if k == 1
        else {
            2: "left clearly",
            1: "left slightly",
            0: "equal",
            -1: "right slightly",
            -2: "right clearly",
        }
    )
    return pd.DataFrame(
        {
            "experiment": name,
            "experiment_kind": "pairwise",
            "scale_points": str(scale),
            "task_id": np.repeat(np.arange(n_tasks), PER_TASK),
            "image_id": np.repeat(rng.integers(0, 500, n_tasks), PER_TASK),
            "image_class": "",
            "rater_id": _raters(n_tasks, n_raters, rng, rater_offset),
            "condition_a": np.asarray([p[0] for p in pairs], dtype=object)[pair],
            "condition_b": np.asarray([p[1] for p in pairs], dtype=object)[pair],
            "shown_left": np.where(shown_a_left, "a", "b"),
            "answer": value,
            "answer_raw": pd.Series(left_view).map(labels).to_numpy(),
        }
    )


def _forced_choice(name, conds, n_images, rng, n_raters, rater_offset):
    n_tasks = n_images * len(conds)
    n = n_tasks * PER_TASK
    image = np.repeat(np.arange(n_tasks) % n_images, PER_TASK)
    cond = np.repeat(np.arange(n_tasks) // n_images, PER_TASK)
    true = image % len(CLASSES)
    u = rng.random(n)
    idk_p = 0.09 + 0.012 * cond
    wrong = (true + rng.integers(1, len(CLASSES), n)) % len(CLASSES)
    cls = np.asarray(CLASSES, dtype=object)
    answer = np.where(u < idk_p, "idk", np.where(u < idk_p + 0.05, cls[wrong], cls[true]))
    return pd.DataFrame(
        {
            "experiment": name,
            "experiment_kind": "forced_choice",
            "scale_points": "",
            "task_id": np.repeat(np.arange(n_tasks), PER_TASK),
            "image_id": image,
            "image_class": cls[true],
            "rater_id": _raters(n_tasks, n_raters, rng, rater_offset),
            "condition_a": np.asarray(conds, dtype=object)[cond],
            "condition_b": "",
            "shown_left": "",
            "answer": answer,
            "answer_raw": np.where(answer == "idk", "I don't know / None of the above", answer),
        }
    )


def generate(path: Path, n_answers: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    n_tasks = n_answers // PER_TASK
    pre = int(n_tasks * 0.2)
    exp1 = int(n_tasks * 0.4)
    n_img = (n_tasks - pre - exp1) // 5
    raters = max(50, n_answers // 100)  # ~100 answers per rater
    parts = [
        _pairwise("pre-heat", [("cpr1", "cpr2"), ("cpr1", "cpr32")], 3, pre, rng, raters, 0),
        _pairwise("exp1", [(a, b) for i, a in enumerate(["cpr1", "cpr2", "cpr4", "cpr8"])
                           for b in ["cpr1", "cpr2", "cpr4", "cpr8"][i + 1:]], 5, exp1, rng, raters, raters),
        _forced_choice("exp2", ["cpr1", "cpr2", "cpr4", "cpr8", "cpr32"], n_img, rng, raters, 2 * raters),
    ]  # fmt: skip
    df = pd.concat(parts, ignore_index=True)
    n = len(df)
    df["study"] = "bench"
    df["rater_id"] = "r" + df["rater_id"].astype(str)
    df["rater_source"] = np.where(rng.random(n) < 0.8, "mturk", "prolific")
    df["response_ms"] = np.rint(rng.lognormal(np.log(4000), 0.5, n)).astype(int)
    df["submitted_at"] = "2024-05-01T12:00:00Z"
    df[list(COLUMNS)].to_csv(path, index=False)
    return path


def _child(part: str, csv: Path, out: Path, n_boot: int, figures: bool) -> dict:
    sys.path.insert(0, str(ROOT))
    t_import = time.perf_counter()
    from apps.analysis.engine import AnalysisOptions, load_responses, run_analysis

    info: dict = {"import_seconds": time.perf_counter() - t_import}
    t0 = time.perf_counter()
    if part == "read":
        info["rows"] = len(load_responses(csv).df)
    else:
        res = run_analysis(csv, out, options=AnalysisOptions(n_boot=n_boot, figures=figures))
        info.update(rows=res.n_answers_in, files=len(res.files))
    info["seconds"] = time.perf_counter() - t0
    info["peak_rss_mb"] = peak_rss_mb()
    return info


def _run_child(part, csv, out, n_boot, figures) -> dict:
    cmd = [sys.executable, __file__, "--child", part, "--csv", str(csv), "--out", str(out),
           "--boot", str(n_boot)] + ([] if figures else ["--no-figures"])  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--answers", type=int, default=1_000_000)
    ap.add_argument("--boot", type=int, default=1000)
    ap.add_argument("--csv", type=Path, help="use (or write) this CSV instead of a temporary one")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--part", choices=["generate", "read", "analyze", "all"], default="all")
    ap.add_argument("--no-figures", action="store_true")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(_child(args.child, args.csv, args.out, args.boot, not args.no_figures)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        csv = args.csv or Path(tmp) / "responses.csv"
        out = args.out or Path(tmp) / "out"
        if args.part in ("generate", "all") or not csv.exists():
            t0 = time.perf_counter()
            generate(csv, args.answers)
            print(f"generated {args.answers:,} answers -> {csv} ({csv.stat().st_size / 1e6:.0f} MB) "
                  f"in {time.perf_counter() - t0:.1f} s")  # fmt: skip
        if args.part in ("read", "all"):
            r = _run_child("read", csv, out, args.boot, False)
            print(
                f"read+validate: {r['rows']:,} rows in {r['seconds']:.2f} s, peak RSS {r['peak_rss_mb']:.0f} MB"
            )
        if args.part in ("analyze", "all"):
            r = _run_child("analyze", csv, out, args.boot, not args.no_figures)
            print(f"analysis ({args.boot} bootstrap replicates, figures {'on' if not args.no_figures else 'off'}): "
                  f"{r['rows']:,} answers, {r['files']} files in {r['seconds']:.2f} s, "
                  f"peak RSS {r['peak_rss_mb']:.0f} MB (+{r['import_seconds']:.1f} s imports)")  # fmt: skip


if __name__ == "__main__":
    main()
