"""Integrity checks in PostgreSQL after a load run on one experiment.

    uv run --frozen python scripts/bench_serve/integrity.py --database-url postgres://… \\
        --code <experiment code> --acknowledged DIR/acknowledged.jsonl [--out integrity.json] \\
        [--drained]

Plain SQL (psycopg) against the tables, not the services: the point is to check
what the database holds, not what the code believes. Faults (each must be 0):

- over-quota tasks: more in-quota answers (responses with a slot) than the task's quota;
- duplicates: two responses, or two assignments, of one (task, rater);
- acknowledged but missing: an answer the client got 201/200 for whose assignment or
  response row is missing, belongs to another experiment, or holds another choice;
- slot/response mismatch: an answered slot without its response or the reverse;
- answered-counter mismatch: a participation's ``answered`` differs from its responses;
- with --drained (a run that went on until the study had nothing left): participations
  not COMPLETED, and unanswered slots.

Late and over-quota (kept outside the quota) responses and answers stored but not
acknowledged (a client timeout) are reported, not faults.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import psycopg

FAULTS = (
    "over_quota_tasks",
    "duplicate_responses",
    "duplicate_assignments",
    "acknowledged_missing",
    "slot_response_mismatch",
    "answered_counter_mismatch",
)
DRAINED_FAULTS = ("participations_not_completed", "slots_unanswered")


def _one(cur: psycopg.Cursor, sql: str, params: dict) -> tuple:
    cur.execute(sql, params)
    return cur.fetchone()


def check(*, database_url: str, code: str, acknowledged: Path, drained: bool = False) -> dict:
    acks = [json.loads(line) for line in acknowledged.read_text().splitlines() if line]
    with psycopg.connect(database_url) as conn, conn.cursor() as cur:
        (experiment_id,) = _one(
            cur, "SELECT id FROM studies_experiment WHERE code = %(c)s", {"c": code}
        )
        p = {"e": experiment_id}
        tasks, quota_total = _one(
            cur,
            "SELECT count(*), coalesce(sum(quota), 0) FROM studies_task WHERE experiment_id = %(e)s",
            p,
        )
        over_quota_tasks = _one(
            cur,
            """SELECT count(*) FROM (
                 SELECT t.id FROM studies_task t
                 JOIN studies_response r ON r.task_id = t.id AND r.slot_id IS NOT NULL
                 WHERE t.experiment_id = %(e)s GROUP BY t.id, t.quota HAVING count(*) > t.quota
               ) x""",
            p,
        )[0]
        duplicate_responses = _one(
            cur,
            """SELECT count(*) FROM (
                 SELECT r.task_id, r.rater_id FROM studies_response r
                 JOIN studies_task t ON t.id = r.task_id WHERE t.experiment_id = %(e)s
                 GROUP BY r.task_id, r.rater_id HAVING count(*) > 1
               ) x""",
            p,
        )[0]
        duplicate_assignments = _one(
            cur,
            """SELECT count(*) FROM (
                 SELECT task_id, rater_id FROM studies_assignment WHERE experiment_id = %(e)s
                 GROUP BY task_id, rater_id HAVING count(*) > 1
               ) x""",
            p,
        )[0]
        responses, in_quota, late, over_quota = _one(
            cur,
            """SELECT count(*), count(r.slot_id), count(*) FILTER (WHERE r.late),
                      count(*) FILTER (WHERE r.over_quota)
               FROM studies_response r JOIN studies_task t ON t.id = r.task_id
               WHERE t.experiment_id = %(e)s""",
            p,
        )
        slots, slots_answered, slots_leased = _one(
            cur,
            """SELECT count(*), count(*) FILTER (WHERE is_answered),
                      count(*) FILTER (WHERE NOT is_answered AND holder_id IS NOT NULL)
               FROM studies_slot WHERE experiment_id = %(e)s""",
            p,
        )
        slot_response_mismatch = _one(
            cur,
            """SELECT
                 (SELECT count(*) FROM studies_slot s
                  WHERE s.experiment_id = %(e)s AND s.is_answered
                    AND NOT EXISTS (SELECT 1 FROM studies_response r WHERE r.slot_id = s.id))
               + (SELECT count(*) FROM studies_response r JOIN studies_slot s ON s.id = r.slot_id
                  WHERE s.experiment_id = %(e)s AND NOT s.is_answered)""",
            p,
        )[0]
        answered_counter_mismatch = _one(
            cur,
            """SELECT count(*) FROM studies_participation pa
               WHERE pa.experiment_id = %(e)s AND pa.answered <> (
                 SELECT count(*) FROM studies_response r
                 JOIN studies_assignment a ON a.id = r.assignment_id
                 WHERE a.participation_id = pa.id)""",
            p,
        )[0]
        cur.execute(
            "SELECT status, count(*) FROM studies_participation WHERE experiment_id = %(e)s "
            "GROUP BY status ORDER BY status",
            p,
        )
        participations = dict(cur.fetchall())

        cur.execute("CREATE TEMP TABLE ack (public_id uuid PRIMARY KEY, choice int)")
        with cur.copy("COPY ack (public_id, choice) FROM STDIN") as copy:
            for a in acks:
                copy.write_row((a["assignment_id"], a["choice"]))
        missing_assignment, other_experiment, missing_response, choice_mismatch = _one(
            cur,
            """SELECT count(*) FILTER (WHERE a.id IS NULL),
                      count(*) FILTER (WHERE a.experiment_id <> %(e)s),
                      count(*) FILTER (WHERE a.id IS NOT NULL AND r.id IS NULL),
                      count(*) FILTER (WHERE r.choice <> k.choice)
               FROM ack k
               LEFT JOIN studies_assignment a ON a.public_id = k.public_id
               LEFT JOIN studies_response r ON r.assignment_id = a.id""",
            p,
        )
        missing_samples = [
            str(row[0])
            for row in cur.execute(
                """SELECT k.public_id FROM ack k
                   LEFT JOIN studies_assignment a ON a.public_id = k.public_id
                   LEFT JOIN studies_response r ON r.assignment_id = a.id
                   WHERE r.id IS NULL OR r.choice <> k.choice OR a.experiment_id <> %(e)s
                   LIMIT 10""",
                p,
            ).fetchall()
        ]
        conn.rollback()
    acknowledged_missing = (
        missing_assignment + other_experiment + missing_response + choice_mismatch
    )
    report = {
        "experiment_code": code,
        "experiment_id": experiment_id,
        "tasks": tasks,
        "quota_total": quota_total,
        "slots": slots,
        "slots_answered": slots_answered,
        "slots_leased": slots_leased,
        "slots_unanswered": slots - slots_answered,
        "responses": responses,
        "responses_in_quota": in_quota,
        "responses_late": late,
        "responses_over_quota": over_quota,
        "acknowledged_by_client": len(acks),
        "stored_not_acknowledged": responses - (len(acks) - acknowledged_missing),
        "participations": participations,
        "participations_not_completed": sum(
            n for status, n in participations.items() if status != "completed"
        ),
        "over_quota_tasks": over_quota_tasks,
        "duplicate_responses": duplicate_responses,
        "duplicate_assignments": duplicate_assignments,
        "acknowledged_missing": acknowledged_missing,
        "acknowledged_missing_breakdown": {
            "no_assignment": missing_assignment,
            "other_experiment": other_experiment,
            "no_response": missing_response,
            "other_choice": choice_mismatch,
        },
        "acknowledged_missing_samples": missing_samples,
        "slot_response_mismatch": slot_response_mismatch,
        "answered_counter_mismatch": answered_counter_mismatch,
        "drained_run": drained,
    }
    checked = FAULTS + (DRAINED_FAULTS if drained else ())
    report["faults"] = {k: report[k] for k in checked if report[k]}
    report["ok"] = not report["faults"]
    return report


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--code", required=True, help="the experiment's rater code")
    parser.add_argument("--acknowledged", type=Path, required=True)
    parser.add_argument("--drained", action="store_true", help="the run drained the study")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    report = check(
        database_url=args.database_url,
        code=args.code,
        acknowledged=args.acknowledged,
        drained=args.drained,
    )
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    sys.exit(0 if report["ok"] else 1)


if __name__ == "__main__":
    main()
