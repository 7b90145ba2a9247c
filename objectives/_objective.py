"""The Optuna objective: one trial is one training run of the config its parameters describe."""

from __future__ import annotations

import gc
import os
import tempfile
from collections.abc import Callable
from typing import Any

import optuna
import torch

from ._config import TrialConfig
from ._data import load
from ._train import EpochMetrics, TrainingDiverged, resolve_device, train

#: user attribute names a finished trial carries (optuna-dashboard shows them; reports read them)
RESULT_ATTRS = (
    "test_acc", "best_epoch", "epochs", "seconds", "train_samples_per_s", "spike_rates", "n_params", "stopped_early",
)


class Objective:
    """``Objective(suggest)(trial)`` trains the config ``suggest(trial)`` returns and gives its best validation accuracy.

    Every epoch it reports the validation accuracy to Optuna (which may prune the
    trial), writes the epoch's metrics to ``epoch_log`` and calls ``on_epoch``.
    A finished trial keeps its resolved config, test accuracy, spike rates,
    parameter count and duration in its user attributes, and its best weights as
    an Optuna artifact in ``artifact_store``. A diverged run fails the trial with
    the reason in the user attribute ``failure``.
    """

    def __init__(
        self,
        suggest: Callable[[optuna.trial.BaseTrial], TrialConfig],
        study_name: str,
        epoch_log: Any | None = None,
        artifact_store: Any | None = None,
        device: str | None = None,
        on_epoch: Callable[[optuna.trial.BaseTrial, TrialConfig, EpochMetrics], None] | None = None,
    ):
        self.suggest = suggest
        self.study_name = study_name
        self.epoch_log = epoch_log
        self.artifact_store = artifact_store
        self.device = device
        self.on_epoch = on_epoch

    def config(self, trial: optuna.trial.BaseTrial) -> TrialConfig:
        """The resolved run config of ``trial`` (on this worker's device, if one is set)."""
        cfg = self.suggest(trial)
        if self.device is not None:
            cfg = cfg.replace(**{"training.device": self.device})
        return cfg.resolved()

    def __call__(self, trial: optuna.trial.BaseTrial) -> float:
        cfg = self.config(trial)
        trial.set_user_attr("config", cfg.to_dict())
        device = resolve_device(cfg.training.device)

        def on_epoch(m: EpochMetrics) -> None:
            trial.report(m.val_acc, m.epoch)
            if self.epoch_log is not None:
                self.epoch_log.record(self.study_name, trial.number, getattr(trial, "_trial_id", None), m)
            if self.on_epoch is not None:
                self.on_epoch(trial, cfg, m)
            # the last epoch finishes the trial anyway: pruning it then would only discard its result
            if m.epoch < cfg.training.epochs and trial.should_prune():
                trial.set_user_attr("pruned_at", m.epoch)
                raise optuna.TrialPruned(f"pruned at epoch {m.epoch} with validation accuracy {m.val_acc:.4f}")

        try:
            result = train(cfg, load(cfg.dataset, device), on_epoch=on_epoch, keep_weights=self.artifact_store is not None)
        except TrainingDiverged as exc:
            trial.set_user_attr("failure", str(exc))
            raise
        except KeyboardInterrupt:
            trial.set_user_attr("interrupted", True)
            raise
        finally:
            # nothing of this trial may outlive it: a worker runs hundreds of trials
            gc.collect()
            if device.type == "cuda":
                torch.cuda.empty_cache()
        for name in RESULT_ATTRS:
            value = getattr(result, name)
            trial.set_user_attr(name, list(value) if isinstance(value, tuple) else value)
        if self.artifact_store is not None and result.state_dict is not None:
            trial.set_user_attr("weights_artifact", self._upload(trial, result.state_dict))
        return result.val_acc

    def _upload(self, trial, state_dict) -> str:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, f"weights-trial-{trial.number}.pt")
            torch.save({k: v.cpu() for k, v in state_dict.items()}, path)
            return optuna.artifacts.upload_artifact(
                artifact_store=self.artifact_store, file_path=path, study_or_trial=trial
            )
