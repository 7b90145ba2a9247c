"""`snn-study best` as a newcomer uses it: configs that run on another machine, the weights beside them, and a
line for every combination it wrote nothing for."""

from __future__ import annotations

import optuna
import pytest
import torch
import yaml
from support import cli, load, study_yaml

from objectives import TrialConfig, TrialRecord, build_model, cost_metrics
from objectives import load as load_data


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A tiny grid study (no pruner: every combination completes), its URL and the study."""
    tmp = tmp_path_factory.mktemp("best-weights")
    assert cli("run", "--config", str(study_yaml(tmp, pruner={"name": "none"})), "--quiet").returncode == 0
    return tmp, f"sqlite:///{tmp / 'study.db'}", load(tmp / "study.db")


def test_best_weights_writes_each_configs_weights_beside_it_and_they_give_the_recorded_test_accuracy(
        built, tmp_path):
    _, url, study = built
    out = tmp_path / "best"
    proc = cli("best", "--study", "grid8", "--storage", url, "--out", str(out), "--weights")
    assert proc.returncode == 0, proc.stderr
    configs = sorted(out.glob("*.yaml"))
    assert len(configs) == 9 and sorted(out.glob("*.pt")) == [p.with_suffix(".pt") for p in configs]
    for path in configs:
        text = path.read_text()
        assert f"# weights: {path.stem}.pt beside this file" in text
        data = yaml.safe_load(text)
        assert data["dataset"]["root"] is None and "# data: dataset.root null reads $SNN_STUDY_DATA" in text
        number = int(text.split(": trial ")[1].split(",")[0])
        trial = study.trials[number]
        cfg = TrialConfig.from_dict(data)
        assert cfg.to_dict() == TrialConfig.from_dict(TrialRecord.from_frozen_trial("grid8", trial).config).replace(
            **{"dataset.root": None}).to_dict()
        model = build_model(cfg)
        model.load_state_dict(torch.load(path.with_suffix(".pt"), weights_only=True))
        assert cost_metrics(model, cfg, load_data(cfg.dataset, "cpu").test).accuracy == trial.user_attrs["test_acc"]


def test_best_without_weights_says_where_they_are_and_how_to_load_them(built, tmp_path):
    root, url, study = built
    out = tmp_path / "best"
    assert cli("best", "--study", "grid8", "--storage", url, "--out", str(out)).returncode == 0
    assert not list(out.glob("*.pt"))
    text = (out / "best.yaml").read_text()
    best = study.best_trial
    assert (f"# weights: artifact {best.user_attrs['weights_artifact']} in {root / 'artifacts'}; snn-study best "
            f"--weights copies them here, storage.load_trial({url!r}, 'grid8', {best.number}) loads the model") in text


def test_an_export_without_weights_removes_the_weights_an_earlier_one_left_beside_its_configs(built, tmp_path):
    """Weights left beside a config they do not belong to would load into its model as if they were its own."""
    _, url, _ = built
    out = tmp_path / "best"
    assert cli("best", "--study", "grid8", "--storage", url, "--out", str(out), "--weights").returncode == 0
    (out / "mine.pt").write_bytes(b"the user's own file")
    assert cli("best", "--study", "grid8", "--storage", url, "--out", str(out)).returncode == 0
    assert [p.name for p in out.glob("*.pt")] == ["mine.pt"] and len(list(out.glob("*.yaml"))) == 9


def test_best_names_each_combination_it_wrote_nothing_for_and_why(built, tmp_path):
    root, _, _ = built
    db = tmp_path / "study.db"
    db.write_bytes((root / "study.db").read_bytes())
    study = optuna.load_study(study_name="grid8", storage=f"sqlite:///{db}")
    config = TrialRecord.from_frozen_trial("grid8", study.trials[0]).config
    assert config is not None
    lapicque = {**config, "model": {**config["model"], "neuron": "lapicque"}}
    for state in (optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL):
        study.add_trial(optuna.trial.create_trial(state=state, user_attrs={"config": lapicque}))
    out = tmp_path / "best"
    proc = cli("best", "--study", "grid8", "--storage", f"sqlite:///{db}", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    cell = f"lapicque/{config['model']['surrogate']}/{config['training']['backprop']}"
    assert proc.stderr == f"snn-study best: skipped {cell}: no complete trial (1 fail, 2 pruned)\n"
    assert len(list(out.glob("*.yaml"))) == 9


def test_best_weights_names_a_trial_whose_weights_are_gone_and_still_writes_its_config(built, tmp_path):
    root, url, _ = built
    out = tmp_path / "best"
    empty = tmp_path / "no-weights"
    empty.mkdir()
    proc = cli("best", "--study", "grid8", "--storage", url, "--out", str(out), "--weights", "--artifacts", str(empty))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 9 and all("no weights copied (artifacts: got" in line for line in lines), proc.stderr
    assert len(list(out.glob("*.yaml"))) == 9 and not list(out.glob("*.pt"))
