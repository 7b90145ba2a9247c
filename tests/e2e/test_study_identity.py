"""A study has one config, one objective and one owner: real `snn-study` processes on temporary SQLite files.

A run that would change what a study's trials mean (another config, an extended search,
someone else's study, an in-memory database) is refused with exit 2 and one line, and
writes nothing: every file under the folder is the same afterwards (size, sha256, mtime).
"""

from __future__ import annotations

import hashlib
import shutil
import signal
import subprocess
import time
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState
from support import REPO, SNN_STUDY, cli, combos, copy_study, env, load, study_yaml

optuna.logging.set_verbosity(optuna.logging.WARNING)


def snapshot(root: Path) -> dict[str, tuple]:
    out = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_dir():
            out[rel] = ("dir",)
        else:
            st = path.stat()
            out[rel] = ("file", st.st_size, st.st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest())
    return out


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A folder holding the finished 8-combination grid study `grid8` (study.db, artifacts/) and its config."""
    root = tmp_path_factory.mktemp("finished")
    proc = cli("run", "--config", str(study_yaml(root)), "--quiet")
    assert proc.returncode == 0, proc.stderr
    return root


@pytest.fixture
def study(finished, tmp_path) -> Path:
    """A copy of the finished study whose config names the copy's database."""
    copy_study(finished, tmp_path)
    study_yaml(tmp_path)
    return tmp_path


def edit(folder: Path, **changes) -> Path:
    """The folder's study.yaml with ``section.field`` changes (``search.x=None`` removes x), as changed.yaml."""
    data = yaml.safe_load((folder / "study.yaml").read_text())
    for key, value in changes.items():
        section, field = key.split(".", 1)
        if value is None:
            data[section].pop(field, None)
        else:
            data.setdefault(section, {})[field] = value
    path = folder / "changed.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def refused(folder: Path, *args: str) -> str:
    """Run ``snn-study run ARGS`` in ``folder``; assert exit 2, one line, and nothing written; the line."""
    before = snapshot(folder)
    proc = subprocess.run([*SNN_STUDY, "run", *args, "--quiet"], cwd=folder, env=env(), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert snapshot(folder) == before, "the refused run changed files"
    return lines[0]


GROWN = [  # defect 2: the search space grows
    ({"search.surrogate": ["fast_sigmoid", "atan", "sigmoid"]}, "search.surrogate"),
    ({"search.neuron": ["leaky", "synaptic", "alpha"]}, "search.neuron"),
    ({"search.lr": {"low": 0.001, "high": 0.1, "log": True}}, "search.lr"),
    ({"search.optimizer": ["adam", "sgd"]}, "search.optimizer"),
    ({"search.tbptt_window": [2, 3]}, "search.tbptt_window"),
]
DRIFTED = [  # defect 3: anything else that changes what a trial means, or where its weights are kept
    ({"training.epochs": 3}, "training.epochs"),
    ({"model.num_steps": 6}, "model.num_steps"),
    ({"dataset.train_subset": 300}, "dataset.train_subset"),
    ({"study.artifacts": "elsewhere"}, "study.artifacts"),
    ({"study.sampler": "random", "study.n_trials": 8}, "study.sampler"),
    ({"study.pruner": {"name": "median", "n_startup_trials": 2, "n_warmup_steps": 1}}, "study.pruner.n_warmup_steps"),
]


@pytest.mark.parametrize("changes, field", GROWN + DRIFTED, ids=[f for _, f in GROWN + DRIFTED])
def test_a_run_with_another_config_is_refused_naming_the_field_and_writes_nothing(study, changes, field):
    line = refused(study, "--config", str(edit(study, **changes)))
    assert line.startswith(f"snn-study run: error: {field}: got "), line
    assert "--study-name" in line
    assert len(load(study / "study.db").trials) == 8
    assert not [t for t in load(study / "study.db").trials if t.state == TrialState.FAIL]


def test_what_only_says_how_a_study_runs_may_change(study):
    relative = study / "changed-storage"
    relative.mkdir()
    path = edit(study, **{"study.workers": 2, "study.heartbeat_interval": 2, "study.grace_period": 7,
                          "study.storage": "sqlite:///../study.db", "training.device": "auto"})
    proc = subprocess.run([*SNN_STUDY, "run", "--config", str(path), "--quiet"], cwd=relative, env=env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert len(load(study / "study.db").trials) == 8  # complete already: nothing to add
    grown = edit(study, **{"search.neuron": ["leaky"], "search.surrogate": ["fast_sigmoid", "atan", "sigmoid"],
                           "search.backprop": ["bptt"]})
    extended = cli("run", "--config", str(grown), "--study-name", "grid8-2", "--quiet")
    assert extended.returncode == 0, extended.stderr  # what the refusal says to do works: a new study
    counted = combos(load(study / "study.db", "grid8-2").trials)
    assert len(counted) == 3 and set(counted.values()) == {1}


def test_a_second_config_started_while_a_study_runs_is_refused_and_the_first_completes(tmp_path):
    """Defects 3 and 4: two configs running at once interleaved their trials in one grid, and each failed the
    queued trials of the other."""
    config = study_yaml(tmp_path)
    data = yaml.safe_load(config.read_text())
    data["training"]["epochs"] = 4
    config.write_text(yaml.safe_dump(data))
    first = subprocess.Popen([*SNN_STUDY, "run", "--config", str(config), "--quiet"], cwd=REPO, env=env(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and first.poll() is None:
            try:
                if any(t.state == TrialState.RUNNING for t in load(tmp_path / "study.db").trials):
                    break
            except Exception:  # the study is still being created
                pass
            time.sleep(0.3)
        other = dict(data, search={**data["search"], "neuron": ["leaky", "alpha"]})
        second_config = tmp_path / "second.yaml"
        second_config.write_text(yaml.safe_dump(other))
        second = cli("run", "--config", str(second_config), "--quiet")
        assert second.returncode == 2 and len(second.stderr.splitlines()) == 1, second.stderr
        assert "search.neuron" in second.stderr
        _, err = first.communicate(timeout=600)
    finally:
        if first.poll() is None:
            first.send_signal(signal.SIGINT)
            first.wait(timeout=60)
    assert first.returncode == 0, err
    trials = load(tmp_path / "study.db").trials
    counted = combos(trials)
    assert len(counted) == 8 and set(counted.values()) == {1}, counted
    assert not [t for t in trials if t.state in (TrialState.FAIL, TrialState.WAITING, TrialState.RUNNING)]
    assert {t.params["neuron"] for t in trials} == {"leaky", "synaptic"}


def test_a_queued_trial_of_another_config_is_left_waiting_never_failed(tmp_path):
    """Defect 4: a worker claimed any waiting trial, including one whose values are not among its choices, and failed
    it with a traceback."""
    from storage import open_storage
    from study._config import StudyConfig
    from study._runner import prepare

    config = study_yaml(tmp_path)
    data = yaml.safe_load(config.read_text())
    data["search"]["neuron"] = ["leaky"]  # 4 combinations
    config.write_text(yaml.safe_dump(data))
    cfg = StudyConfig.from_dict(data)
    # first in the queue: a trial another config (an older release, another user) queued into this study
    optuna.create_study(study_name="grid8", storage=cfg.study.storage, direction="maximize").enqueue_trial(
        {"neuron": "alpha", "surrogate": "atan", "backprop": "bptt"})
    storage = open_storage(cfg.study.storage)
    prepare(cfg, storage)
    storage.engine.dispose()
    run = cli("run", "--config", str(config), "--quiet")
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    trials = load(tmp_path / "study.db").trials
    assert trials[0].state == TrialState.WAITING and trials[0].system_attrs["fixed_params"]["neuron"] == "alpha"
    counted = combos(trials)
    assert len(counted) == 4 and set(counted.values()) == {1}
    assert not [t for t in trials if t.state == TrialState.FAIL]


def foreign_study(db: Path, name: str, **kwargs) -> None:
    study = optuna.create_study(study_name=name, storage=f"sqlite:///{db}", **kwargs)
    n = len(study.directions)
    study.optimize(lambda t: tuple(t.suggest_float(f"x{i}", 0, 1) for i in range(n)) if n > 1
                   else t.suggest_float("x0", 0, 1), n_trials=3)


@pytest.mark.parametrize("kwargs, why", [
    ({"direction": "minimize"}, "minimizes its objective"),
    ({"directions": ["maximize", "maximize"]}, "has 2 objectives"),
    ({"direction": "maximize"}, "did not write"),
], ids=["minimize", "two-objectives", "maximize-not-ours"])
def test_a_study_of_the_same_name_written_by_another_tool_is_not_joined(tmp_path, kwargs, why):
    """Defect 9: `run` silently joined another tool's study of the same name, whatever its direction."""
    foreign_study(tmp_path / "study.db", "grid8", **kwargs)
    study_yaml(tmp_path)
    line = refused(tmp_path, "--config", str(tmp_path / "study.yaml"))
    assert "study.name: got 'grid8'" in line and why in line and "--study-name" in line, line
    assert len(load(tmp_path / "study.db").trials) == 3


@pytest.mark.parametrize("kwargs", [{"direction": "minimize"}, {"directions": ["maximize", "minimize"]}],
                         ids=["minimize", "two-objectives"])
def test_best_report_and_list_read_another_tools_study_or_refuse_in_one_line(tmp_path, kwargs):
    """Defect 9: `best` and `report` on another tool's study failed with tracebacks; `list` must not show a
    minimized value as if it were an accuracy."""
    db = tmp_path / "study.db"
    foreign_study(db, "other", **kwargs)
    url = f"sqlite:///{db}"
    before = snapshot(tmp_path)
    for args in (["best", "--study", "other", "--storage", url, "--out", str(tmp_path / "best")],
                 ["report", "--study", "other", "--storage", url, "--out", str(tmp_path / "report"),
                  "--no-dashboard"]):
        proc = cli(*args)
        assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1, proc.stderr[-3000:]
        assert "another tool's study" in proc.stderr
    assert snapshot(tmp_path) == before
    listed = cli("list", "--storage", url)
    assert listed.returncode == 0 and "Traceback" not in listed.stderr
    row = listed.stdout.splitlines()[1]
    assert row.split()[0] == "other" and "min" in row


def test_best_refuses_a_maximizing_study_whose_trials_have_no_run_config(tmp_path):
    """Defect 9: `best` wrote the default run config as the best of a study that never ran it."""
    db = tmp_path / "study.db"
    foreign_study(db, "other", direction="maximize")
    proc = cli("best", "--study", "other", "--storage", f"sqlite:///{db}", "--out", str(tmp_path / "best"))
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1, proc.stderr
    assert "no snn-study run config" in proc.stderr
    assert not (tmp_path / "best").exists()


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:", "sqlite:///file::memory:?cache=shared&uri=true",
                                 "sqlite:///file:x?mode=memory&uri=true"])
def test_an_in_memory_database_is_refused(tmp_path, url):
    """Defect 13: an in-memory SQLite database said "done" and lost everything (and each worker had its own)."""
    study_yaml(tmp_path)
    line = refused(tmp_path, "--config", str(tmp_path / "study.yaml"), "--storage", url)
    assert "study.storage" in line and "in-memory" in line, line


def test_an_artifact_folder_that_cannot_be_written_is_refused_before_anything_is_written(tmp_path):
    """Defect 10: a fully trained trial was thrown away when its weights could not be written."""
    (tmp_path / "not-a-folder").write_text("a file where the artifacts would go")
    study_yaml(tmp_path, artifacts=str(tmp_path / "not-a-folder" / "weights"))
    line = refused(tmp_path, "--config", str(tmp_path / "study.yaml"))
    assert "study.artifacts" in line and "cannot be written" in line, line
    assert not (tmp_path / "study.db").exists()


def test_weights_that_cannot_be_saved_after_training_leave_the_trial_complete_and_say_so(tmp_path):
    """Defect 10: when the artifact folder failed during the study, the trained trial became FAIL and the study
    stopped with a traceback; now the trial keeps its result, records why its weights are missing, and the study
    goes on."""
    config = study_yaml(tmp_path)
    data = yaml.safe_load(config.read_text())
    data["training"]["epochs"] = 4
    data["search"] = {"neuron": ["leaky", "synaptic"]}
    config.write_text(yaml.safe_dump(data))
    artifacts = tmp_path / "artifacts"
    proc = subprocess.Popen([*SNN_STUDY, "run", "--config", str(config), "--quiet"], cwd=REPO, env=env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 180
        while time.time() < deadline and proc.poll() is None:
            try:
                if any(t.state == TrialState.RUNNING for t in load(tmp_path / "study.db").trials):
                    break
            except Exception:  # the study is still being created
                pass
            time.sleep(0.2)
        assert artifacts.is_dir() and proc.poll() is None
        shutil.rmtree(artifacts)
        artifacts.write_text("the artifact folder is gone: a file stands in its place")
        _, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "weights not saved" in err
    trials = load(tmp_path / "study.db").trials
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.COMPLETE]
    assert all(t.value is not None and "writing them failed" in t.user_attrs["weights_missing"] for t in trials)
    assert not any("weights_artifact" in t.user_attrs for t in trials)
