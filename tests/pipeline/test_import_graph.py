"""The layering the Celery tasks rely on, read from the source (``ast``), not by importing:
``workers/`` is pure compute (no Django, no ``apps``, no Celery), and the pipeline's
models never import its services (which import the models)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _imports(path: Path, package: str | None = None) -> set[str]:
    """Every module ``path`` imports, anywhere in it (function bodies included),
    relative imports resolved against its package."""
    if package is None:
        package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            found |= {f"{module}.{alias.name}" for alias in node.names}
    return found


def _offending(imports: set[str], banned: tuple[str, ...]) -> list[str]:
    return sorted(m for m in imports if any(m == b or m.startswith(b + ".") for b in banned))


def test_the_scan_sees_lazy_and_relative_imports(tmp_path):
    # the checker itself: an import inside a function body and a relative one both count
    sample = tmp_path / "sample.py"
    sample.write_text("import os\ndef f():\n    from django.db import models\nfrom ..x import y\n")
    found = _imports(sample, package="workers.pipeline")
    assert _offending(found, ("django",)) == ["django.db", "django.db.models"]
    assert "workers.x.y" in found and "os" in found


def test_no_module_under_workers_imports_django_apps_or_celery():
    modules = sorted((ROOT / "workers").rglob("*.py"))
    assert len(modules) > 20  # the whole package was scanned
    bad = {
        str(p.relative_to(ROOT)): found
        for p in modules
        if (found := _offending(_imports(p), ("django", "apps", "config", "celery")))
    }
    assert bad == {}, f"workers/ must stay pure compute: {bad}"
    assert not (ROOT / "workers" / "tasks.py").exists()  # tasks live in apps/<app>/tasks.py


def test_pipeline_models_do_not_import_services():
    for name in ("models.py", "config_check.py"):
        found = _imports(ROOT / "apps" / "pipeline" / name)
        assert _offending(found, ("apps.pipeline.services",)) == [], name
    # the validation it needs comes from the module without that import
    assert "apps.pipeline.config_check.family_check_config" in _imports(
        ROOT / "apps" / "pipeline" / "models.py"
    )


def test_task_names_and_routes_match():
    from django.conf import settings

    from config.celery_app import app

    app.loader.import_default_modules()
    names = {
        "pipeline.run_job": "gpu",
        "pipeline.finish_job": "cpu",
        "pipeline.reap_stale_jobs": "cpu",
        "studies.expire_leases": "cpu",
        "studies.quality_pass": "cpu",
        "analysis.study_analyze": "cpu",
    }
    for name, queue in names.items():
        assert name in app.tasks, name
        route = app.amqp.router.route({}, name)
        assert route["queue"].name == queue, (name, route)
    scheduled = {entry["task"] for entry in app.conf.beat_schedule.values()}
    assert {"studies.expire_leases", "studies.quality_pass", "pipeline.reap_stale_jobs"} <= (
        scheduled
    )
    assert settings.CELERY_TASK_ACKS_LATE and settings.CELERY_TASK_REJECT_ON_WORKER_LOST
    for name in ("pipeline.run_job", "pipeline.finish_job", "analysis.study_analyze"):
        assert app.tasks[name].acks_late, name
