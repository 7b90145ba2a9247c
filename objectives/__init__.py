"""What one trial does: its config, data, neurons, surrogates, backprop methods, the conv-SNN, training.

Every pluggable family is one registry (a dict keyed by the names used in configs,
``--help``, Optuna's categorical choices and error messages) with a spec table of the
same keys (``NEURON_SPECS``, ...). The light half of this package (the errors, the spec
tables, :class:`TrialConfig`, the trial-record schema :class:`TrialRecord` and the
combination codec) imports neither torch nor any other module of the project, so
``import objectives`` is cheap: every layer above validates and reads trials with it.
The names that need torch (the registries of implementations, the model, training, the
Optuna objective) are imported on first use, as Optuna imports its optional heavy parts.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._codec import (
    COMBINATION,
    COMBINATION_PATHS,
    FACTORS,
    GROUP_FIELDS,
    STAGES,
    STUDY_SEPARATOR,
    UNKNOWN,
    CellStudy,
    Combination,
    belongs_to,
    cell_study_name,
    config_value,
    file_stem,
    parse_study_name,
    path_part,
    study_name_problem,
)
from ._config import (
    DATA_ENV,
    MAX_SEED,
    SECTIONS,
    DatasetConfig,
    ModelConfig,
    TrainingConfig,
    TrialConfig,
    apply_overrides,
    build_section,
    coerce,
    device_problem,
    plain,
)
from ._errors import ConfigError, TrainingDiverged, short_repr
from ._record import STUDY_CONFIG_ATTR, EpochMetrics, TrialRecord, foreign_study, layer_names, saved_artifacts
from ._specs import (
    BACKPROP_HELP,
    BACKPROPS,
    DATASET_NAMES,
    ENCODING_SPECS,
    ENGINES,
    GAINS,
    IMAGE_SIZES,
    LOSS_SPECS,
    NEURON_SPECS,
    OPTIMIZER_NAMES,
    RESET_MECHANISMS,
    STEP_EVERY,
    SURROGATE_PARAMS,
    SURROGATE_SCALES,
    SURROGATE_SPECS,
    EncodingSpec,
    LossSpec,
    NeuronSpec,
    SurrogateSpec,
)

if TYPE_CHECKING:
    from ._costs import E_AC_PJ, E_MAC_PJ, CostMetrics, cost_metrics
    from ._data import DATASETS, MNIST_FILES, Data, Split, load
    from ._encodings import ENCODINGS
    from ._fused import MEMBER_FIELDS, TrialArray, array_key, check_array, default_array_size, train_array
    from ._losses import LOSSES
    from ._model import ConvSNN, count_parameters, detach_state, make_neuron
    from ._neurons import NEURONS, untrack
    from ._objective import WEIGHTS_MIMETYPE, Objective, result_attrs, weights_bytes
    from ._optimizers import OPTIMIZERS
    from ._surrogates import SURROGATES
    from ._train import (
        TrainResult,
        TrainStep,
        build_model,
        evaluate,
        make_optimizer,
        missing_device,
        resolve_device,
        train,
        train_batch,
        uses_cuda_graph,
    )

#: the names that import torch -> the private module defining each, imported on first use
_HEAVY = {
    **dict.fromkeys(("E_AC_PJ", "E_MAC_PJ", "CostMetrics", "cost_metrics"), "._costs"),
    **dict.fromkeys(("DATASETS", "MNIST_FILES", "Data", "Split", "load"), "._data"),
    "ENCODINGS": "._encodings",
    **dict.fromkeys(
        ("MEMBER_FIELDS", "TrialArray", "array_key", "check_array", "default_array_size", "train_array"), "._fused"
    ),
    "LOSSES": "._losses",
    **dict.fromkeys(("ConvSNN", "count_parameters", "detach_state", "make_neuron"), "._model"),
    **dict.fromkeys(("NEURONS", "untrack"), "._neurons"),
    **dict.fromkeys(("WEIGHTS_MIMETYPE", "Objective", "result_attrs", "weights_bytes"), "._objective"),
    "OPTIMIZERS": "._optimizers",
    "SURROGATES": "._surrogates",
    **dict.fromkeys(
        ("TrainResult", "TrainStep", "build_model", "evaluate", "make_optimizer", "missing_device", "resolve_device",
         "train", "train_batch", "uses_cuda_graph"),
        "._train",
    ),
}


def __getattr__(name: str) -> Any:
    module = _HEAVY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # the next access is a plain module attribute
    return value


__all__ = [
    "BACKPROPS",
    "BACKPROP_HELP",
    "COMBINATION",
    "COMBINATION_PATHS",
    "CellStudy",
    "Combination",
    "ConfigError",
    "ConvSNN",
    "CostMetrics",
    "DATASETS",
    "DATASET_NAMES",
    "DATA_ENV",
    "Data",
    "DatasetConfig",
    "E_AC_PJ",
    "E_MAC_PJ",
    "ENCODINGS",
    "ENCODING_SPECS",
    "ENGINES",
    "EncodingSpec",
    "EpochMetrics",
    "FACTORS",
    "GAINS",
    "GROUP_FIELDS",
    "IMAGE_SIZES",
    "LOSSES",
    "LOSS_SPECS",
    "MAX_SEED",
    "MEMBER_FIELDS",
    "MNIST_FILES",
    "LossSpec",
    "ModelConfig",
    "NEURONS",
    "NEURON_SPECS",
    "NeuronSpec",
    "OPTIMIZERS",
    "OPTIMIZER_NAMES",
    "Objective",
    "RESET_MECHANISMS",
    "SECTIONS",
    "STAGES",
    "STEP_EVERY",
    "STUDY_CONFIG_ATTR",
    "STUDY_SEPARATOR",
    "SURROGATES",
    "SURROGATE_PARAMS",
    "SURROGATE_SCALES",
    "SURROGATE_SPECS",
    "Split",
    "SurrogateSpec",
    "TrainResult",
    "TrainStep",
    "TrainingConfig",
    "TrainingDiverged",
    "TrialArray",
    "TrialConfig",
    "TrialRecord",
    "UNKNOWN",
    "WEIGHTS_MIMETYPE",
    "apply_overrides",
    "array_key",
    "belongs_to",
    "build_model",
    "build_section",
    "cell_study_name",
    "check_array",
    "coerce",
    "cost_metrics",
    "config_value",
    "count_parameters",
    "default_array_size",
    "detach_state",
    "device_problem",
    "evaluate",
    "file_stem",
    "foreign_study",
    "layer_names",
    "load",
    "make_neuron",
    "make_optimizer",
    "missing_device",
    "parse_study_name",
    "path_part",
    "plain",
    "resolve_device",
    "result_attrs",
    "saved_artifacts",
    "short_repr",
    "study_name_problem",
    "train",
    "train_array",
    "train_batch",
    "untrack",
    "uses_cuda_graph",
    "weights_bytes",
]
