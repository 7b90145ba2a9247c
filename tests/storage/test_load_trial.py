"""A trial's model back in one line: ``storage.load_trial`` rebuilds the trained network from the study alone."""

from __future__ import annotations

import optuna
import pytest

import storage
from objectives import (
    WEIGHTS_MIMETYPE,
    ConfigError,
    Objective,
    TrialConfig,
    TrialRecord,
    cell_study_name,
    cost_metrics,
    load,
)


def _study(url: str, name: str, tiny: dict, lrs: list[float], weights: bool = True) -> optuna.Study:
    """Study ``name`` of one tiny synthetic trial per learning rate, its weights saved as artifacts."""
    study = optuna.create_study(study_name=name, storage=storage.open_storage(url, heartbeat_interval=None),
                                direction="maximize")

    def suggest(trial):
        lr = trial.suggest_float("lr", 1e-4, 1.0, log=True)
        return TrialConfig.from_dict({**tiny, "training": {**tiny["training"], "lr": lr}})

    for lr in lrs:
        study.enqueue_trial({"lr": lr})
    study.optimize(Objective(suggest, storage.artifact_store(url) if weights else None), n_trials=len(lrs))
    return study


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A SQLite study of three trials (different learning rates, so different accuracies)."""
    from support import TINY

    tmp = tmp_path_factory.mktemp("load-trial")
    url = f"sqlite:///{tmp / 'study.db'}"
    study = _study(url, "tiny", TINY, [0.002, 0.02, 0.2])
    return tmp, url, study


def _test_acc(model, cfg) -> float:
    return cost_metrics(model, cfg, load(cfg.dataset, "cpu").test).accuracy


def test_the_best_trial_by_validation_accuracy_comes_back_with_its_recorded_test_accuracy_exactly(built):
    _, url, study = built
    model, cfg = storage.load_trial(url, "tiny")
    best = max(study.trials, key=lambda t: t.value)
    record = TrialRecord.from_frozen_trial("tiny", best)
    assert record.config is not None and cfg.to_dict() == TrialConfig.from_dict(record.config).to_dict()
    assert not model.training
    assert _test_acc(model, cfg) == record.test_acc


@pytest.mark.parametrize("number", [0, 1, 2])
def test_any_trial_by_number_comes_back_with_its_recorded_test_accuracy_exactly(built, number):
    _, url, study = built
    model, cfg = storage.load_trial(url, "tiny", number)
    assert cfg.training.lr == study.trials[number].params["lr"]
    assert _test_acc(model, cfg) == study.trials[number].user_attrs["test_acc"]


def test_the_weights_artifact_is_served_as_binary_whatever_the_systems_table_calls_pt(tmp_path, tiny, monkeypatch):
    """optuna-dashboard serves an artifact with the MIME type its meta records; guessed from ``.pt``, Debian's table
    made the weights a SNES page table (issue 15)."""
    import mimetypes

    guess = mimetypes.guess_type
    monkeypatch.setattr(mimetypes, "guess_type", lambda name, strict=True: ("application/vnd.snesdev-page-table", None)
                        if str(name).endswith(".pt") else guess(name, strict))
    study = _study(f"sqlite:///{tmp_path / 'study.db'}", "mime", tiny, [0.01])
    [meta] = optuna.artifacts.get_all_artifact_meta(study.trials[0], storage=study._storage)
    assert meta.artifact_id == study.trials[0].user_attrs["weights_artifact"]
    assert meta.mimetype == WEIGHTS_MIMETYPE == "application/octet-stream" and meta.filename.endswith(".pt")


def test_the_best_is_chosen_by_validation_accuracy_never_by_test_accuracy(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(study_name="s", storage=storage.open_storage(url, heartbeat_interval=None),
                                direction="maximize")
    for val, test in ((0.9, 0.5), (0.8, 0.99), (0.7, 1.0)):
        study.add_trial(optuna.trial.create_trial(value=val, user_attrs=TrialRecord.attrs(test_acc=test)))
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.PRUNED, intermediate_values={1: 0.95}))
    assert storage.best_trial(study._storage, "s").number == 0


def test_the_best_of_a_study_is_taken_over_its_per_combination_studies(tmp_path, tiny):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    from objectives import Combination

    names = [cell_study_name("pc", Combination("leaky", "fast_sigmoid", "bptt")),
             cell_study_name("pc", Combination("leaky", "fast_sigmoid", "tbptt"))]
    studies = [_study(url, names[0], tiny, [0.002]), _study(url, names[1], tiny, [0.05])]
    best_study = max(studies, key=lambda s: s.best_value)
    model, cfg = storage.load_trial(url, "pc")
    assert _test_acc(model, cfg) == best_study.best_trial.user_attrs["test_acc"]
    with pytest.raises(ConfigError, match="holds no trials itself"):
        storage.load_trial(url, "pc", 0)


def test_what_cannot_be_loaded_is_one_line_naming_it(built, tmp_path, tiny):
    tmp, url, _ = built
    with pytest.raises(ConfigError, match="trial: got 7; study 'tiny' has trials 0 to 2"):
        storage.load_trial(url, "tiny", 7)
    with pytest.raises(ConfigError, match="no such study"):
        storage.load_trial(url, "nope")
    with pytest.raises(ConfigError, match="artifacts: got .*elsewhere.*; no such folder"):
        storage.load_trial(url, "tiny", artifacts=str(tmp_path / "elsewhere"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match="does not hold the weights artifact"):
        storage.load_trial(url, "tiny", artifacts=str(empty))
    other = f"sqlite:///{tmp_path / 'other.db'}"
    _study(other, "bare", tiny, [0.01], weights=False)
    with pytest.raises(ConfigError, match="has no saved weights"):
        storage.load_trial(other, "bare")


def test_a_study_without_a_complete_trial_has_no_best(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    optuna.create_study(study_name="empty", storage=storage.open_storage(url, heartbeat_interval=None))
    with pytest.raises(ConfigError, match="study: got 'empty'; has no complete trial"):
        storage.load_trial(url, "empty")
