"""scripts/deploy_check.py: what it refuses in a compose file (no Docker engine needed)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("deploy_check", ROOT / "scripts" / "deploy_check.py")
deploy_check = importlib.util.module_from_spec(spec)
sys.modules["deploy_check"] = deploy_check  # its dataclass looks itself up there
spec.loader.exec_module(deploy_check)


def test_interpolation_needs_the_env_sample_unless_escaped_or_defaulted():
    document = yaml.safe_load(
        "a: ${SET}\nb: ${UNSET}\nc: ${DEFAULTED:-x}\nd: $${SHELL_VAR}\ne: ${REQUIRED:?say}\n"
    )
    assert deploy_check.undefined_variables(document, {"SET": "1"}) == {"UNSET", "REQUIRED"}


def test_web_and_a_worker_sharing_a_volume_is_refused():
    services = yaml.safe_load(
        "web: {volumes: [media:/srv/media]}\n"
        "worker-gpu: {volumes: ['media:/srv/media', 'scratch:/srv/pipeline']}\n"
        "nginx: {ports: ['80:80', '443:443']}\n"
    )
    problems = deploy_check._shape_checks(
        ROOT / "docker-compose.yml", services, {"STORAGE_BACKEND": "s3"}
    )
    assert problems == ["web and worker-gpu share volumes ['media']: use the bucket"]


def test_the_worker_only_file_needs_a_gpu_the_gpu_queue_and_a_restart_policy():
    services = {"worker-gpu": {"command": ["celery", "-A", "config", "worker", "-Q", "cpu"]}}
    env = {"DATABASE_URL": "x", "CELERY_BROKER_URL": "y", "AWS_STORAGE_BUCKET_NAME": "z"}
    problems = deploy_check._shape_checks(ROOT / "deploy" / "worker.compose.yml", services, env)
    assert problems == [
        "worker-gpu must listen on -Q gpu",
        "worker-gpu has no GPU device reservation",
        "worker-gpu has no restart policy",
    ]


def test_the_shipped_worker_compose_file_passes():
    report = deploy_check.Report()
    path = ROOT / "deploy" / "worker.compose.yml"
    deploy_check.check_compose(path, deploy_check.COMPOSE_FILES[path], report)
    assert [row[0] for row in report.rows] == ["OK"], report.rows


def test_a_malformed_env_sample_line_is_named(tmp_path):
    sample = ROOT / "var" / "deploy-check-test.env"
    sample.parent.mkdir(exist_ok=True)
    sample.write_text("GOOD=1\nnot a setting\n")
    try:
        with pytest.raises(ValueError, match=r"deploy-check-test.env:2: not a KEY=VALUE line"):
            deploy_check.read_env_file(sample)
    finally:
        sample.unlink()
