"""The trial record: the one schema of what a trial stores, written and read back through Optuna."""

from __future__ import annotations

import optuna
import pytest

from objectives import Combination, TrialRecord, cell_study_name, saved_artifacts


def told(attrs: dict, state=optuna.trial.TrialState.COMPLETE, params=None, value=0.9):
    study = optuna.create_study(direction="maximize", study_name="s")
    trial = study.ask()
    for name, v in (params or {}).items():
        trial.suggest_categorical(name, [v])
    for name, v in attrs.items():
        trial.set_user_attr(name, v)
    study.tell(trial, value if state == optuna.trial.TrialState.COMPLETE else None, state=state)
    return study.trials[-1]


def test_a_record_survives_the_round_trip_through_optuna_s_user_attributes():
    config = {"model": {"neuron": "alpha", "surrogate": "atan"}, "training": {"backprop": "tbptt"}}
    record = TrialRecord(study="s", number=0, state="COMPLETE", config=config, stage="replicate", tags=("k",),
                         test_acc=0.91, best_epoch=2, epochs=3, seconds=1.5, train_samples_per_s=100.0,
                         spike_rates=(0.1, 0.2, 0.3), n_params=7, stopped_early=False, weights_artifact="abc")
    back = TrialRecord.from_frozen_trial("s", told(record.to_user_attrs()))
    for name in TrialRecord.attr_names():
        assert getattr(back, name) == getattr(record, name), name
    assert back.value == 0.9 and back.done and back.combination == Combination("alpha", "atan", "tbptt")


def test_user_attributes_are_the_field_names_and_unknown_names_are_refused():
    assert TrialRecord.attrs(pruned_at=3, spike_rates=(0.5,)) == {"pruned_at": 3, "spike_rates": [0.5]}
    assert {"config", "test_acc", "pruned_at", "failure", "weights_artifact", "stage"} <= set(TrialRecord.attr_names())
    with pytest.raises(TypeError, match="not a TrialRecord user attribute"):
        TrialRecord.attrs(test_accuracy=0.5)


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
