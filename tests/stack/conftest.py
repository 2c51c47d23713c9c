"""Fixtures of the stack tests: a fresh PostgreSQL database, Redis db 14, moto_server
and two "hosts" (web and worker) with separate local folders.

The tests are marked ``stack``, ``postgres`` and ``worker``: tests/conftest.py
skips them (or fails them under ``XAI_REQUIRE_ALL=1``) when PostgreSQL or Redis
is missing; :func:`_stack_tools` does the same for the binaries they start.
"""

from __future__ import annotations

import secrets
import subprocess
from pathlib import Path

import pytest
from django.conf import settings

from tests.conftest import _require_all
from tests.stack.harness import (
    BIN,
    Host,
    MotoServer,
    free_port,
    host_env,
    pg_binary,
)

STACK_REDIS_DB = 14


def _skip_or_fail(reason: str) -> None:
    if _require_all():
        pytest.fail(f"XAI_REQUIRE_ALL=1 but this stack test {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def _stack_tools(request):
    needs = [
        ("moto_server", (BIN / "moto_server").exists()),
        ("createdb", bool(pg_binary("createdb"))),
    ]
    if "private_postgres" in request.fixturenames:
        needs += [("initdb", bool(pg_binary("initdb"))), ("pg_ctl", bool(pg_binary("pg_ctl")))]
    missing = [name for name, present in needs if not present]
    if missing:
        _skip_or_fail(f"needs {', '.join(missing)} (moto[server] in the venv, PostgreSQL binaries)")


def _server() -> tuple[str, str, str]:
    db = settings.DATABASES["default"]
    return db.get("HOST") or "127.0.0.1", str(db.get("PORT") or 5432), db.get("USER") or "postgres"


@pytest.fixture
def stack_database():
    """A fresh database ``xai_stack_<random>`` on the tests' PostgreSQL server, dropped after."""
    host, port, user = _server()
    name = f"xai_stack_{secrets.token_hex(4)}"
    subprocess.run([pg_binary("createdb"), "-h", host, "-p", port, "-U", user, name],
                   check=True, capture_output=True, timeout=60)  # fmt: skip
    yield f"postgres://{user}@{host}:{port}/{name}"
    subprocess.run([pg_binary("dropdb"), "--force", "-h", host, "-p", port, "-U", user, name],
                   capture_output=True, timeout=60)  # fmt: skip


@pytest.fixture
def stack_broker():
    """Redis db 14, flushed: no message of an earlier run is delivered to this one."""
    import os

    import redis

    base = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0").rsplit("/", 1)[0]
    url = f"{base}/{STACK_REDIS_DB}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


@pytest.fixture
def moto(tmp_path):
    server = MotoServer(tmp_path).start()
    server.create_bucket()
    yield server
    server.stop()


@pytest.fixture
def make_host(tmp_path):
    """``make_host(name, database_url=..., broker_url=..., s3_endpoint=...)``: a host with
    its own folders under tmp_path/<name>; its processes are stopped after the test."""
    hosts: list[Host] = []

    def make(name: str, *, port: int = 0, **kw) -> Host:
        root = tmp_path / name
        host = Host(name=name, root=root, env=host_env(root, port=port, **kw), log_dir=tmp_path)
        hosts.append(host)
        return host

    yield make
    for host in reversed(hosts):
        host.stop_all()


@pytest.fixture
def web_port() -> int:
    return free_port()


def dump_logs(tmp_path: Path) -> str:
    """The tail of every process log, for a failing assertion's message."""
    return "\n".join(
        f"--- {log.name}\n{log.read_text(errors='replace')[-2500:]}"
        for log in sorted(tmp_path.glob("*.log"))
    )
