"""A database password stays out of command lines, stored studies, the dashboard and every printed line; the
dashboard changes nothing unless asked. Real processes; the password cases on a PostgreSQL server of their own
(conftest's ``postgres_url``), with a role that logs in by password."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import optuna
import pytest
import sqlalchemy as sa
import yaml
from support import REPO, SNN_STUDY, cli, dashboard_server, env, load, study_yaml

from storage import open_storage


def cmdlines() -> dict[int, str]:
    """Every process's command line, as any local user can read it (``ps``, ``/proc/PID/cmdline``)."""
    out = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                out[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
    return out


def workers_of(pid: int, lines: dict[int, str]) -> list[int]:
    return [p for p, line in lines.items() if " _worker " in f"{line} " and _parent(p) == pid]


def _parent(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except OSError:
        return None


def tiny(tmp_path: Path, storage: str, one: bool = False, **study) -> Path:
    """The tiny grid study (or a one-trial study) on ``storage``, weights in ``tmp_path/artifacts``."""
    path = study_yaml(tmp_path, storage=storage, artifacts=str(tmp_path / "artifacts"), **study)
    if one:
        data = yaml.safe_load(path.read_text())
        data["search"] = {"neuron": ["leaky"]}
        data["training"]["epochs"] = 1
        path.write_text(yaml.safe_dump(data))
    return path


def watch_workers(proc: subprocess.Popen, secret: str) -> tuple[set[int], list[str]]:
    """Until ``proc`` ends: the worker processes seen, and every command line that held ``secret``."""
    seen: set[int] = set()
    leaks: list[str] = []
    while proc.poll() is None:
        lines = cmdlines()
        seen |= set(workers_of(proc.pid, lines))
        leaks += [line for line in lines.values() if secret in line]
        time.sleep(0.1)
    return seen, leaks


@pytest.fixture
def password_role(postgres_url):
    """``(url with the password, url without it, the password)`` for a new role that owns the test database."""
    secret = f"S3cret-{uuid.uuid4().hex}"
    role = f"snn_pw_{uuid.uuid4().hex[:8]}"
    parsed = sa.engine.make_url(postgres_url).set(drivername="postgresql+psycopg2")
    admin = sa.create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE ROLE {role} LOGIN PASSWORD '{secret}'"))
        conn.execute(sa.text(f'ALTER DATABASE "{parsed.database}" OWNER TO {role}'))
    bare = sa.engine.make_url(postgres_url).set(username=role, password=None)
    yield bare.set(password=secret).render_as_string(hide_password=False), bare.render_as_string(), secret
    owner = sa.create_engine(parsed, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with owner.connect() as conn:
        conn.execute(sa.text(f"REASSIGN OWNED BY {role} TO CURRENT_USER"))
        conn.execute(sa.text(f"DROP OWNED BY {role}"))
    owner.dispose()
    with admin.connect() as conn:
        conn.execute(sa.text(f'ALTER DATABASE "{parsed.database}" OWNER TO CURRENT_USER'))
        conn.execute(sa.text(f"DROP ROLE {role}"))
    admin.dispose()


def passwords_checked(url_without_password: str) -> bool:
    """Whether the server refuses the role without its password (not so where it trusts every local login)."""
    engine = sa.create_engine(sa.engine.make_url(url_without_password).set(drivername="postgresql+psycopg2",
                                                                             password="wrong"),
                              poolclass=sa.pool.NullPool)
    try:
        with engine.connect():
            return False
    except sa.exc.OperationalError:
        return True
    finally:
        engine.dispose()


def test_the_password_is_in_no_command_line_stored_study_dashboard_answer_or_printed_line(tmp_path, password_role):
    """Defect 5: with a PostgreSQL URL, the password was on every worker's command line, in the stored study config
    (so in optuna-dashboard), and in the start and "done" lines."""
    url, _, secret = password_role
    config = tiny(tmp_path, url)
    proc = subprocess.Popen([*SNN_STUDY, "run", "--config", str(config), "--workers", "2"], cwd=REPO, env=env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        seen, leaks = watch_workers(proc, secret)
        out, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err[-3000:]
    assert len(seen) == 2, "the workers were never seen: the command-line check proves nothing"
    assert not leaks, f"the password was on a command line: {leaks[0][:300]}"
    printed = out + err
    assert "storage postgresql://" in printed and "***" in printed  # the URL is shown, masked
    assert secret not in printed

    storage = open_storage(url, heartbeat_interval=None, create=False)
    try:
        study = optuna.load_study(study_name="grid8", storage=storage)
        stored = json.dumps([study.user_attrs, [t.user_attrs for t in study.trials],
                             [t.system_attrs for t in study.trials]])
    finally:
        storage.engine.dispose()
    assert "***" in stored and secret not in stored

    listed = cli("list", "--storage", url)
    assert listed.returncode == 0 and secret not in listed.stdout + listed.stderr
    log = tmp_path / "dashboard.log"
    with dashboard_server(url, log) as base:
        answers = [urllib.request.urlopen(f"{base}/api/studies", timeout=30).read().decode()]
        for s in json.loads(answers[0])["study_summaries"]:
            answers.append(urllib.request.urlopen(f"{base}/api/studies/{s['study_id']}", timeout=30).read().decode())
    assert "study_fingerprint" in answers[1] and "***" in answers[1]  # the answer that would hold the config
    assert not [a for a in answers if secret in a]
    assert secret not in log.read_text()


def test_the_password_can_stay_out_of_every_file(tmp_path, password_role):
    """Defect 5: libpq's PGPASSWORD and ~/.pgpass (a URL without a password), or ${NAME} in the URL, keep the
    password out of the config; without any, one line says the login failed."""
    url, bare, secret = password_role
    if not passwords_checked(bare):
        if os.environ.get("CI"):
            pytest.fail("CI's PostgreSQL must check passwords for roles other than postgres (.ci/run)")
        pytest.skip("this PostgreSQL server trusts every login: a password could not be told from none")
    no_file = {**env(), "PGPASSFILE": str(tmp_path / "no-pgpass")}
    no_file.pop("PGPASSWORD", None)

    def snn(*args: str, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([*SNN_STUDY, *args], cwd=REPO, env={**no_file, **(extra_env or {})},
                              capture_output=True, text=True, timeout=600)

    refused = snn("list", "--storage", bare)
    assert refused.returncode == 2 and len(refused.stderr.splitlines()) == 1, refused.stderr
    assert "password" in refused.stderr and secret not in refused.stderr

    with_variable = bare.replace("@", ":${SNN_TEST_DB_PASSWORD}@", 1)
    missing = snn("run", "--config", str(tiny(tmp_path, with_variable, one=True)), "--quiet")
    assert missing.returncode == 2 and len(missing.stderr.splitlines()) == 1, missing.stderr
    assert "SNN_TEST_DB_PASSWORD" in missing.stderr and "not set" in missing.stderr

    ran = snn("run", "--config", str(tiny(tmp_path, with_variable, one=True)), "--workers", "2", "--quiet",
              extra_env={"SNN_TEST_DB_PASSWORD": secret})
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert secret not in ran.stdout + ran.stderr

    from_environment = snn("list", "--storage", bare, extra_env={"PGPASSWORD": secret})
    assert from_environment.returncode == 0, from_environment.stderr
    assert from_environment.stdout.split()[:1] == ["study"] and "grid8" in from_environment.stdout

    pgpass = tmp_path / "pgpass"
    parsed = sa.engine.make_url(bare)
    pgpass.write_text(f"{parsed.host}:{parsed.port}:{parsed.database}:{parsed.username}:{secret}\n")
    pgpass.chmod(0o600)
    from_file = snn("list", "--storage", bare, extra_env={"PGPASSFILE": str(pgpass)})
    assert from_file.returncode == 0, from_file.stderr
    assert "grid8" in from_file.stdout


def test_the_workers_command_lines_hold_no_part_of_the_study_config(tmp_path):
    """Defect 5 without a server: the config (which may hold a password) reaches the workers on their stdin."""
    marker = f"never-on-a-command-line-{uuid.uuid4().hex[:8]}"
    config = tiny(tmp_path, f"sqlite:///{tmp_path / 'study.db'}", name=marker)
    proc = subprocess.Popen([*SNN_STUDY, "run", "--config", str(config), "--workers", "2", "--quiet"], cwd=REPO,
                            env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        seen, leaks = watch_workers(proc, marker)
        _, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err[-3000:]
    assert len(seen) == 2 and not leaks, leaks[:1]
    assert len(load(tmp_path / "study.db", marker).trials) == 8


def _delete(base: str, study_id: int) -> int:
    request = urllib.request.Request(f"{base}/api/studies/{study_id}", method="DELETE", data=b"{}",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_the_dashboard_is_read_only_unless_started_writable(tmp_path):
    """optuna-dashboard lets any local process delete a study; `snn-study dashboard` refuses every request that
    would change the storage unless started with --writable."""
    db = tmp_path / "study.db"
    url = f"sqlite:///{db}"
    optuna.create_study(study_name="keep", storage=url, direction="maximize")
    study_id = optuna.load_study(study_name="keep", storage=url)._study_id
    with dashboard_server(url, tmp_path / "read-only.log") as base:
        assert json.loads(urllib.request.urlopen(f"{base}/api/studies", timeout=30).read())["study_summaries"]
        assert _delete(base, study_id) == 403
    assert optuna.study.get_all_study_names(storage=url) == ["keep"]
    assert "read-only" in (tmp_path / "read-only.log").read_text()
    with dashboard_server(url, tmp_path / "writable.log", "--writable") as base:
        assert _delete(base, study_id) in (200, 204)  # the same request, allowed: the refusal above was the guard
    assert optuna.study.get_all_study_names(storage=url) == []
