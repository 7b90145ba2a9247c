"""What the libraries under a study accept, checked when the config is read: nothing fails later on a number.

Optuna's samplers seed numpy (0 to 2**32 - 1, and each worker adds 1000 to the study's
seed), its storages keep a study name of at most 512 characters (a per-combination
study adds its own part), a heartbeat is a thread's wait and a grace period a
``timedelta``. A config outside these bounds is refused with one line before any study
is written, instead of a traceback from the first worker.
"""

from __future__ import annotations

import json
import math
from typing import Any

from objectives import (
    BACKPROPS,
    NEURON_SPECS,
    STAGES,
    SURROGATE_SPECS,
    Combination,
    ConfigError,
    cell_study_name,
    device_problem,
)
from storage import MAX_STUDY_NAME

from ._samplers import WORKER_SEED_STRIDE

#: numpy's seeds (what Optuna's samplers are seeded with)
MAX_SAMPLER_SEED = 2**32 - 1
#: a day: a heartbeat rarer than that, or a grace period longer, leaves a dead worker's trial hanging for days
MAX_HEARTBEAT_S = 86_400


def longest_study_name(name: str) -> str:
    """The longest study name a study ``name`` can lead to: a per-combination study of the longest registry names,
    in the longest comparison stage."""
    longest = Combination(*(max(keys, key=len) for keys in (NEURON_SPECS, SURROGATE_SPECS, BACKPROPS)))
    return cell_study_name(name, longest, max(STAGES, key=len))


def check_settings(settings: Any) -> None:
    """Refuse a ``study`` section (:class:`study.StudySettings`) that a library under the study would refuse."""
    name = settings.name
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise ConfigError("study.name", name, "expected a name on one line, without control characters")
    extra = len(longest_study_name(name)) - len(name)
    if len(name) + extra > MAX_STUDY_NAME:
        raise ConfigError("study.name", name, f"{len(name)} characters; at most {MAX_STUDY_NAME - extra} (a storage "
                          f"keeps {MAX_STUDY_NAME} per study name, and a per-combination study adds up to {extra})")
    highest = settings.seed + WORKER_SEED_STRIDE * settings.workers
    if settings.seed < 0 or highest > MAX_SAMPLER_SEED:
        top = MAX_SAMPLER_SEED - WORKER_SEED_STRIDE * settings.workers
        raise ConfigError("study.seed", settings.seed, f"must be within [0, {top}] with {settings.workers} worker(s) "
                          f"(numpy seeds Optuna's samplers up to 2**32 - 1; each worker adds {WORKER_SEED_STRIDE})")
    for field in ("heartbeat_interval", "grace_period"):
        value = getattr(settings, field)
        if value > MAX_HEARTBEAT_S:
            raise ConfigError(f"study.{field}", value, f"must be <= {MAX_HEARTBEAT_S} seconds (a day)")
    for device in settings.devices or ():
        problem = device_problem(device)
        if problem or device == "auto":
            raise ConfigError("study.devices", device, "allowed: cpu, cuda, cuda:N")


def check_devices(devices: list[tuple[str, str]]) -> None:
    """Refuse a device this machine does not have (``cuda:7`` on a machine with two; ``cuda`` without CUDA);
    ``devices`` are ``(field, name)`` pairs, the field named in the error. Imports torch."""
    from objectives import missing_device

    for field, name in devices:
        problem = missing_device(name)
        if problem:
            raise ConfigError(field, name, problem)


def check_machine(cfg: Any) -> None:
    """Refuse a study (:class:`study.StudyConfig`) whose workers would train on a device this machine lacks:
    ``study.devices`` when set, else ``training.device`` (which ``search`` cannot vary)."""
    if cfg.study.devices:
        check_devices([("study.devices", d) for d in cfg.study.devices])
    else:
        check_devices([("training.device", cfg.search.base.training.device)])


def device_shown(name: str) -> str:
    """The device ``name`` (a ``training.device``) resolves to here, as a user checks it: ``cpu``, or
    ``cuda:N (the GPU's name)``. Imports torch."""
    import torch

    from objectives import resolve_device

    device = resolve_device(name)
    if device.type != "cuda":
        return str(device)
    index = device.index if device.index is not None else torch.cuda.current_device()
    return f"cuda:{index} ({torch.cuda.get_device_name(index)})"


def devices_shown(cfg: Any) -> str:
    """Where the local workers of a study (:class:`study.StudyConfig`) train: ``study.devices`` when set, else
    ``training.device``, each as :func:`device_shown` gives it."""
    names = cfg.study.devices or (cfg.search.base.training.device,)
    return ", ".join(dict.fromkeys(device_shown(n) for n in names))


def json_line(data: Any) -> str:
    """``data`` as one line of JSON: NaN and infinity, which JSON does not have, become ``null``."""
    return json.dumps(_finite(data), allow_nan=False)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


__all__ = ["check_devices", "check_machine", "check_settings", "json_line", "longest_study_name"]
