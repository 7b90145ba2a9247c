"""Studies survive Ctrl-C and numerical blow-ups: real processes, real signals, a real SQLite file."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import yaml
from optuna.trial import TrialState
from support import REPO, SNN_STUDY, cli, combos, load, study_yaml


def _wait_for_running_trial(db, proc, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.3)
        if not db.exists():
            continue
        try:
            if any(t.state == TrialState.RUNNING and t.intermediate_values for t in load(db).trials):
                return True
        except Exception:  # the study is still being created
            continue
    return False


def _long_trials(tmp_path, **study):
    config = study_yaml(tmp_path, **study)
    data = yaml.safe_load(config.read_text())
    data["training"]["epochs"] = 8
    config.write_text(yaml.safe_dump(data))
    return config


def test_ctrl_c_stops_within_seconds_with_exit_130_and_a_resume_hint(tmp_path):
    config = _long_trials(tmp_path)
    db = tmp_path / "study.db"
    proc = subprocess.Popen([*SNN_STUDY, "run", "--config", str(config), "--quiet"], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert _wait_for_running_trial(db, proc)
    sent = time.time()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert time.time() - sent < 10
    assert proc.returncode == 130
    assert "run the same command again to resume" in err and "Traceback" not in err
    trials = load(db).trials
    assert not any(t.state == TrialState.RUNNING for t in trials)  # the interrupted trial is not left running
    interrupted = [t for t in trials if t.state == TrialState.FAIL]
    assert len(interrupted) == 1 and interrupted[0].user_attrs.get("interrupted") is True
    # shown as interrupted, not as failed: in the runner's line and in list
    assert f"trial {interrupted[0].number} " in err and ": interrupted; it runs again when the study resumes" in err
    listed = cli("list", "--storage", f"sqlite:///{db}", "--format", "json")
    assert [(r["fail"], r["interrupted"]) for r in json.loads(listed.stdout)] == [(0, 1)]
    resumed = cli("run", "--config", str(config), "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    counted = combos(load(db).trials)
    assert len(counted) == 8 and set(counted.values()) == {1}


def test_ctrl_c_to_a_multi_worker_run_stops_every_worker(tmp_path):
    config = _long_trials(tmp_path)
    db = tmp_path / "study.db"
    proc = subprocess.Popen([*SNN_STUDY, "run", "--config", str(config), "--workers", "2", "--quiet"], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert _wait_for_running_trial(db, proc)
    proc.send_signal(signal.SIGINT)  # to the parent only: it must pass it on
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "resume" in err
    assert not any(t.state == TrialState.RUNNING for t in load(db).trials)


def test_a_diverging_trial_fails_with_its_reason_and_the_study_goes_on(tmp_path):
    config = study_yaml(tmp_path)
    data = yaml.safe_load(config.read_text())
    data["training"].update(optimizer="sgd", loss="ce_max_membrane")
    data["search"] = {"neuron": ["leaky"], "lr": [0.01, 1.0e38]}
    config.write_text(yaml.safe_dump(data))
    proc = cli("run", "--config", str(config), "--quiet")
    assert proc.returncode == 0, proc.stderr
    trials = {t.params["lr"]: t for t in load(tmp_path / "study.db").trials}
    assert trials[0.01].state == TrialState.COMPLETE
    assert trials[1.0e38].state == TrialState.FAIL
    assert "diverged" in trials[1.0e38].user_attrs["failure"]
    again = cli("run", "--config", str(config), "--quiet")  # a diverged trial is done: it is not retried forever
    assert again.returncode == 0 and len(load(tmp_path / "study.db").trials) == 2
