"""A finished trial back from a storage: its record, its best weights, and its model ready to evaluate.

A trial keeps its resolved run config as a user attribute and its best-validation weights as an
Optuna artifact (a ``torch.save``'d state dict of CPU tensors, :class:`objectives.Objective`) in the
study's artifact folder (:func:`artifact_dir`). :func:`load_trial` puts the two together.
"""

from __future__ import annotations

import io
import math
from typing import TYPE_CHECKING, Any

import optuna
from optuna.artifacts.exceptions import ArtifactNotFound
from optuna.trial import TrialState

from objectives import ConfigError, TrialConfig, TrialRecord

from ._artifacts import artifact_dir
from ._studies import open_storage, study_names

if TYPE_CHECKING:
    from objectives import ConvSNN


def best_trial(storage: optuna.storages.BaseStorage, name: str) -> TrialRecord:
    """The complete trial of study ``name`` and its per-combination studies with the highest validation accuracy
    (its objective value, the first of several; never the test accuracy); ties go to the first study by name, then
    the lowest trial number. A ``ConfigError`` on ``study`` when none is complete."""
    best: TrialRecord | None = None
    best_value = -math.inf
    for study_name in study_names(storage, name):
        study_id = storage.get_study_id_from_name(study_name)
        for frozen in storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.COMPLETE,)):
            record = TrialRecord.from_frozen_trial(study_name, frozen)
            if record.value is not None and (best is None or record.value > best_value):
                best, best_value = record, record.value
    if best is None:
        raise ConfigError("study", name, "has no complete trial yet; run it first (snn-study run)")
    return best


def trial_record(storage: optuna.storages.BaseStorage, name: str, number: int) -> TrialRecord:
    """Trial ``number`` of the one study ``name`` (a per-combination study by its full name)."""
    if name not in {s.study_name for s in storage.get_all_studies()}:
        cells = study_names(storage, name)  # a ConfigError naming the studies there when there is none
        raise ConfigError("study", name, f"holds no trials itself; give one of its studies with a trial number: "
                                         f"{', '.join(cells[:3])}{', ...' if len(cells) > 3 else ''}")
    study_id = storage.get_study_id_from_name(name)
    trials = storage.get_all_trials(study_id, deepcopy=False)
    found = [t for t in trials if t.number == number]
    if not found:
        raise ConfigError("trial", number, f"study {name!r} has trials 0 to {len(trials) - 1}" if trials
                          else f"study {name!r} has no trial yet")
    return TrialRecord.from_frozen_trial(name, found[0])


def study_attrs(storage: optuna.storages.BaseStorage, name: str) -> dict[str, Any]:
    """The user attributes of study ``name`` (where its config, and so its artifact folder, is kept)."""
    return dict(storage.get_study_user_attrs(storage.get_study_id_from_name(name)))


def trial_weights(url: str, record: TrialRecord, attrs: dict[str, Any], artifacts: str | None = None) -> bytes:
    """The saved best weights of trial ``record`` (of a study with user attributes ``attrs``) in the storage at
    ``url``: the bytes of a ``torch.save``'d state dict, read from ``artifacts`` or the study's artifact folder.
    A ``ConfigError`` saying why when they are not there."""
    which = f"trial {record.number} of study {record.study!r}"
    if not record.weights_artifact:
        why = record.weights_missing or "it saved none (it is not complete, or ran without an artifact store)"
        raise ConfigError("trial", record.number, f"{which} has no saved weights: {why}")
    root = artifact_dir(url, artifacts, attrs)
    if not root.is_dir():
        raise ConfigError("artifacts", str(root), f"no such folder (the weights of {which}); give the folder the "
                                                  "weights were saved in")
    store = optuna.artifacts.FileSystemArtifactStore(root)
    try:
        with store.open_reader(record.weights_artifact) as reader:
            return reader.read()
    except (OSError, ArtifactNotFound):
        raise ConfigError("artifacts", str(root), f"does not hold the weights artifact {record.weights_artifact} "
                                                  f"of {which}") from None


def load_trial(
    storage: str, study: str, trial: int | None = None, *, artifacts: str | None = None, device: str = "cpu"
) -> tuple[ConvSNN, TrialConfig]:
    """The trained model of a trial and its run config: ``model, cfg = load_trial(url, "quick")``.

    ``trial=None`` takes the best trial of ``study`` and its per-combination studies (the highest validation
    accuracy among complete trials, never the test accuracy); a number takes that trial of the one study
    ``study`` (a per-combination study by its full name, ``quick::leaky/atan/bptt``). The model holds the
    trial's best-validation weights, on ``device``, in eval mode; ``cfg`` is the trial's resolved config with
    ``training.device`` set to ``device``, so ``objectives.cost_metrics(model, cfg, objectives.load(cfg.dataset,
    device).test).accuracy`` is the trial's ``test_acc`` (exactly, on the CPU it ran on). ``artifacts``
    overrides the artifact folder (default: the study's, :func:`artifact_dir`). Every way this fails is one
    :class:`objectives.ConfigError` naming what is wrong.
    """
    import torch

    from objectives import build_model

    opened = open_storage(storage, read_only=True, heartbeat_interval=None)
    try:
        record = best_trial(opened, study) if trial is None else trial_record(opened, study, trial)
        attrs = study_attrs(opened, record.study)
    finally:
        opened.engine.dispose()
    if record.config is None:
        raise ConfigError("trial", record.number, f"trial {record.number} of study {record.study!r} holds no "
                                                  "snn-study run config: another tool wrote it")
    cfg = TrialConfig.from_dict(record.config).replace(**{"training.device": device})
    state_dict = torch.load(io.BytesIO(trial_weights(storage, record, attrs, artifacts)), map_location=device,
                            weights_only=True)
    model = build_model(cfg).to(device)
    try:
        model.load_state_dict(state_dict)
    except RuntimeError as exc:  # the model code changed since the trial ran
        raise ConfigError("trial", record.number, f"the weights of trial {record.number} of study {record.study!r} "
                                                  f"do not fit the model its config builds now "
                                                  f"({str(exc).splitlines()[0]})") from None
    model.eval()
    return model, cfg
