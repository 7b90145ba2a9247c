"""`snn-study run`, `best`, `list` as a user runs them: real processes on temporary SQLite files."""

from __future__ import annotations

import json
import os
import shlex
import signal
import sqlite3
import subprocess
import time
import urllib.request
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState
from support import (
    REPO,
    SNN_STUDY,
    array_yaml,
    assert_each_array_cell_exactly_once,
    cli,
    combos,
    dashboard_server,
    load,
    study_yaml,
)

from objectives import TrialRecord
from storage import open_storage, trial_id


def test_a_grid_run_by_three_workers_holds_each_combination_exactly_once(tmp_path):
    proc = cli("run", "--config", str(study_yaml(tmp_path)), "--workers", "3", "--quiet")
    assert proc.returncode == 0, proc.stderr
    study = load(tmp_path / "study.db")
    counted = combos(study.trials)
    assert len(counted) == 8 and set(counted.values()) == {1}
    # each finished trial carries what the dashboard and the reports need
    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    records = [TrialRecord.from_frozen_trial("grid8", t) for t in done]
    kept = ("config", "test_acc", "spike_rates", "n_params", "seconds", "weights_artifact")
    assert done and all(getattr(r, name) not in (None, ()) for r in records for name in kept)
    assert (tmp_path / "artifacts").is_dir()
    assert "snn-study dashboard --storage" in proc.stdout and "snn-study best --study grid8" in proc.stdout


def test_fused_arrays_of_two_with_two_workers_run_each_cell_once_with_the_values_of_trials_run_alone(tmp_path):
    values = {}
    for size in (1, 2):
        folder = tmp_path / f"size{size}"
        folder.mkdir()
        proc = cli("run", "--config", str(array_yaml(folder)), "--workers", "2", "--quiet",
                   "--set", f"study.array_size={size}")
        assert proc.returncode == 0, proc.stderr
        trials = load(folder / "study.db").trials
        assert_each_array_cell_exactly_once(trials)
        values[size] = {(t.params["neuron"], t.params["training.seed"]): (t.value, t.user_attrs["test_acc"])
                        for t in trials}
        arrays = {tuple(t.user_attrs.get("array", ())) for t in trials}  # who trained together
        assert arrays == {()} if size == 1 else {len(a) for a in arrays} == {2}, arrays
    assert values[2] == values[1]  # to the bit on a CPU: a member's training is its lone run's


def test_running_the_same_command_again_resumes_and_adds_nothing_when_done(tmp_path):
    config = study_yaml(tmp_path)
    assert cli("run", "--config", str(config), "--quiet").returncode == 0
    again = cli("run", "--config", str(config), "--quiet")
    assert again.returncode == 0
    assert len(load(tmp_path / "study.db").trials) == 8


def test_list_shows_trial_counts_and_the_best_value(tmp_path):
    assert cli("run", "--config", str(study_yaml(tmp_path)), "--quiet").returncode == 0
    proc = cli("list", "--storage", f"sqlite:///{tmp_path / 'study.db'}")
    assert proc.returncode == 0
    header, row = proc.stdout.splitlines()[:2]
    assert header.split()[:3] == ["study", "complete", "pruned"]
    fields = row.split()
    assert fields[0] == "grid8" and int(fields[1]) + int(fields[2]) == 8


def test_best_then_train_reproduces_the_trials_validation_accuracy_exactly(tmp_path):
    assert cli("run", "--config", str(study_yaml(tmp_path)), "--quiet").returncode == 0
    out = tmp_path / "best"
    proc = cli("best", "--study", "grid8", "--storage", f"sqlite:///{tmp_path / 'study.db'}", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    files = sorted(p.name for p in out.iterdir())
    assert "best.yaml" in files and len(files) >= 2
    study = load(tmp_path / "study.db")
    best_trial = study.best_trial
    train = cli("train", "--config", str(out / "best.yaml"), "--json", "--quiet")
    assert train.returncode == 0, train.stderr
    assert json.loads(train.stdout.splitlines()[-1])["val_acc"] == best_trial.value


def test_best_by_neuron_writes_one_file_per_neuron(tmp_path):
    # no pruner: on this 5-step net the synaptic neuron (time constant 10 steps) trails the leaky one after the
    # first epoch, and a pruner may leave it no complete trial to export
    assert cli("run", "--config", str(study_yaml(tmp_path, pruner={"name": "none"})), "--quiet").returncode == 0
    out = tmp_path / "best"
    assert cli("best", "--study", "grid8", "--storage", f"sqlite:///{tmp_path / 'study.db'}", "--out", str(out),
               "--by", "neuron").returncode == 0
    assert sorted(p.name for p in out.iterdir()) == ["best.yaml", "leaky.yaml", "synaptic.yaml"]


@pytest.mark.parametrize("sampler", ["grid", "tpe"])
def test_impossible_combinations_are_left_out_said_so_first_and_no_trial_fails(tmp_path, sampler):
    # the alpha neuron (3 spiking layers here) gets no gradient in its first layer through a one-step window
    config = study_yaml(tmp_path, name="impossible", sampler=sampler, n_trials=8)
    data = yaml.safe_load(config.read_text())
    data["search"] = {"neuron": ["alpha", "leaky"], "surrogate": ["atan"], "backprop": ["bptt", "rtrl"]}
    data["training"]["epochs"] = 1
    config.write_text(yaml.safe_dump(data))
    proc = cli("run", "--config", str(config), "--quiet")
    assert proc.returncode == 0, proc.stderr
    first = proc.stderr.splitlines()[0]  # (yaml.safe_dump sorts the search keys: backprop comes first)
    assert first.startswith("snn-study run: leaving out the combinations that cannot learn by construction: "
                            "backprop=rtrl x neuron=alpha (training.backprop: the alpha neuron answers")
    trials = load(tmp_path / "study.db", "impossible").trials
    ran = {(c["model"]["neuron"], c["training"]["backprop"])
           for c in (TrialRecord.from_frozen_trial("impossible", t).config or {} for t in trials)}
    assert [t.state for t in trials if t.state not in (TrialState.COMPLETE, TrialState.PRUNED)] == []
    assert len(trials) == (3 if sampler == "grid" else 8)
    assert ("alpha", "rtrl") not in ran and ("alpha", "bptt") in ran and ("leaky", "rtrl") in ran


@pytest.mark.parametrize(
    "args, message",
    [
        (["--set", "search.neuron=[leaky, izhikevich]"], "search.neuron -> model.neuron: got 'izhikevich'"),
        (["--set", "search.lr={low: 0.1, high: 0.01}"], "search.lr: got"),
        (["--set", "search.tbptt_window=9"],
         "search.tbptt_window: got 9; must be <= the fewest time steps searched (5)"),
        (["--set", "study.sampler=cmaes"], "study.sampler: got 'cmaes'"),
        (["--storage", "mysqlx://nowhere/db"], "study.storage"),
    ],
)
def test_a_bad_config_exits_2_with_one_line_and_leaves_no_study(tmp_path, args, message):
    proc = cli("run", "--config", str(study_yaml(tmp_path)), *args)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and proc.stderr.strip().count("\n") == 0
    assert not (tmp_path / "study.db").exists()


def test_best_of_a_study_that_does_not_exist_exits_2_and_writes_nothing(tmp_path):
    assert cli("run", "--config", str(study_yaml(tmp_path)), "--quiet").returncode == 0
    out = tmp_path / "best"
    proc = cli("best", "--study", "nope", "--storage", f"sqlite:///{tmp_path / 'study.db'}", "--out", str(out))
    assert proc.returncode == 2 and "--study: got 'nope'; no such study" in proc.stderr
    assert not out.exists()


def _children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def test_a_worker_killed_mid_trial_loses_nothing(tmp_path):
    config = study_yaml(tmp_path, heartbeat_interval=1, grace_period=3)
    data = yaml.safe_load(config.read_text())
    data["training"]["epochs"] = 6  # long enough to be killed in the middle
    config.write_text(yaml.safe_dump(data))
    db = tmp_path / "study.db"
    parent = subprocess.Popen([*SNN_STUDY, "run", "--config", str(config), "--workers", "2", "--quiet"], cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        victim = None
        while victim is None and time.time() < deadline:
            time.sleep(0.3)
            if not db.exists():
                continue
            try:
                running = [t for t in load(db).trials
                           if t.state == TrialState.RUNNING and len(t.intermediate_values) >= 1]
            except Exception:  # the study is still being created
                continue
            if running and len(_children(parent.pid)) == 2:
                victim = _children(parent.pid)[0]
        assert victim is not None, "no trial got going"
        os.kill(victim, signal.SIGKILL)
        _, err = parent.communicate(timeout=300)
    finally:
        if parent.poll() is None:
            parent.kill()
    # one worker died: the run says so; the other re-ran its trial once stale, so the study is complete (exit 0)
    assert parent.returncode == 0, err
    assert "1 of 2 workers ended with exit [-9]; the study is complete" in err
    rerun = cli("run", "--config", str(config), "--quiet")
    assert rerun.returncode == 0, rerun.stderr
    study = load(db)
    counted = combos(study.trials)
    assert len(counted) == 8 and set(counted.values()) == {1}
    assert any(t.state == TrialState.FAIL for t in study.trials)  # the killed one, failed by its missing heartbeat
    assert not any(t.state in (TrialState.RUNNING, TrialState.WAITING) for t in study.trials)
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_two_workers_share_a_grid_study_on_postgresql(tmp_path, postgres_url):
    config = study_yaml(tmp_path, storage=postgres_url, artifacts=str(tmp_path / "artifacts"))
    proc = cli("run", "--config", str(config), "--workers", "2", "--quiet")
    assert proc.returncode == 0, proc.stderr
    study = optuna.load_study(study_name="grid8", storage=open_storage(postgres_url, heartbeat_interval=None))
    counted = combos(study.trials)
    assert len(counted) == 8 and set(counted.values()) == {1}
    listed = cli("list", "--storage", postgres_url)
    assert listed.returncode == 0 and "grid8" in listed.stdout


def test_the_dashboard_serves_a_trials_weights_from_the_folder_the_study_saved_them_in(tmp_path):
    weights = tmp_path / "weights"
    config = study_yaml(tmp_path, artifacts=str(weights))
    data = yaml.safe_load(config.read_text())
    data["search"].update(neuron=["leaky"], surrogate=["atan"], backprop=["bptt"])
    config.write_text(yaml.safe_dump(data))
    assert cli("run", "--config", str(config), "--quiet").returncode == 0
    url = f"sqlite:///{tmp_path / 'study.db'}"
    trial = load(tmp_path / "study.db").trials[0]
    artifact = trial.user_attrs["weights_artifact"]
    with dashboard_server(url, tmp_path / "dashboard.log") as base:
        with urllib.request.urlopen(f"{base}/api/studies", timeout=10) as response:
            study_id = json.loads(response.read())["study_summaries"][0]["study_id"]
        url = f"{base}/artifacts/{study_id}/{trial_id(trial)}/{artifact}"
        with urllib.request.urlopen(url, timeout=10) as response:
            served = response.read()
    assert served == (weights / artifact).read_bytes()
    assert f"(artifacts: {weights})" in (tmp_path / "dashboard.log").read_text()
    assert not (tmp_path / "artifacts").exists()  # the dashboard reads; it made no folder of its own


def test_the_hints_a_run_prints_are_shell_quoted(tmp_path):
    """A study named with a space, in a folder with a space: every command the run suggests can be pasted as it is
    (issue 11, 15)."""
    folder = tmp_path / "my runs"
    folder.mkdir()
    config = study_yaml(folder, name="my study", pruner={"name": "none"})
    data = yaml.safe_load(config.read_text())
    data["search"] = {"neuron": ["leaky"], "surrogate": ["atan"], "backprop": ["bptt"]}
    config.write_text(yaml.safe_dump(data))
    proc = cli("run", "--config", str(config), "--quiet")
    assert proc.returncode == 0, proc.stderr
    url = f"sqlite:///{folder / 'study.db'}"
    dashboard, report, best = (line.split(":  ", 1)[1] for line in proc.stdout.splitlines()[-3:])
    assert shlex.split(dashboard) == ["snn-study", "dashboard", "--storage", url], proc.stdout
    assert shlex.split(report) == ["snn-study", "report", "--study", "my study", "--storage", url, "--out", "report/"]
    assert shlex.split(best) == ["snn-study", "best", "--study", "my study", "--storage", url, "--out", "best/"]
