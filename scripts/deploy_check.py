"""``make deploy-check``: validate the deployment files without a Docker engine.

What it checks, and prints as a table at the end:

- ``docker-compose.yml`` and ``deploy/worker.compose.yml``, parsed with PyYAML
  (``x-`` anchors and ``<<`` merges resolved): every service has an image or a
  build whose Dockerfile exists, its env file has a sample, its command is a
  known entry point (gunicorn with an existing config, ``celery -A config`` on
  the gpu/cpu queues), every ``${VAR}`` without a default is set in the env
  sample, every named volume is declared and every bind-mounted file exists,
  ``depends_on`` targets exist (with a healthcheck where the condition needs
  one), web and workers have healthchecks and share no volume (files go
  through the bucket), nginx publishes 80 and 443, and the worker-only file
  reserves a GPU, listens on ``-Q gpu`` and restarts;
- ``python manage.py check --deploy --fail-level WARNING`` with ``deploy/env.sample``
  as the whole environment (no database or broker is contacted);
- ``nginx -t`` on ``deploy/nginx.conf`` when nginx is installed, with a
  throw-away self-signed certificate and ``web`` pointed at 127.0.0.1.

Exit status 1 when any check fails. What cannot be validated here (a Docker
engine, real certificates, a real S3 bucket) is listed as such, not passed.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
ENV_SAMPLE = ROOT / "deploy" / "env.sample"
# Each compose file and the sample its env file is copied from.
COMPOSE_FILES = {
    ROOT / "docker-compose.yml": {".env": ENV_SAMPLE},
    ROOT / "deploy" / "worker.compose.yml": {"worker.env": ROOT / "deploy" / "worker.env.sample"},
}
QUEUES = {"gpu", "cpu"}
# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}, $NAME; "$$" escapes.
VAR_RE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])[^}]*)?\}|\$([A-Za-z_]\w*)")


@dataclass
class Report:
    rows: list[tuple[str, str, str]] = field(default_factory=list)

    def add(self, status: str, what: str, detail: str = "") -> None:
        self.rows.append((status, what, detail))

    @property
    def failed(self) -> bool:
        return any(status == "FAIL" for status, _, _ in self.rows)

    def print(self) -> None:
        width = max(len(what) for _, what, _ in self.rows)
        print(f"\n{'status':9} {'what':{width}}  detail")
        print(f"{'-' * 9} {'-' * width}  {'-' * 40}")
        for status, what, detail in self.rows:
            print(f"{status:9} {what:{width}}  {detail}")


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines (comments and blank lines skipped; quotes stripped)."""
    values: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_]\w*", key.strip()):
            raise ValueError(f"{path.relative_to(ROOT)}:{number}: not a KEY=VALUE line: {line!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def _strings(node) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(key)
            yield from _strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item)


def undefined_variables(document, env: dict[str, str]) -> set[str]:
    """Interpolated names with no default that the env sample does not set."""
    missing = set()
    for text in _strings(document):
        for match in VAR_RE.finditer(text):
            name = match.group(1) or match.group(3)
            has_default = match.group(2) in (":-", "-")
            if name and not has_default and name not in env:
                missing.add(name)
    return missing


def _volume_source(entry) -> tuple[str, str]:
    if isinstance(entry, dict):
        return str(entry.get("source", "")), str(entry.get("target", ""))
    source, _, rest = str(entry).partition(":")
    return (source, rest.split(":")[0]) if rest else ("", source)


def check_compose(path: Path, samples: dict[str, Path], report: Report) -> None:
    name = path.relative_to(ROOT)
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        report.add("FAIL", f"{name}: parse", str(exc).splitlines()[0])
        return
    services: dict = document.get("services") or {}
    declared = set((document.get("volumes") or {}).keys())
    base = path.parent
    problems: list[str] = []
    env: dict[str, str] = {}
    for sample in samples.values():
        env.update(read_env_file(sample))
    if base != ROOT:  # the worker file may also use the site's names
        env = {**read_env_file(ENV_SAMPLE), **env}

    for service, spec in services.items():
        where = f"{service}"
        if not spec.get("image") and not spec.get("build"):
            problems.append(f"{where}: neither image nor build")
        build = spec.get("build")
        if build:
            build = {"context": build} if isinstance(build, str) else build
            context = (base / build.get("context", ".")).resolve()
            dockerfile = context / build.get("dockerfile", "Dockerfile")
            if not dockerfile.is_file():
                problems.append(f"{where}: build Dockerfile {dockerfile} is missing")
        for env_file in (
            [spec["env_file"]]
            if isinstance(spec.get("env_file"), str)
            else (spec.get("env_file") or [])
        ):
            if env_file not in samples:
                problems.append(f"{where}: env_file {env_file} has no sample to check it against")
        command = spec.get("command")
        if isinstance(command, str):
            command = command.split()
        if command and "celery" in command[:1]:
            args = command[1:]
            if args[:2] != ["-A", "config"]:
                problems.append(f"{where}: celery command without '-A config': {command}")
            if "worker" in args:
                queues = args[args.index("-Q") + 1].split(",") if "-Q" in args else []
                if not queues or not set(queues) <= QUEUES:
                    problems.append(f"{where}: worker queues {queues} are not among {QUEUES}")
                if not spec.get("healthcheck"):
                    problems.append(f"{where}: a worker without a healthcheck")
        if command and "gunicorn" in " ".join(command):
            conf = re.search(r"gunicorn\b.*?\s-c\s+(\S+)", " ".join(command))
            if conf and not (ROOT / conf.group(1)).is_file():
                problems.append(f"{where}: gunicorn config {conf.group(1)} is missing")
            health = " ".join(_strings(spec.get("healthcheck") or {}))
            if "/healthz" not in health:
                problems.append(f"{where}: web healthcheck does not probe /healthz")
        for entry in spec.get("volumes") or []:
            source, _target = _volume_source(entry)
            if not source:
                continue
            if source.startswith((".", "/")):
                host = (base / source).resolve()
                if not host.exists() and host.suffix:
                    problems.append(f"{where}: bind-mounted file {source} is missing")
                elif not host.exists():
                    report.add("NOT HERE", f"{name}: {service} mount {source}",
                               "a folder the operator provides at deploy time")  # fmt: skip
            elif source not in declared:
                problems.append(f"{where}: volume {source!r} is not declared under volumes:")
        depends = spec.get("depends_on") or {}
        for target, condition in (
            depends.items() if isinstance(depends, dict) else ((d, {}) for d in depends)
        ):
            if target not in services:
                problems.append(f"{where}: depends_on unknown service {target!r}")
            elif (condition or {}).get("condition") == "service_healthy" and not services[
                target
            ].get("healthcheck"):
                problems.append(f"{where}: waits for {target} healthy, which has no healthcheck")

    undefined = undefined_variables(document, env)
    if undefined:
        problems.append(
            f"${{VAR}} not set in {', '.join(str(s.relative_to(ROOT)) for s in samples.values())}: "
            + ", ".join(sorted(undefined))
        )
    problems += _shape_checks(path, services, env)
    if problems:
        for problem in problems:
            report.add("FAIL", f"{name}", problem)
    else:
        report.add("OK", f"{name}", f"{len(services)} services: " + ", ".join(services))


def _named_volumes(spec: dict) -> set[str]:
    names = set()
    for entry in spec.get("volumes") or []:
        source, _ = _volume_source(entry)
        if source and not source.startswith((".", "/")):
            names.add(source)
    return names


def _shape_checks(path: Path, services: dict, env: dict[str, str]) -> list[str]:
    """The deployment's invariants beyond "it parses"."""
    problems = []
    if path.name == "docker-compose.yml":
        if env.get("STORAGE_BACKEND", "local") != "s3":
            problems.append("deploy/env.sample must set STORAGE_BACKEND=s3 (the compose stack)")
        web = _named_volumes(services.get("web", {}))
        for service, spec in services.items():
            if service.startswith("worker") and (shared := web & _named_volumes(spec)):
                problems.append(f"web and {service} share volumes {sorted(shared)}: use the bucket")
        ports = " ".join(map(str, services.get("nginx", {}).get("ports", [])))
        if ":443" not in ports or ":80" not in ports:
            problems.append(f"nginx must publish 80 and 443, publishes {ports!r}")
        if "minio" in services and "minio" not in (services["minio"].get("profiles") or []):
            problems.append("the minio service must sit under the 'minio' profile")
    else:
        worker = services.get("worker-gpu") or {}
        command = worker.get("command") or []
        if "-Q" not in command or command[command.index("-Q") + 1] != "gpu":
            problems.append("worker-gpu must listen on -Q gpu")
        devices = (
            ((worker.get("deploy") or {}).get("resources") or {}).get("reservations") or {}
        ).get("devices") or []
        if not any("gpu" in (d.get("capabilities") or []) for d in devices):
            problems.append("worker-gpu has no GPU device reservation")
        if worker.get("restart") not in ("always", "unless-stopped", "on-failure"):
            problems.append("worker-gpu has no restart policy")
        for name in ("DATABASE_URL", "CELERY_BROKER_URL", "AWS_STORAGE_BUCKET_NAME"):
            if not env.get(name):
                problems.append(f"deploy/worker.env.sample does not set {name}")
    return problems


def check_django(report: Report) -> None:
    """``check --deploy`` with the env sample as the environment (plus PATH)."""
    env = {key: os.environ[key] for key in ("PATH", "HOME", "LANG") if key in os.environ}
    env.update(read_env_file(ENV_SAMPLE))
    # The sample's key is a placeholder that the check rightly calls weak (W009): fill it in
    # as an operator does (`python -c "import secrets; print(secrets.token_urlsafe(50))"`).
    if env.get("SECRET_KEY", "").startswith("change-me"):
        env["SECRET_KEY"] = secrets.token_urlsafe(50)
    command = [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    output = (result.stdout + result.stderr).strip()
    if result.returncode == 0:
        report.add("OK", "manage.py check --deploy", output.splitlines()[-1] if output else "")
    else:
        print(output)
        issues = [line for line in output.splitlines() if re.match(r"^\S+: \(", line.strip())]
        report.add(
            "FAIL",
            "manage.py check --deploy",
            f"exit {result.returncode}: "
            + ("; ".join(i.strip()[:80] for i in issues[:4]) or output.splitlines()[-1][:160]),
        )


def check_nginx(report: Report) -> None:
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else "")
    if not nginx:
        report.add("SKIP", "nginx -t deploy/nginx.conf", "nginx is not installed here")
        return
    openssl = shutil.which("openssl")
    with tempfile.TemporaryDirectory(prefix="deploy-check-nginx-") as tmp:
        work = Path(tmp)
        certs = work / "certs"
        certs.mkdir()
        if openssl:
            subprocess.run(
                [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                 "-subj", "/CN=localhost", "-keyout", str(certs / "privkey.pem"),
                 "-out", str(certs / "fullchain.pem")],
                check=True, capture_output=True, timeout=60,
            )  # fmt: skip
        conf = (ROOT / "deploy" / "nginx.conf").read_text()
        conf = re.sub(r"\bweb:8000\b", "127.0.0.1:8000", conf)
        conf = conf.replace("/etc/nginx/certs", str(certs))
        (work / "site.conf").write_text(conf)
        (work / "chain.pem").write_text("")
        mime = Path("/etc/nginx/mime.types")
        (work / "nginx.conf").write_text(
            f"pid {work}/nginx.pid;\nerror_log {work}/error.log;\nevents {{}}\n"
            f"http {{\n  {'include ' + str(mime) + ';' if mime.exists() else ''}\n"
            f"  access_log off;\n  client_body_temp_path {work}/body;\n"
            f"  proxy_temp_path {work}/proxy;\n  fastcgi_temp_path {work}/fcgi;\n"
            f"  uwsgi_temp_path {work}/uwsgi;\n  scgi_temp_path {work}/scgi;\n"
            f"  include {work}/site.conf;\n}}\n"
        )
        result = subprocess.run(
            [nginx, "-t", "-p", str(work), "-c", str(work / "nginx.conf")],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        output = (result.stdout + result.stderr).strip()
        if result.returncode == 0:
            report.add("OK", "nginx -t deploy/nginx.conf", "syntax ok (self-signed test cert)")
        else:
            print(output)
            report.add("FAIL", "nginx -t deploy/nginx.conf", output.splitlines()[-2:][0][:160])


def main() -> int:
    report = Report()
    for path, samples in COMPOSE_FILES.items():
        missing = [s for s in samples.values() if not s.is_file()]
        if not path.is_file() or missing:
            report.add("FAIL", str(path.relative_to(ROOT)), f"missing: {path} {missing}")
            continue
        try:
            check_compose(path, samples, report)
        except ValueError as exc:
            report.add("FAIL", str(path.relative_to(ROOT)), str(exc))
    check_django(report)
    check_nginx(report)
    for what, why in (
        ("docker compose config / build / up", "no Docker engine here: images are not built"),
        ("TLS certificates", "real ones come from certbot or your CA at deploy time"),
        ("S3 bucket and credentials", "no real S3 here (tests/stack runs moto_server instead)"),
        ("GPU reservation", "needs a host with the NVIDIA Container Toolkit"),
        ("cross-host networking", "firewall, pg_hba.conf and Redis auth of the real hosts"),
    ):
        report.add("NOT HERE", what, why)
    report.print()
    if report.failed:
        print("\ndeploy-check: FAILED (see the FAIL rows)")
        return 1
    print("\ndeploy-check: ok (NOT HERE rows were not validated on this machine)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
