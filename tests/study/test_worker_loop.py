"""One worker's trial loop, in process: how it takes a queued trial, and its heartbeat.

The races these pin need two workers to interleave at one exact point, which real
processes do only now and then (the multi-worker tests in ``test_study_run.py`` and
``test_postgres_faults.py`` run them for real); here the other worker is played by the test.
"""

from __future__ import annotations

import functools
import os
import signal
import threading
import time

import optuna
import pytest
import sqlalchemy.exc
import yaml
from optuna.trial import TrialState
from support import study_yaml

from objectives import Objective
from storage import open_storage
from study import _spawn
from study._config import StudyConfig
from study._runner import _create_or_load, _heartbeat, _lacking, _Reporter, prepare, queue_missing, run_trials
from study._samplers import SAMPLERS


def _setup(tmp_path, **study):
    cfg = StudyConfig.from_dict(yaml.safe_load(study_yaml(tmp_path, **study).read_text()))
    storage = open_storage(cfg.study.storage, heartbeat_interval=1)
    prepare(cfg, storage)
    (name, space), = cfg.studies()
    return cfg, storage, _create_or_load(cfg, name, space, storage), space


@pytest.mark.parametrize("sampler", list(SAMPLERS))
def test_a_resumed_study_draws_new_trials_and_a_fresh_one_draws_what_its_seed_draws(tmp_path, sampler):
    """A seeded sampler in a new process starts its random stream afresh: a study stopped and run again used to
    propose the trials of its first run again (every sampler's first trials are random)."""
    def drawn(db: str, count: int = 3) -> list[float]:
        path = study_yaml(tmp_path, sampler=sampler, n_trials=6, storage=f"sqlite:///{tmp_path / db}")
        data = yaml.safe_load(path.read_text())
        data["search"] = {"lr": {"low": 1e-4, "high": 1e-1, "log": True}}
        cfg = StudyConfig.from_dict(data)
        storage = open_storage(cfg.study.storage, heartbeat_interval=None)  # asked and told here, not optimized
        prepare(cfg, storage)
        (name, space), = cfg.studies()
        study = _create_or_load(cfg, name, space, storage)  # what a worker starting now loads
        lrs = []
        for _ in range(count):
            trial = study.ask()
            lrs.append(space.suggest(trial).training.lr)
            study.tell(trial, 0.5)
        return lrs

    first = drawn("a.db")
    assert drawn("b.db") == first  # another study of the same seed, run in one go: reproducible
    resumed = drawn("a.db")
    assert not set(resumed) & set(first), (first, resumed)


def _objective(space, name):
    return Objective(space.suggest)


def test_a_grid_worker_that_finds_the_queue_taken_runs_nothing_and_adds_no_trial(tmp_path):
    _, storage, study, space = _setup(tmp_path)
    # another worker claims every queued combination between this worker's count and its start
    for t in study.get_trials(states=(TrialState.WAITING,)):
        assert storage.set_trial_state_values(t._trial_id, state=TrialState.RUNNING)

    def must_not_run(trial):
        raise AssertionError("a trial was started with no combination to run")

    assert run_trials(study, storage, must_not_run, grid=True, reporter=_Reporter(0, quiet=True)) is False
    trials = study.get_trials()
    assert len(trials) == 8 and {t.state for t in trials} == {TrialState.RUNNING}


def test_a_grid_worker_runs_the_combination_it_claimed_and_tells_its_result(tmp_path):
    _, storage, study, space = _setup(tmp_path)
    queued = study.get_trials(states=(TrialState.WAITING,))
    assert run_trials(study, storage, _objective(space, study.study_name), grid=True, reporter=_Reporter(0, quiet=True))
    ran = study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))
    assert [t.number for t in ran] == [queued[0].number]
    assert ran[0].params.items() >= queued[0].system_attrs["fixed_params"].items()
    assert len(study.get_trials()) == 8


def test_a_random_search_worker_with_an_empty_queue_starts_a_new_trial(tmp_path):
    _, storage, study, space = _setup(tmp_path, sampler="random", n_trials=2)
    assert not study.get_trials()
    assert run_trials(study, storage, _objective(space, study.study_name), grid=False,
                      reporter=_Reporter(0, quiet=True))
    assert [t.state for t in study.get_trials()] == [TrialState.COMPLETE]


@pytest.mark.parametrize("error", [KeyboardInterrupt, RuntimeError])
def test_a_trial_whose_objective_raises_is_failed_not_left_running_and_the_error_goes_on(tmp_path, error):
    _, storage, study, _ = _setup(tmp_path)

    def broken(trial):
        raise error("stop")

    with pytest.raises(error):
        run_trials(study, storage, broken, grid=True, reporter=_Reporter(0, quiet=True))
    assert [t.state for t in study.get_trials() if t.state != TrialState.WAITING] == [TrialState.FAIL]


@pytest.fixture
def stop_signals():
    """Ctrl-C handled as the command line handles it (SIGINT only: SIGTERM's deadline would end pytest)."""
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    _spawn.handle_stop_signals()
    yield
    signal.signal(signal.SIGINT, before[0])
    signal.signal(signal.SIGTERM, before[1])


def _ctrl_c_when(storage, monkeypatch, when: TrialState, after: bool):
    """Ctrl-C lands just before (or after) the storage records a trial as ``when``."""
    record = storage.set_trial_state_values

    def set_trial_state_values(trial_id, state, values=None):
        if state == when and not after:
            os.kill(os.getpid(), signal.SIGINT)
        done = record(trial_id, state, values)
        if state == when and after:
            os.kill(os.getpid(), signal.SIGINT)
        return done

    monkeypatch.setattr(storage, "set_trial_state_values", set_trial_state_values)


def test_ctrl_c_between_claiming_a_trial_and_training_it_fails_the_trial_as_interrupted(
        tmp_path, monkeypatch, stop_signals):
    _, storage, study, _ = _setup(tmp_path)
    _ctrl_c_when(storage, monkeypatch, TrialState.RUNNING, after=True)  # the claim went through, then Ctrl-C
    trained = []
    with pytest.raises(KeyboardInterrupt):
        run_trials(study, storage, trained.append, grid=True, reporter=_Reporter(0, quiet=True))
    assert not trained
    stopped, = [t for t in study.get_trials() if t.state != TrialState.WAITING]  # it left the trial RUNNING
    assert stopped.state == TrialState.FAIL and stopped.user_attrs["interrupted"] is True


def test_ctrl_c_while_a_result_is_recorded_waits_until_the_trial_is_complete(tmp_path, monkeypatch, stop_signals):
    _, storage, study, space = _setup(tmp_path)
    _ctrl_c_when(storage, monkeypatch, TrialState.COMPLETE, after=False)
    with pytest.raises(KeyboardInterrupt):
        run_trials(study, storage, lambda trial: 0.5, grid=True, reporter=_Reporter(0, quiet=True))
    ran, = [t for t in study.get_trials() if t.state != TrialState.WAITING]  # it left the trial RUNNING
    assert ran.state == TrialState.COMPLETE and ran.value == 0.5


def test_ctrl_c_during_an_epochs_database_writes_lands_after_them_and_fails_the_trial(tmp_path, stop_signals):
    _, storage, study, space = _setup(tmp_path)
    written = []

    def on_epoch(trial, cfg, metrics):  # the runner's: the per-epoch table's row, then the epoch's line
        os.kill(os.getpid(), signal.SIGINT)
        written.append(metrics.epoch)  # an interrupt here left a transaction open: the SQLite file locked

    objective = Objective(space.suggest, on_epoch=on_epoch, hold=_spawn.holding_stop_signals)
    with pytest.raises(KeyboardInterrupt), _spawn.holding_stop_signals():
        run_trials(study, storage, objective, grid=True, reporter=_Reporter(0, quiet=True))
    assert written == [1]
    stopped, = [t for t in study.get_trials() if t.state != TrialState.WAITING]
    assert stopped.state == TrialState.FAIL and stopped.user_attrs["interrupted"] is True


def test_ctrl_c_twice_while_held_stops_at_once(stop_signals):
    with pytest.raises(KeyboardInterrupt), _spawn.holding_stop_signals():
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(1000):  # the second one raises here, before the block ends
            pass
        raise AssertionError("the second Ctrl-C waited for the block to end")


class _FlakyStorage:
    """A storage whose first heartbeats fail as a restarting server's would."""

    def __init__(self, failures: int):
        self.failures, self.beats = failures, 0
        self.enough = threading.Event()

    def get_heartbeat_interval(self) -> float:
        return 0.01

    def record_heartbeat(self, trial_id: int) -> None:
        if self.failures:
            self.failures -= 1
            raise sqlalchemy.exc.OperationalError("INSERT", {}, Exception("server closed the connection"))
        self.beats += 1
        if self.beats >= 3:
            self.enough.set()


def test_the_heartbeat_outlives_a_database_that_is_briefly_away():
    flaky = _FlakyStorage(failures=3)
    with _heartbeat(flaky, [1]):
        assert flaky.enough.wait(timeout=10), "the heartbeat stopped at the first failed beat"


def test_a_storage_without_heartbeats_gets_no_heartbeat_thread(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path / 'db.sqlite'}", heartbeat_interval=None)
    before = threading.active_count()
    with _heartbeat(storage, [1]):
        assert threading.active_count() == before


# ---- fused trial arrays (study.array_size) -------------------------------------------------------------------------


def _array_setup(tmp_path, search, **study):
    """:func:`_setup` with ``search`` as the search space (the grid's neuron and seed, say)."""
    path = study_yaml(tmp_path, **study)
    config = yaml.safe_load(path.read_text())
    config["search"] = search
    path.write_text(yaml.safe_dump(config))
    cfg = StudyConfig.from_dict(config)
    storage = open_storage(cfg.study.storage, heartbeat_interval=1)
    prepare(cfg, storage)
    (name, space), = cfg.studies()
    return storage, _create_or_load(cfg, name, space, storage), space


@pytest.fixture
def arrays(monkeypatch):
    """The members of each fused array trained, as lists of their seeds."""
    from objectives import _fused

    trained, train_array = [], _fused.train_array

    def spy(cfgs, *args, **kwargs):
        trained.append([c.training.seed for c in cfgs])
        return train_array(cfgs, *args, **kwargs)

    monkeypatch.setattr(_fused, "train_array", spy)
    return trained


def test_a_grid_worker_claims_only_queued_cells_of_one_architecture_and_trains_them_as_one_array(tmp_path, arrays):
    # the queue alternates the neurons: seed 1 leaky, seed 1 synaptic, seed 2 leaky, ...
    storage, study, space = _array_setup(tmp_path, {"training.seed": [1, 2, 3], "neuron": ["leaky", "synaptic"]})
    assert run_trials(study, storage, Objective(space.suggest), grid=True, reporter=_Reporter(0, quiet=True),
                      space=space, size=3)
    ran = [t for t in study.get_trials() if t.state != TrialState.WAITING]
    assert len(ran) == 3 and len({t.params["neuron"] for t in ran}) == 1  # the other neuron is another array's
    assert arrays == [[1, 2, 3]]
    # each member's value is its lone run's, to the bit on a CPU
    for t in ran:
        assert t.state == TrialState.COMPLETE
        assert t.value == Objective(space.suggest)(optuna.trial.FixedTrial(t.params)), t.params


def test_the_cells_of_a_grid_over_surrogates_train_as_one_array_per_neuron_and_backprop_method(tmp_path, arrays):
    _, storage, study, space = _setup(tmp_path)  # 2 neurons x 2 surrogates x 2 backprop methods
    assert run_trials(study, storage, Objective(space.suggest), grid=True, reporter=_Reporter(0, quiet=True),
                      space=space, size=4)
    ran = [t.params for t in study.get_trials() if t.state != TrialState.WAITING]
    assert len(ran) == 2 and len(arrays) == 1
    assert len({(p["neuron"], p["backprop"]) for p in ran}) == 1 and len({p["surrogate"] for p in ran}) == 2


def test_a_worker_without_a_queue_asks_the_sampler_for_a_whole_array(tmp_path, arrays):
    storage, study, space = _array_setup(tmp_path, {"lr": {"low": 1e-3, "high": 1e-2, "log": True}},
                                         sampler="random", n_trials=3)
    assert run_trials(study, storage, Objective(space.suggest), grid=False, reporter=_Reporter(0, quiet=True),
                      space=space, size=3)
    assert [t.state for t in study.get_trials()] == [TrialState.COMPLETE] * 3
    assert len({t.params["lr"] for t in study.get_trials()}) == 3 and len(arrays) == 1 and len(arrays[0]) == 3


def test_a_member_whose_epoch_hook_fails_is_failed_the_others_are_told_and_the_error_goes_on(tmp_path, arrays):
    storage, study, space = _array_setup(tmp_path, {"neuron": ["leaky"], "training.seed": [1, 2, 3]})

    def on_epoch(trial, cfg, metrics):
        if cfg.training.seed == 2:
            raise RuntimeError("the per-epoch table is gone")

    with pytest.raises(RuntimeError, match="the per-epoch table is gone"):
        run_trials(study, storage, Objective(space.suggest, on_epoch=on_epoch), grid=True,
                   reporter=_Reporter(0, quiet=True), space=space, size=3)
    states = {t.params["training.seed"]: t.state for t in study.get_trials()}
    assert states == {1: TrialState.COMPLETE, 2: TrialState.FAIL, 3: TrialState.COMPLETE}
    assert arrays == [[1, 2, 3]]


def test_ctrl_c_during_an_array_fails_every_member_as_interrupted(tmp_path, stop_signals):
    storage, study, space = _array_setup(tmp_path, {"neuron": ["leaky"], "training.seed": [1, 2, 3]})

    def on_epoch(trial, cfg, metrics):
        os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        run_trials(study, storage, Objective(space.suggest, on_epoch=on_epoch), grid=True,
                   reporter=_Reporter(0, quiet=True), space=space, size=3)
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL] * 3
    assert all(t.user_attrs["interrupted"] is True for t in trials)


def test_a_member_pruned_after_its_first_epoch_leaves_the_array_and_the_others_end_as_they_would_alone(
        tmp_path, arrays, monkeypatch):
    storage, study, space = _array_setup(tmp_path, {"neuron": ["leaky"], "training.seed": [1, 2, 3]})
    should_prune = optuna.Trial.should_prune
    # the pruner's verdict on the trial of seed 2; any other trial is asked the study's pruner as usual
    monkeypatch.setattr(optuna.Trial, "should_prune",
                        lambda trial: trial.params["training.seed"] == 2 or should_prune(trial))
    study.pruner = optuna.pruners.NopPruner()
    assert run_trials(study, storage, Objective(space.suggest), grid=True, reporter=_Reporter(0, quiet=True),
                      space=space, size=3)
    trials = {t.params["training.seed"]: t for t in study.get_trials()}
    assert arrays == [[1, 2, 3]]
    pruned = trials[2]
    assert pruned.state == TrialState.PRUNED and pruned.user_attrs["pruned_at"] == 1
    assert list(pruned.intermediate_values) == [1]  # the epochs a lone pruned trial gets
    for seed in (1, 3):
        alone = Objective(space.suggest)(optuna.trial.FixedTrial(trials[seed].params))
        assert trials[seed].state == TrialState.COMPLETE and trials[seed].value == alone
        assert len(trials[seed].intermediate_values) == 2  # every epoch of study_yaml's 2


def test_two_workers_topping_up_the_queue_at_once_queue_a_missing_combination_once(tmp_path):
    cfg, storage, study, space = _setup(tmp_path)
    lost = study.get_trials(states=(TrialState.WAITING,))[0]
    storage.set_trial_state_values(lost._trial_id, state=TrialState.RUNNING)
    storage.set_trial_state_values(lost._trial_id, state=TrialState.FAIL)  # an interrupted trial: re-queued later
    # worker A has read the trials and is about to queue the missing one when worker B reads them
    other = open_storage(cfg.study.storage)  # worker A's own connections
    first, read = _create_or_load(cfg, study.study_name, space, other), threading.Event()
    enqueue = first.enqueue_trial

    def slow_enqueue(params, **kwargs):
        read.set()
        time.sleep(0.5)
        enqueue(params, **kwargs)

    first.enqueue_trial = slow_enqueue
    worker_a = threading.Thread(target=queue_missing, args=(first, other, space))
    worker_a.start()
    assert read.wait(30)
    assert queue_missing(study, storage, space) == 0  # A's trial stands for the combination
    worker_a.join()
    assert len(study.get_trials(states=(TrialState.WAITING,))) == 8


def test_two_workers_finishing_at_once_start_only_the_one_trial_a_sampled_study_still_lacks(tmp_path):
    cfg, storage, study, space = _setup(tmp_path, sampler="random", n_trials=2)
    assert run_trials(study, storage, lambda trial: 0.5, grid=False, reporter=_Reporter(0, quiet=True))

    def lacking(study):
        return functools.partial(_lacking, study, space, cfg.target(space))

    # worker A has counted one trial lacking and is asking for it when worker B counts
    other = open_storage(cfg.study.storage)
    first, counted = _create_or_load(cfg, study.study_name, space, other), threading.Event()
    ask = first.ask

    def slow_ask(*args, **kwargs):
        counted.set()
        time.sleep(0.5)
        return ask(*args, **kwargs)

    first.ask = slow_ask
    worker_a = threading.Thread(target=run_trials, args=(first, other, lambda trial: 0.6, False,
                                                         _Reporter(0, quiet=True)), kwargs={"lacking": lacking(first)})
    worker_a.start()
    assert counted.wait(30)
    assert not run_trials(study, storage, lambda trial: 0.7, grid=False, reporter=_Reporter(0, quiet=True),
                          lacking=lacking(study))
    worker_a.join()
    assert sorted(t.value for t in study.get_trials()) == [0.5, 0.6]  # it ran 3 trials of 2
