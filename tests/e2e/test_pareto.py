"""A study of two objectives as a user runs it: 2 workers, then `best` (the Pareto set), `list` and `report`.

The study (validation accuracy and synaptic operations, NSGA-II, tiny synthetic data) is built once per
session by real processes (``support.built_pareto_study``); the browser check of its report is in
``test_reports_browser.py``.
"""

from __future__ import annotations

import re

import optuna
import pytest
import yaml
from optuna.trial import TrialState
from support import PARETO, built_pareto_study, cli, copy_study

import reports
from objectives import TrialRecord
from storage import EpochLog


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(folder, URL, study) of a private copy of the session's study of two objectives."""
    root = built_pareto_study(tmp_path_factory)
    url = copy_study(root, tmp_path_factory.mktemp("pareto-db"), artifacts=False)
    return root, url, optuna.load_study(study_name=PARETO, storage=url)


def test_two_workers_complete_the_study_unpruned_each_trial_with_both_objectives(built):
    root, url, study = built
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    assert study.metric_names == ["val_acc", "synops"]
    assert len(study.trials) == 8 and all(t.state == TrialState.COMPLETE for t in study.trials)
    epochs = EpochLog(url, create=False).read(PARETO)
    for t in study.trials:
        record = TrialRecord.from_frozen_trial(PARETO, t)
        best = next(e for e in epochs if e["trial_number"] == t.number and e["epoch"] == record.best_epoch)
        # the objectives are the best epoch's validation accuracy and synaptic operations on the validation set
        assert t.values == [best["val_acc"], best["val_costs"]["synops"]]
        assert record.costs["n_samples"] == 300 and t.intermediate_values == {}
    stderr = (root / "run.stderr").read_text()
    assert "sampler nsga2, pruner none (objectives val_acc, synops: no pruning, early stopping by patience)" in stderr


def test_best_writes_exactly_the_pareto_optimal_trials_named_by_their_trade_off(built, tmp_path):
    _, url, study = built
    out = tmp_path / "best"
    proc = cli("best", "--study", PARETO, "--storage", url, "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    files = sorted(out.iterdir())
    assert [str(p) for p in files] == proc.stdout.split()
    front = sorted(study.best_trials, key=lambda t: (-t.values[0], t.number))
    assert len(files) == len(front) >= 1
    for rank, (path, trial) in enumerate(zip(files, front), 1):
        header = path.read_text().splitlines()[0]
        assert re.search(rf"Pareto-optimal trial {rank} of {len(front)} of study '{PARETO}': trial {trial.number} ",
                         header), header
        acc, ops = trial.values
        assert path.name.startswith(f"pareto-{rank:02d}-val{acc:.4f}-synops")
        # the trial's config, the data folder left to $SNN_STUDY_DATA (the study's config named none)
        config = TrialRecord.from_frozen_trial(PARETO, trial).config
        assert yaml.safe_load(path.read_text()) == {**config, "dataset": {**config["dataset"], "root": None}}
    # our own front is Optuna's, and --by has no meaning here
    records = [TrialRecord.from_frozen_trial(PARETO, t) for t in study.trials]
    assert {records[i].number for i in reports.pareto_front([r.values for r in records], ["maximize", "minimize"])} \
        == {t.number for t in study.best_trials}
    refused = cli("best", "--study", PARETO, "--storage", url, "--out", str(tmp_path / "x"), "--by", "neuron")
    assert refused.returncode == 2 and "exports its Pareto set" in refused.stderr
    assert not (tmp_path / "x").exists()


def test_a_pareto_optimal_config_re_runs_to_the_same_objective_values(built, tmp_path):
    _, url, study = built
    out = tmp_path / "best"
    assert cli("best", "--study", PARETO, "--storage", url, "--out", str(out)).returncode == 0
    first = sorted(out.iterdir())[0]
    train = cli("train", "--config", str(first), "--json", "--quiet")
    assert train.returncode == 0, train.stderr
    result = yaml.safe_load(train.stdout.splitlines()[-1])
    trial = max(study.best_trials, key=lambda t: (t.values[0], -t.number))
    assert [result["val_acc"], result["val_costs"]["synops"]] == trial.values
    assert result["costs"] == TrialRecord.from_frozen_trial(PARETO, trial).costs


def test_list_shows_the_size_of_the_pareto_set_instead_of_a_best_value(built):
    _, url, study = built
    proc = cli("list", "--storage", url)
    assert proc.returncode == 0, proc.stderr
    row = next(line for line in proc.stdout.splitlines() if line.startswith(PARETO))
    assert row.split()[1:6] == ["8", "0", "0", "0", "0"]
    assert row.split()[-2:] == [str(len(study.best_trials)), "pareto"]


def test_the_report_marks_the_pareto_set_and_draws_its_front(built, tmp_path):
    _, url, study = built
    report = reports.export(url, PARETO, tmp_path / "report", dashboard=False)
    trials = reports.read_csv(tmp_path / "report" / "trials.csv")
    assert {r["number"] for r in trials if r["pareto_optimal"] == "True"} == {t.number for t in study.best_trials}
    assert {r["number"]: r["value"] for r in trials} == {t.number: t.values[0] for t in study.trials}
    assert {r["number"]: r["val_synops"] for r in trials} == {t.number: t.values[1] for t in study.trials}
    figure = report.figures["pareto"]
    assert figure is not None and (tmp_path / "report" / "figures" / "pareto.html").is_file()
    ringed = [tr for tr in figure.data if tr.marker is not None and tr.marker.line.width == 2.5]
    assert len(ringed) == 2 * len(study.best_trials)  # in both panels: synaptic operations and energy proxy


def test_a_study_resumed_with_other_objectives_is_refused_in_one_line(built, tmp_path):
    root, url, _ = built
    config = yaml.safe_load((root / "study.yaml").read_text())
    config["study"]["storage"] = url
    config["study"]["objectives"] = ["val_acc", "energy_proxy_uj"]
    path = tmp_path / "other.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = cli("run", "--config", str(path), "--quiet")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        "snn-study run: error: study.objectives: got ['val_acc', 'energy_proxy_uj']; study 'front' in the storage "
        "optimizes ['val_acc', 'synops']; keep its objectives or choose another study.name")

