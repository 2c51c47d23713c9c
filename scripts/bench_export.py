"""Benchmark of the streamed response export (second half of ``make bench-analysis``).

Fills a scratch SQLite database (a temporary file) with a study of N answers (default 1,000,000: 200,000 pairwise tasks x 5
answers from 10,000 raters), then exports it with ``export_responses`` in a
fresh child process and prints wall time, rows/s and the child's peak RSS
(target: < 200 MB at 1,000,000 rows, i.e. memory stays flat).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _memory import peak_rss_mb  # noqa: E402

PER_TASK = 5


def _setup_django(db_url: str, var: Path) -> None:
    os.environ["DATABASE_URL"] = db_url
    os.environ["XAI_VAR_DIR"] = str(var)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def fill(n_answers: int, n_raters: int) -> str:
    """Create the study with bulk inserts; returns its slug."""
    from django.core.management import call_command
    from django.db import connection, transaction
    from django.utils import timezone

    from apps.pipeline.models import ModelFamily, ModelVariant, SourceImage, Stimulus
    from apps.studies.models import (
        Assignment,
        Experiment,
        Participation,
        Rater,
        Response,
        Study,
        Task,
    )  # fmt: skip

    call_command("migrate", verbosity=0)
    if connection.vendor == "sqlite":
        with connection.cursor() as cur:
            cur.execute("PRAGMA journal_mode=OFF")
            cur.execute("PRAGMA synchronous=OFF")
    n_tasks = n_answers // PER_TASK
    now = timezone.now()
    with transaction.atomic():
        family = ModelFamily.objects.create(
            name="bench", slug="bench", class_names=[f"c{i}" for i in range(10)]
        )
        variants = [
            ModelVariant.objects.create(
                family=family, label=f"cpr{c}", cpr_target=c, cpr_measured=c, conv_sparsity=0
            )
            for c in (1, 2)
        ]
        images = SourceImage.objects.bulk_create(
            SourceImage(
                family=family,
                key=f"k{i}",
                class_index=i % 10,
                class_name=f"c{i % 10}",
                split="test",
                file=f"f{i}",
            )
            for i in range(n_tasks)
        )
        stimuli_a = Stimulus.objects.bulk_create(
            (
                Stimulus(image=im, variant=variants[0], kind="heat", file="a", predicted_class=0)
                for im in images
            ),
            batch_size=5000,
        )
        stimuli_b = Stimulus.objects.bulk_create(
            (
                Stimulus(image=im, variant=variants[1], kind="heat", file="b", predicted_class=0)
                for im in images
            ),
            batch_size=5000,
        )
        study = Study.objects.create(name="bench", slug="bench", family=family, status="live")
        experiment = Experiment.objects.create(
            study=study,
            slug="exp1",
            name="exp1",
            kind="pairwise",
            scale_points=5,
            stimulus_kind="heat",
            pairs=[["cpr1", "cpr2"]],
            answers_per_task=PER_TASK,
            tasks_per_rater=n_tasks,
        )
        tasks = Task.objects.bulk_create(
            (
                Task(
                    experiment=experiment,
                    image=images[i],
                    stimulus_a=stimuli_a[i],
                    stimulus_b=stimuli_b[i],
                    left_is_a=i % 2 == 0,
                    quota=PER_TASK,
                    responses_received=PER_TASK,
                    position=i,
                )
                for i in range(n_tasks)
            ),
            batch_size=5000,
        )
        raters = Rater.objects.bulk_create(
            Rater(source="link", external_id=f"r{i}") for i in range(n_raters)
        )
        participations = Participation.objects.bulk_create(
            Participation(rater=r, experiment=experiment, target=n_tasks, answered=0)
            for r in raters
        )
    step = n_raters // PER_TASK
    batch: list = []
    for i, task in enumerate(tasks):
        for slot in range(PER_TASK):
            r = (i + slot * step) % n_raters
            batch.append((task, raters[r], participations[r], slot + 1))
        if len(batch) >= 20000 or i == len(tasks) - 1:
            with transaction.atomic():
                assignments = Assignment.objects.bulk_create(
                    Assignment(
                        participation=p,
                        rater=r,
                        task=t,
                        status="answered",
                        claimed_at=now,
                        expires_at=now,
                    )
                    for t, r, p, _ in batch
                )
                Response.objects.bulk_create(
                    Response(
                        assignment=a,
                        task=t,
                        rater=r,
                        slot=s,
                        choice=2,
                        answer="0",
                        value=0,
                        answer_raw="Equally reasonable",
                        response_ms=1000,
                        submitted_at=now,
                    )
                    for a, (t, r, _, s) in zip(assignments, batch, strict=True)
                )
            batch = []
    return study.slug


def child(slug: str, out: Path) -> None:
    from django.core.management import call_command

    base = peak_rss_mb()
    started = time.perf_counter()
    call_command("export_responses", slug, "--out", str(out))
    seconds = time.perf_counter() - started
    peak = peak_rss_mb()
    rows = sum(1 for _ in out.open()) - 1
    print(f"{rows} {seconds:.3f} {base:.1f} {peak:.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--answers", type=int, default=1_000_000)
    ap.add_argument("--raters", type=int, default=10_000)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--db", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _setup_django(args.db, Path(args.out).parent)
        child(args.child, Path(args.out))
        return
    with tempfile.TemporaryDirectory(prefix="bench-export-") as tmp:
        tmpdir = Path(tmp)
        db_url = f"sqlite:///{tmpdir / 'bench.sqlite3'}"
        _setup_django(db_url, tmpdir)
        started = time.perf_counter()
        slug = fill(args.answers, args.raters)
        print(
            f"filled a study of {args.answers:,} answers in {time.perf_counter() - started:.1f} s"
        )
        out = tmpdir / "responses.csv"
        result = subprocess.run(
            [sys.executable, __file__, "--child", slug, "--db", db_url, "--out", str(out)],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        )
        rows, seconds, base, peak = result.stdout.split()[-4:]
        print(
            f"export: {int(rows):,} rows in {float(seconds):.1f} s ({int(rows) / float(seconds):,.0f} rows/s)"
        )
        print(
            f"export peak RSS: {float(peak):.0f} MB (process after start-up: {float(base):.0f} MB; target < 200 MB)"
        )


if __name__ == "__main__":
    main()
