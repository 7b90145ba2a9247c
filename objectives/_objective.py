"""The Optuna objective: one trial is one training run of the config its parameters describe."""

from __future__ import annotations

import contextlib
import gc
import io
import os
import tempfile
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any

import optuna
import torch

from ._config import TrialConfig
from ._data import load
from ._errors import TrainingDiverged
from ._record import EpochMetrics, TrialRecord
from ._train import TrainResult, resolve_device, train


class Objective:
    """``Objective(suggest)(trial)`` trains the config ``suggest(trial)`` returns; its value is the best validation
    accuracy, or what ``score(result)`` makes of the :class:`TrainResult` (a tuple for a study of several
    objectives).

    Every epoch it calls ``on_epoch(trial, config, metrics)`` (the runner records the
    epoch and prints it there) and reports the validation accuracy to Optuna, which may
    prune the trial; Optuna takes no intermediate value of a trial of several objectives,
    so such a trial is never pruned (it stops early by patience alone). A finished trial
    keeps its resolved config and results (its cost metrics among them) as the user
    attributes of :class:`TrialRecord`, and its best weights as an Optuna artifact in
    ``artifact_store``. A diverged run fails the trial with the reason in ``failure``.

    Its database writes (the epoch's report and ``on_epoch``, the attributes, the weights) run inside
    ``hold()``: the runner's holds Ctrl-C and SIGTERM until each is done, as an interrupt in the middle
    of one can leave the connection in its transaction and the SQLite file locked to the writes that
    fail the trial.

    ``fit(config, on_epoch, keep_weights)`` runs the training (default :func:`load_and_train`); a
    test passes a fake that reports made-up epochs and returns a :class:`TrainResult`, and the
    trial is reported, pruned and recorded as a real one.
    """

    def __init__(
        self,
        suggest: Callable[[optuna.trial.BaseTrial], TrialConfig],
        artifact_store: Any | None = None,
        device: str | None = None,
        on_epoch: Callable[[optuna.trial.BaseTrial, TrialConfig, EpochMetrics], None] | None = None,
        score: Callable[[TrainResult], float | tuple[float, ...]] | None = None,
        fit: Fit | None = None,
        hold: Callable[[], AbstractContextManager[Any]] | None = None,
    ):
        self.suggest = suggest
        self.artifact_store = artifact_store
        self.device = device
        self.on_epoch = on_epoch
        self.score = score
        self.fit = fit if fit is not None else load_and_train
        self.hold = hold if hold is not None else contextlib.nullcontext

    def config(self, trial: optuna.trial.BaseTrial) -> TrialConfig:
        """The resolved run config of ``trial`` (on this worker's device, if one is set)."""
        cfg = self.suggest(trial)
        if self.device is not None:
            cfg = cfg.replace(**{"training.device": self.device})
        return cfg.resolved()

    def __call__(self, trial: optuna.trial.BaseTrial) -> float | tuple[float, ...]:
        return self._alone(trial, self._start(trial))

    def _alone(self, trial: optuna.trial.BaseTrial, cfg: TrialConfig) -> float | tuple[float, ...]:
        """Train ``trial``'s config ``cfg`` through ``fit`` and record it."""
        try:
            result = self.fit(cfg, self._on_epoch(trial, cfg), self.artifact_store is not None)
        except TrainingDiverged as exc:
            self._record(trial, TrialRecord.attrs(failure=str(exc)))
            raise
        except KeyboardInterrupt:
            self._record(trial, TrialRecord.attrs(interrupted=True))
            raise
        finally:
            _release(cfg)
        return self._finish(trial, result)

    def run_array(self, trials: Sequence[optuna.trial.BaseTrial]) -> list[Any]:
        """Train ``trials`` together, each recorded as :meth:`__call__` records it; one entry per trial, in order:
        its value, or the exception that ended it (``optuna.TrialPruned``, :class:`TrainingDiverged`, an error of
        its own ``on_epoch``).

        Trials whose configs share an :func:`~objectives.array_key` (and the ``fast`` engine) train as one fused
        array (:func:`~objectives.train_array`, not ``fit``), each group after the other; a group of one trains
        alone through ``fit``. Ctrl-C stops them all (the caller fails every trial as interrupted).
        """
        from ._fused import array_key, train_array

        cfgs = [self._start(trial) for trial in trials]
        groups: dict[str, list[int]] = {}
        for i, cfg in enumerate(cfgs):
            key = array_key(cfg) if cfg.training.engine == "fast" else f"alone {i}"
            groups.setdefault(key, []).append(i)
        outcomes: list[Any] = [None] * len(trials)
        for members in groups.values():
            if len(members) == 1:
                i, = members
                try:
                    outcomes[i] = self._alone(trials[i], cfgs[i])
                except Exception as exc:  # noqa: BLE001 - this trial's end; the others go on
                    outcomes[i] = exc
                continue
            for i in members:
                self._record(trials[i], TrialRecord.attrs(array=[trials[m].number for m in members]))
            first = cfgs[members[0]]
            try:
                results = train_array([cfgs[i] for i in members], load(first.dataset, resolve_device(
                    first.training.device)), on_epoch=[self._on_epoch(trials[i], cfgs[i]) for i in members],
                    keep_weights=self.artifact_store is not None)
            finally:
                _release(first)
            for i, result in zip(members, results):
                if isinstance(result, TrainingDiverged):
                    self._record(trials[i], TrialRecord.attrs(failure=str(result)))
                outcomes[i] = result if isinstance(result, Exception) else self._finish(trials[i], result)
        return outcomes

    def _start(self, trial: optuna.trial.BaseTrial) -> TrialConfig:
        """``trial``'s config, recorded in it."""
        cfg = self.config(trial)
        self._record(trial, TrialRecord.attrs(config=cfg.to_dict()))
        return cfg

    def _on_epoch(self, trial: optuna.trial.BaseTrial, cfg: TrialConfig) -> Callable[[EpochMetrics], None]:
        """What follows each of ``trial``'s epochs: report it to Optuna, hand it to ``on_epoch``, and prune."""
        prunable = _single_objective(trial)

        def on_epoch(m: EpochMetrics) -> None:
            with self.hold():
                if prunable:
                    trial.report(m.val_acc, m.epoch)
                if self.on_epoch is not None:
                    self.on_epoch(trial, cfg, m)
                # the last epoch finishes the trial anyway: pruning it then would only discard its result
                if prunable and m.epoch < cfg.training.epochs and trial.should_prune():
                    _set(trial, TrialRecord.attrs(pruned_at=m.epoch))
                    raise optuna.TrialPruned(f"pruned at epoch {m.epoch} with validation accuracy {m.val_acc:.4f}")

        return on_epoch

    def _finish(self, trial: optuna.trial.BaseTrial, result: TrainResult) -> float | tuple[float, ...]:
        """Record ``result`` (and upload its weights) in ``trial``; the trial's value."""
        with self.hold():
            _set(trial, result_attrs(result))
            if self.artifact_store is not None and result.state_dict is not None:
                try:
                    artifact = _upload(self.artifact_store, trial, result.state_dict)
                except OSError as exc:  # a full or vanished artifact folder must not throw the trained result away
                    _set(trial, TrialRecord.attrs(weights_missing=f"writing them failed ({_one_line(exc)})"))
                else:
                    _set(trial, TrialRecord.attrs(weights_artifact=artifact))
            return result.val_acc if self.score is None else self.score(result)

    def _record(self, trial: optuna.trial.BaseTrial, attrs: dict[str, Any]) -> None:
        with self.hold():
            _set(trial, attrs)


def _release(cfg: TrialConfig) -> None:
    """Nothing of a trial may outlive it: a worker runs hundreds of trials."""
    gc.collect()
    if resolve_device(cfg.training.device).type == "cuda":
        torch.cuda.empty_cache()


def _single_objective(trial: optuna.trial.BaseTrial) -> bool:
    """Whether Optuna takes ``trial``'s intermediate values: a trial of a study of one objective (or of no
    study, a ``FixedTrial``); ``report`` and ``should_prune`` raise in a study of several."""
    study = getattr(trial, "study", None)
    return study is None or len(study.directions) == 1


#: ``fit(config, on_epoch, keep_weights) -> TrainResult``: one training run as :class:`Objective` runs it
Fit = Callable[[TrialConfig, Callable[[EpochMetrics], None], bool], TrainResult]


def load_and_train(cfg: TrialConfig, on_epoch: Callable[[EpochMetrics], None], keep_weights: bool) -> TrainResult:
    """Load ``cfg``'s data onto its device and train it (:func:`objectives.train`)."""
    return train(cfg, load(cfg.dataset, resolve_device(cfg.training.device)), on_epoch=on_epoch,
                 keep_weights=keep_weights)


def result_attrs(result: TrainResult) -> dict[str, Any]:
    """The user attributes of a finished training run (:class:`TrialRecord` fields)."""
    return TrialRecord.attrs(
        test_acc=result.test_acc,
        best_epoch=result.best_epoch,
        epochs=result.epochs,
        seconds=result.seconds,
        train_samples_per_s=result.train_samples_per_s,
        spike_rates=result.spike_rates,
        n_params=result.n_params,
        stopped_early=result.stopped_early,
        costs=result.costs.to_dict(),
    )


#: the weights artifact's MIME type, which optuna-dashboard serves it with: binary, to download. Optuna guesses it
#: from the file name otherwise, and the system's table may know ``.pt`` as something else entirely (Debian's:
#: ``application/vnd.snesdev-page-table``)
WEIGHTS_MIMETYPE = "application/octet-stream"


def weights_bytes(state_dict: dict[str, torch.Tensor]) -> bytes:
    """``state_dict`` as the bytes of a ``torch.save``'d dict of CPU tensors: a trial's weights artifact, and what
    ``snn-study best --weights`` and ``train --save`` write (``torch.load(..., weights_only=True)`` reads it)."""
    buffer = io.BytesIO()
    torch.save({k: v.cpu() for k, v in state_dict.items()}, buffer)
    return buffer.getvalue()


def _upload(store: Any, trial: Any, state_dict: dict[str, torch.Tensor]) -> str:
    """Save ``state_dict`` as an artifact of ``trial`` in ``store``; returns the artifact id."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, f"weights-trial-{trial.number}.pt")
        with open(path, "wb") as f:
            f.write(weights_bytes(state_dict))
        return optuna.artifacts.upload_artifact(artifact_store=store, file_path=path, study_or_trial=trial,
                                                mimetype=WEIGHTS_MIMETYPE)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _set(trial: optuna.trial.BaseTrial, attrs: dict[str, Any]) -> None:
    for name, value in attrs.items():
        trial.set_user_attr(name, value)
