"""The trial record: the one schema of what a trial stores, written and read back through Optuna."""

from __future__ import annotations

import json
import math

import optuna
import pytest

from objectives import Combination, TrialConfig, TrialRecord, cell_study_name, saved_artifacts


def told(attrs: dict, state=optuna.trial.TrialState.COMPLETE, params=None, value=0.9):
    study = optuna.create_study(direction="maximize", study_name="s")
    trial = study.ask()
    for name, v in (params or {}).items():
        trial.suggest_categorical(name, [v])
    for name, v in attrs.items():
        trial.set_user_attr(name, v)
    study.tell(trial, value if state == optuna.trial.TrialState.COMPLETE else None, state=state)
    return study.trials[-1]


def run_config(**overrides) -> dict:
    return TrialConfig.from_dict({}).replace(**overrides).to_dict()


def test_a_record_survives_the_round_trip_through_optuna_s_user_attributes():
    config = run_config(**{"model.neuron": "alpha", "model.surrogate": "atan", "training.backprop": "tbptt"})
    record = TrialRecord(study="s", number=0, state="COMPLETE", config=config, stage="replicate", tags=("k",),
                         test_acc=0.91, best_epoch=2, epochs=3, seconds=1.5, train_samples_per_s=100.0,
                         spike_rates=(0.1, 0.2, 0.3), n_params=7, stopped_early=False, weights_artifact="abc")
    back = TrialRecord.from_frozen_trial("s", told(record.to_user_attrs()))
    for name in TrialRecord.attr_names():
        assert getattr(back, name) == getattr(record, name), name
    assert back.value == 0.9 and back.done and back.combination == Combination("alpha", "atan", "tbptt")


def test_user_attributes_are_the_field_names_and_unknown_names_are_refused():
    assert TrialRecord.attrs(pruned_at=3, tags=("a",)) == {"pruned_at": 3, "tags": ["a"]}
    assert {"config", "test_acc", "pruned_at", "failure", "weights_artifact", "stage"} <= set(TrialRecord.attr_names())
    with pytest.raises(TypeError, match="not a TrialRecord user attribute"):
        TrialRecord.attrs(test_accuracy=0.5)


def test_what_is_stored_reads_well_in_the_dashboard_rounded_where_digits_are_noise_and_named():
    """optuna-dashboard shows each attribute as stored (issue 15): rates by layer name, 4 significant digits;
    seconds to 0.01 s; whole samples per second; the run config one attribute per section. Accuracies and costs
    are kept to the last digit."""
    config = run_config()
    costs = {"synops": 123456.789012345, "energy_proxy_uj": 0.123456789, "accuracy_by_step": [1 / 3],
             "decision_step": 4}
    stored = TrialRecord.attrs(spike_rates=(0.123456, 0.0567891, 0.2), seconds=12.3456, train_samples_per_s=1234.56,
                               test_acc=1 / 3, config=config, costs=costs, n_params=123456789)
    assert stored == {"spike_rates": {"conv1": 0.1235, "conv2": 0.05679, "output": 0.2}, "seconds": 12.35,
                      "train_samples_per_s": 1235, "test_acc": 1 / 3, "n_params": 123456789,
                      "costs": {"synops": 123456.789012345, "energy_proxy_uj": 0.123456789, "decision_step": 4},
                      "costs.layers": {}, "costs.accuracy_by_step": [1 / 3],
                      "config.dataset": config["dataset"], "config.model": config["model"],
                      "config.training": config["training"]}
    assert list(stored["spike_rates"]) == ["conv1", "conv2", "output"]
    odd = TrialRecord.attrs(seconds=float("nan"), train_samples_per_s=float("inf"), spike_rates=(float("inf"),))
    assert math.isnan(odd["seconds"]) and odd["train_samples_per_s"] == odd["spike_rates"]["output"] == float("inf")


@pytest.mark.parametrize("rates", [(0.25,), (0.125, 0.5), (0.1, 0.05, 0.2), (0.1, 0.2, 0.3, 0.4)])
def test_a_trial_stored_now_and_one_stored_before_read_as_the_same_record(rates):
    """Before, ``spike_rates`` was a list and ``config`` one mapping: such studies still read, and the same."""
    config = run_config(**{"model.neuron": "synaptic", "model.surrogate": "triangular"})
    new = told(TrialRecord.attrs(config=config, spike_rates=rates, seconds=1.25, test_acc=0.75))
    old = told({"config": config, "spike_rates": list(rates), "seconds": 1.25, "test_acc": 0.75})
    assert set(new.user_attrs) == {"config.dataset", "config.model", "config.training", "spike_rates", "seconds",
                                   "test_acc"}
    back, before = TrialRecord.from_frozen_trial("s", new), TrialRecord.from_frozen_trial("s", old)
    names = TrialRecord.attr_names()
    assert [getattr(back, n) for n in names] == [getattr(before, n) for n in names]
    assert back.spike_rates == rates and back.config == config
    assert back.combination == Combination("synaptic", "triangular", "bptt")


#: the cost metrics of a trial of the quick preset on MNIST (25 steps, 3 layers), as one attribute 1,032 characters
#: of JSON: past what the dashboard shows
MNIST_COSTS = {
    "n_samples": 2000, "num_steps": 25, "layers": ["conv1", "conv2", "output"], "layer_neurons": [1728, 1024, 10],
    "layer_spikes_per_sample": [11045.43, 9337.853, 29.3635],
    "layer_activation_sparsity": [0.7443187499999999, 0.6352401171875, 0.882546],
    "layer_dead_fraction": [0.017939814814814815, 0.015625, 0.0], "layer_saturated_fraction": [0.0, 0.0, 0.0],
    "layer_effective_macs": [4320000.0, 0.0, 0.0], "layer_effective_acs": [0.0, 10192634.624, 93378.53],
    "layer_dense_synops": [4320000.0, 30720000.0, 256000.0], "spikes_per_sample": 20412.6465,
    "activation_sparsity": 0.7043787617668356, "effective_macs": 4320000.0, "effective_acs": 10286013.154,
    "synops": 14606013.154, "dense_synops": 35296000.0, "footprint_bytes": 119328, "connection_sparsity": 0.0,
    "energy_proxy_uj": 29.1294118386, "accuracy": 0.897, "decision_step": 5,
    "accuracy_by_step": [0.839, 0.8735, 0.884, 0.888, 0.8885, 0.889, 0.889, 0.892, 0.893, 0.8935, 0.895, 0.8965,
                         0.896, 0.8965, 0.897, 0.896, 0.897, 0.8975, 0.897, 0.897, 0.897, 0.897, 0.898, 0.8975, 0.897],
}


def test_costs_are_stored_as_totals_per_layer_lists_and_accuracy_by_step_each_short_enough_for_the_dashboard():
    assert len(json.dumps(MNIST_COSTS)) > 1024
    stored = TrialRecord.attrs(costs=MNIST_COSTS)
    assert set(stored) == {"costs", "costs.layers", "costs.accuracy_by_step"}
    assert all(len(json.dumps(v)) <= 1024 for v in stored.values())
    assert stored["costs"]["synops"] == MNIST_COSTS["synops"]  # exact, not rounded
    assert stored["costs.layers"]["layers"] == ["conv1", "conv2", "output"]
    new = TrialRecord.from_frozen_trial("s", told(stored))
    old = TrialRecord.from_frozen_trial("s", told({"costs": MNIST_COSTS}))  # one attribute, as written before
    assert new.costs == old.costs == MNIST_COSTS


@pytest.mark.parametrize("missing", ["costs.layers", "costs.accuracy_by_step"])
def test_costs_whose_attributes_are_not_all_written_yet_read_as_not_set(missing):
    part = {k: v for k, v in TrialRecord.attrs(costs=MNIST_COSTS).items() if k != missing}
    assert TrialRecord.from_frozen_trial("s", told(part, state=optuna.trial.TrialState.FAIL)).costs is None


def test_spike_rates_stored_by_other_layer_names_read_in_their_stored_order():
    frozen = told({"spike_rates": {"conv1": 0.3, "fc": 0.1, "out": 0.2}})
    assert TrialRecord.from_frozen_trial("s", frozen).spike_rates == (0.3, 0.1, 0.2)


def test_a_config_whose_sections_are_not_all_written_yet_reads_as_not_set():
    """Its sections are written one attribute at a time: a reader in between (a report while the study runs, the
    replicate stage's check of its studies' configs) must not take a half config for another configuration."""
    config = run_config()
    half = {k: v for k, v in TrialRecord.attrs(config=config).items() if k != "config.training"}
    record = TrialRecord.from_frozen_trial("s", told(half, state=optuna.trial.TrialState.FAIL))
    assert record.config is None
    with pytest.raises(ValueError, match="expected dataset, model, training"):
        TrialRecord.attrs(config={"model": config["model"]})


def test_a_trial_written_by_another_tool_reads_as_a_record_with_empty_attributes():
    frozen = told({"config": "not a mapping", "something_else": 1}, params={"x": 1})
    record = TrialRecord.from_frozen_trial("other", frozen)
    assert record.config is None and record.test_acc is None and record.params == {"x": 1}
    assert record.combination == Combination("?", "?", "?")


@pytest.mark.parametrize(
    ("state", "attrs", "done"),
    [("COMPLETE", {}, True), ("PRUNED", {"pruned_at": 1}, True), ("FAIL", {"failure": "diverged"}, True),
     ("FAIL", {}, False), ("FAIL", {"interrupted": True}, False)],
)
def test_done_means_counted_by_the_study(state, attrs, done):
    frozen = told(attrs, state=getattr(optuna.trial.TrialState, state))
    assert TrialRecord.from_frozen_trial("s", frozen).done is done


def test_a_waiting_trial_s_combination_comes_from_its_queue_then_its_study_name():
    study = optuna.create_study(study_name=cell_study_name("p", Combination("leaky", "atan", "bptt")))
    study.enqueue_trial({"neuron": "synaptic"})
    waiting = study.get_trials()[0]
    record = TrialRecord.from_frozen_trial(study.study_name, waiting)
    assert record.state == "WAITING" and record.combination == Combination("synaptic", "atan", "bptt")


def test_the_study_s_artifact_folder_is_read_from_its_config_and_nothing_else():
    assert saved_artifacts({"study_config": {"study": {"artifacts": "/shared/a"}}}) == "/shared/a"
    assert saved_artifacts({"study_config": {"study": {}}}) is None
    assert saved_artifacts({"study_config": "garbage"}) is None and saved_artifacts({}) is None


def test_a_trial_of_several_objectives_keeps_them_all_and_its_validation_accuracy_as_its_value():
    study = optuna.create_study(directions=["maximize", "minimize"], study_name="s")
    trial = study.ask()
    costs = {"synops": 2.5e6, "layer_spikes_per_sample": [3.0, 1.5], "decision_step": 4}
    for name, v in TrialRecord.attrs(costs=costs).items():
        trial.set_user_attr(name, v)
    study.tell(trial, (0.95, 2.4e6))
    study.enqueue_trial({})
    record = TrialRecord.from_frozen_trial("s", study.trials[0])
    assert record.values == (0.95, 2.4e6) and record.value == 0.95
    assert record.costs == costs
    waiting = TrialRecord.from_frozen_trial("s", study.trials[1])
    assert waiting.values == () and waiting.value is None and waiting.costs is None
