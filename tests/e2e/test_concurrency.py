"""One SQLite file, everyone at once: 4 workers, `snn-study report` in a loop and optuna-dashboard polled over HTTP.

WAL and the busy timeout promise that readers never block writers nor they the
readers, so nothing may fail, nothing may say "database is locked", every HTTP
answer is 200, and every report is a consistent snapshot.
"""

from __future__ import annotations

import csv
import json
import sqlite3
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import yaml
from optuna.trial import TrialState
from support import REPO, SNN_STUDY, combos, env, free_port, load, study_yaml

LOCKED = "database is locked"


def study_exists(db: Path, name: str) -> bool:
    if not db.exists():
        return False
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return conn.execute("SELECT 1 FROM studies WHERE study_name = ?", (name,)).fetchone() is not None
    except sqlite3.Error:  # the tables are still being created
        return False


def get(url: str) -> tuple[int | None, str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")
    except OSError as e:
        return None, repr(e)


def csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_four_workers_a_report_loop_and_the_dashboard_share_one_sqlite_file(tmp_path):
    config = study_yaml(tmp_path)
    data = yaml.safe_load(config.read_text())
    data["training"]["epochs"] = 3  # long enough for reports and HTTP polls to overlap the trials
    config.write_text(yaml.safe_dump(data))
    db, url = tmp_path / "study.db", f"sqlite:///{tmp_path / 'study.db'}"
    logs = tmp_path / "logs"
    logs.mkdir()

    run_out, run_err = (logs / "run.out").open("w"), (logs / "run.err").open("w")
    runner = subprocess.Popen([*SNN_STUDY, "run", "--config", str(config), "--workers", "4", "--quiet"], cwd=REPO,
                              env=env(), stdout=run_out, stderr=run_err)
    dashboard = None
    reports: list[dict] = []
    answers: list[tuple[str, int | None, str, bool]] = []  # url, status, body (when not 200), while the run went on
    errors: list[str] = []
    try:
        deadline = time.time() + 120
        while not study_exists(db, "grid8") and runner.poll() is None and time.time() < deadline:
            time.sleep(0.2)
        assert study_exists(db, "grid8"), "the study was not created"

        port = free_port()
        dash_log = (logs / "dashboard.log").open("w")
        dashboard = subprocess.Popen([*SNN_STUDY, "dashboard", "--storage", url, "--port", str(port)], cwd=tmp_path,
                                     env=env(), stdout=dash_log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"

        def poll_dashboard():
            while get(f"{base}/api/meta")[0] is None and dashboard.poll() is None:
                time.sleep(0.2)  # still starting
            while runner.poll() is None:
                status, body = get(f"{base}/api/studies")
                answers.append(("/api/studies", status, "" if status == 200 else body, runner.poll() is None))
                if status == 200:
                    ids = [s["study_id"] for s in json.loads(body)["study_summaries"] if s["study_name"] == "grid8"]
                    for study_id in ids:
                        path = f"/api/studies/{study_id}?after=0"
                        status, detail = get(base + path)
                        answers.append((path, status, "" if status == 200 else detail, runner.poll() is None))
                        if status == 200:
                            assert "trials" in json.loads(detail)
                time.sleep(0.3)

        def report(i: int) -> dict:
            out = tmp_path / f"report-{i}"
            started_while_running = runner.poll() is None
            proc = subprocess.run([*SNN_STUDY, "report", "--study", "grid8", "--storage", url, "--out", str(out)],
                                  cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=300)
            return {"out": out, "proc": proc, "during": started_while_running and runner.poll() is None}

        def report_loop():
            i = 0
            while runner.poll() is None:
                reports.append(report(i))
                i += 1

        def guarded(body):
            def target():
                try:
                    body()
                except BaseException as exc:  # an assertion in a thread must fail the test, not vanish
                    errors.append(f"{body.__name__}: {exc!r}")
            return target

        threads = [threading.Thread(target=guarded(poll_dashboard)), threading.Thread(target=guarded(report_loop))]
        for t in threads:
            t.start()
        runner.wait(timeout=900)
        for t in threads:
            t.join(timeout=300)
        reports.append(report(len(reports)))  # the finished study
    finally:
        for p in (runner, dashboard):
            if p is not None and p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    p.kill()
        run_out.close()
        run_err.close()
    assert dashboard.returncode is not None, "the dashboard is still running"
    assert not errors, errors

    outputs = {"run stdout": (logs / "run.out").read_text(), "run stderr": (logs / "run.err").read_text(),
               "dashboard": (logs / "dashboard.log").read_text()}
    for i, r in enumerate(reports):
        outputs[f"report {i}"] = r["proc"].stdout + r["proc"].stderr
    assert runner.returncode == 0, outputs["run stderr"]

    study = load(db)
    trials = study.trials
    assert not [t.number for t in trials if t.state == TrialState.FAIL], "trials failed"
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    counted = combos(trials)
    assert len(counted) == 8 and set(counted.values()) == {1}

    assert not [name for name, text in outputs.items() if LOCKED in text], \
        {name: text[-2000:] for name, text in outputs.items() if LOCKED in text}
    assert [a for a in answers if a[1] != 200] == [], "dashboard answers other than 200"
    assert sum(a[3] for a in answers) >= 5, "the dashboard was hardly polled while the study ran"

    assert any(r["during"] for r in reports), "no report ran while the study was running"
    final_complete = sum(t.state == TrialState.COMPLETE for t in trials)
    for r in reports:
        assert r["proc"].returncode == 0, r["proc"].stderr
        rows = csv_rows(r["out"] / "trials.csv")
        assert len(rows) <= len(trials)
        assert sum(row["state"] == "COMPLETE" for row in rows) <= final_complete
        assert {row["state"] for row in rows} <= {"COMPLETE", "PRUNED", "RUNNING", "WAITING"}
        summary = csv_rows(r["out"] / "summary.csv")
        assert sum(int(s["trials"]) for s in summary) == len(rows)
        assert (r["out"] / "index.html").is_file()
    final = csv_rows(reports[-1]["out"] / "trials.csv")
    assert len(final) == len(trials) and {row["state"] for row in final} <= {"COMPLETE", "PRUNED"}

    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
