"""Build response tables in the export format, answer by answer, for the tests."""

from __future__ import annotations

import itertools
import random

import pandas as pd

from apps.analysis.engine import REQUIRED_COLUMNS

CLASSES = ("fish", "dog", "cassette player", "chain saw", "church",
           "French horn", "garbage truck", "gas pump", "golf ball", "parachute")  # fmt: skip


def pairwise_row(
    experiment, task, rater, a, b, answer, *, scale=5, shown_left="a", image="img0", ms=3000
):
    return {
        "study": "s",
        "experiment": experiment,
        "experiment_kind": "pairwise",
        "scale_points": str(scale),
        "task_id": str(task),
        "image_id": image,
        "image_class": "fish",
        "rater_id": str(rater),
        "rater_source": "mturk",
        "condition_a": a,
        "condition_b": b,
        "shown_left": shown_left,
        "answer": str(answer),
        "answer_raw": f"{shown_left}:{answer}",
        "response_ms": str(ms),
        "submitted_at": "2024-01-01T00:00:00Z",
    }


def fc_row(experiment, task, rater, condition, true_class, answer, *, image="img0", ms=3000):
    return {
        "study": "s",
        "experiment": experiment,
        "experiment_kind": "forced_choice",
        "scale_points": "",
        "task_id": str(task),
        "image_id": image,
        "image_class": true_class,
        "rater_id": str(rater),
        "rater_source": "prolific",
        "condition_a": condition,
        "condition_b": "",
        "shown_left": "",
        "answer": answer,
        "answer_raw": answer,
        "response_ms": str(ms),
        "submitted_at": "2024-01-01T00:00:00Z",
    }


def frame(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(REQUIRED_COLUMNS))


def pair_answers_with_sum(n: int, total: int) -> list[int]:
    """n answers on -2..2 (a balanced cycle) whose sum is exactly ``total``."""
    values = [v for v, _ in zip(itertools.cycle([-2, -1, 0, 1, 2]), range(n), strict=False)]
    step = -1 if total < 0 else 1
    i = 0
    remaining = total - sum(values)
    while remaining != 0:
        if values[i] == 0:
            values[i] = step
            remaining -= step
        i += 1
    return values


def table4_experiment(per_pair: int = 2500, per_task: int = 5) -> pd.DataFrame:
    """Experiment 1 built so that the pair means are exactly the paper's Table 4."""
    means = {("cpr1", "cpr2"): -0.0128, ("cpr1", "cpr4"): -0.0104, ("cpr1", "cpr8"): -0.0272,
             ("cpr2", "cpr4"): 0.0036, ("cpr2", "cpr8"): 0.0048, ("cpr4", "cpr8"): -0.0232}  # fmt: skip
    rows = []
    task = 0
    sides = random.Random(0)
    for (a, b), mean in means.items():
        values = pair_answers_with_sum(per_pair, round(mean * per_pair))
        for i, v in enumerate(values):
            if i % per_task == 0:
                task += 1
            side = sides.choice("ab")
            rows.append(pairwise_row("exp1", task, f"r{i % per_task}-{task % 50}", a, b, v,
                                     shown_left=side, image=f"img{task % 500}"))  # fmt: skip
    return frame(rows)


TABLE7 = {  # condition: (correct, wrong, idk) of 2 500 answers (paper Table 7)
    "cpr1": (2146, 109, 245),
    "cpr2": (2160, 116, 224),
    "cpr4": (2052, 134, 314),
    "cpr8": (2030, 134, 336),
    "cpr32": (2033, 112, 355),
}


def table7_experiment() -> pd.DataFrame:
    """Experiment 2: 500 images x 5 CPRs x 5 answers, counts as in Table 7."""
    rows = []
    task = 0
    for cond, (ok, wrong, idk) in TABLE7.items():
        kinds = ["ok"] * ok + ["wrong"] * wrong + ["idk"] * idk
        for i, kind in enumerate(kinds):
            img = i // 5
            if i % 5 == 0:
                task += 1
            true = CLASSES[img % 10]
            answer = {"ok": true, "wrong": CLASSES[(img + 1) % 10], "idk": "idk"}[kind]
            rows.append(
                fc_row("exp2", task, f"r{i % 5}-{img % 7}", cond, true, answer, image=f"img{img}")
            )
    return frame(rows)


def full_frame(rows) -> pd.DataFrame:
    """Rows in the export's full column set (flags and check columns; "" / false if unset)."""
    from apps.studies.csv_contract import RESPONSE_COLUMNS

    defaults = {"late": "false", "over_quota": "false", "reopened": "false"}
    filled = [{c: row.get(c, defaults.get(c, "")) for c in RESPONSE_COLUMNS} for row in rows]
    return pd.DataFrame(filled, columns=list(RESPONSE_COLUMNS))


def attention(row: dict, answer, expected) -> dict:
    """An attention check shown on ``row``'s task, answered ``answer``, instructed ``expected``."""
    return {**row, "answer": str(answer), "answer_raw": f"check:{answer}",
            "check_kind": "attention", "expected": str(expected)}  # fmt: skip


def probe(row: dict, answer) -> dict:
    """A consistency probe of ``row`` (sides swapped on pairwise), answered ``answer``."""
    swapped = {"a": "b", "b": "a"}.get(row["shown_left"], "")
    return {**row, "answer": str(answer), "answer_raw": f"probe:{answer}",
            "shown_left": swapped, "probe_of": row["task_id"]}  # fmt: skip


def catch(row: dict, expected) -> dict:
    """``row`` turned into a catch trial (pairwise: build it with condition_b == condition_a)."""
    return {**row, "check_kind": "catch", "expected": str(expected)}
