"""Membrane potentials and spikes of the best trial's model on a few test images.

The weights come from the trial's Optuna artifact, the model from its resolved
config, the images from its dataset (never downloaded here). When any of them is
missing the figure is skipped and :func:`trace_records` says why in one line.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

from objectives import layer_names
from storage import trial_weights

from ._load import StudyData
from ._tables import best_trial

#: test images traced, and at most this many neurons of one layer drawn in a raster
N_IMAGES = 3
MAX_RASTER_NEURONS = 150


def raster_sample(n_neurons: int, most: int = MAX_RASTER_NEURONS) -> list[int]:
    """The neurons of a layer of ``n_neurons`` a raster draws: all of them up to ``most``, else ``most`` spread
    evenly over the whole layer (first and last included), whether they fired or not."""
    if n_neurons <= most:
        return list(range(n_neurons))
    return sorted({round(i * (n_neurons - 1) / (most - 1)) for i in range(most)})


@dataclass
class LayerRaster:
    """Spikes of one layer for one image: neuron ``neurons[i]`` fired at time step ``steps[i]`` (0-based)."""

    layer: str
    n_neurons: int
    #: neurons that fired at least once in the window
    n_active: int
    #: the neurons drawn (:func:`raster_sample`): silent ones too, so that a sparse layer looks sparse
    shown: list[int]
    steps: list[int]
    neurons: list[int]


@dataclass
class ImageTrace:
    """One test image: its label, the model's prediction, the output membrane ``[class][step]`` and the rasters."""

    index: int
    label: int
    predicted: int
    output_membrane: list[list[float]]
    rasters: list[LayerRaster] = field(default_factory=list)


@dataclass
class TraceRecord:
    """What the membrane and raster figures draw for the best trial."""

    study: str
    number: int
    neuron: str
    surrogate: str
    backprop: str
    val_acc: float
    num_steps: int
    threshold: float
    images: list[ImageTrace]


def trace_records(
    data: StudyData, trials: list[dict[str, Any]], artifacts: str | None = None, n_images: int = N_IMAGES
) -> tuple[TraceRecord | None, str | None]:
    """``(record, None)`` for the best trial, or ``(None, one line saying why not)``.

    ``artifacts`` overrides the artifact folder (default: the study's, as
    :func:`storage.artifact_dir` finds it).
    """
    import torch

    from objectives import ENCODINGS, LOSSES, ConfigError, TrialConfig, build_model, load

    best = best_trial(trials)
    if best is None:
        return None, "no complete trial yet"
    name = f"trial {best['number']} of study {best['study']!r}"
    trial = next(r for r in data.records if r.study == best["study"] and r.number == best["number"])
    try:
        if trial.config is None:
            raise ConfigError("config", None, "the trial has no run config")
        cfg = TrialConfig.from_dict(trial.config)
        cfg = cfg.replace(**{"training.device": "cpu", "dataset.download": False})
    except ConfigError as exc:
        return None, f"the config of {name} no longer builds a model ({exc})"
    try:
        saved = trial_weights(data.url, trial, data.study_attrs.get(trial.study, {}), artifacts)
    except ConfigError as exc:
        return None, f"no weights of {name} (the best): {exc}; pass --artifacts DIR for another folder"
    try:
        state_dict = torch.load(io.BytesIO(saved), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch's refusals vary: UnpicklingError (not plain tensors), RuntimeError, EOFError
        first = (str(exc).splitlines() or [""])[0][:160]
        return None, (f"the weights artifact {trial.weights_artifact} of {name} could not be loaded as plain tensors "
                      f"({type(exc).__name__}: {first})")
    try:
        images = load(cfg.dataset, "cpu")
    except ConfigError as exc:
        return None, f"the dataset of {name} is not available here ({exc})"
    model = build_model(cfg, images)
    try:
        model.load_state_dict(state_dict)
    except RuntimeError as exc:  # the model code changed since the trial ran
        return None, f"the weights of {name} do not fit the model its config builds now ({str(exc).splitlines()[0]})"
    model.eval()
    encoding = ENCODINGS[cfg.model.encoding]
    steps = cfg.model.num_steps
    x, y = images.test.x[:n_images], images.test.y[:n_images]
    torch.manual_seed(0)  # rate encoding draws spikes: the same picture every time
    with torch.no_grad():
        out = model(encoding.encode(x, steps), steps, static=encoding.static, record=True)
        loss = LOSSES[cfg.training.loss]
        predicted = loss.predict(out.spikes if loss.on == "spikes" else out.mem)
    names = layer_names(len(out.trace))
    traced = []
    for b in range(len(y)):
        rasters = []
        for layer, (spk, _mem) in zip(names, out.trace):
            per_neuron = spk[:, b].reshape(spk.shape[0], -1)  # [T, neurons]
            fired = per_neuron.sum(0) > 0
            active = torch.tensor(raster_sample(per_neuron.shape[1]), dtype=torch.long)
            t_idx, n_idx = per_neuron[:, active].nonzero(as_tuple=True)
            rasters.append(LayerRaster(
                layer=layer,
                n_neurons=per_neuron.shape[1],
                n_active=int(fired.sum()),
                shown=active.tolist(),
                steps=t_idx.tolist(),
                neurons=active[n_idx].tolist(),
            ))
        membrane = out.trace[-1][1][:, b]  # [T, classes]
        traced.append(ImageTrace(index=b, label=int(y[b]), predicted=int(predicted[b]),
                                 output_membrane=membrane.T.tolist(), rasters=rasters))
    record = TraceRecord(study=best["study"], number=best["number"], neuron=best["neuron"],
                         surrogate=best["surrogate"], backprop=best["backprop"], val_acc=best["value"],
                         num_steps=steps, threshold=cfg.model.threshold, images=traced)
    return record, None
