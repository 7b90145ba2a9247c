"""What one trial does: data, neurons, surrogates, backprop methods, the conv-SNN, training.

Every pluggable family is one registry (a dict keyed by the names used in configs,
``--help``, Optuna's categorical choices and error messages).
"""

from ._config import ConfigError, DatasetConfig, ModelConfig, TrainingConfig, TrialConfig, apply_overrides
from ._data import DATASETS, Data, Split, load
from ._encodings import ENCODINGS
from ._fused import MEMBER_FIELDS, TrialArray, array_key, check_array, default_array_size, train_array
from ._losses import LOSSES
from ._model import ConvSNN, count_parameters, detach_state, make_neuron
from ._neurons import NEURONS, RESET_MECHANISMS
from ._objective import RESULT_ATTRS, Objective
from ._optimizers import OPTIMIZERS
from ._surrogates import SURROGATES
from ._train import (
    BACKPROPS,
    ENGINES,
    EpochMetrics,
    TrainingDiverged,
    TrainResult,
    TrainStep,
    build_model,
    evaluate,
    layer_names,
    make_optimizer,
    resolve_device,
    train,
    train_batch,
    uses_cuda_graph,
)

__all__ = [
    "BACKPROPS",
    "ConfigError",
    "ConvSNN",
    "DATASETS",
    "Data",
    "DatasetConfig",
    "ENCODINGS",
    "ENGINES",
    "EpochMetrics",
    "LOSSES",
    "MEMBER_FIELDS",
    "ModelConfig",
    "NEURONS",
    "OPTIMIZERS",
    "Objective",
    "RESULT_ATTRS",
    "RESET_MECHANISMS",
    "SURROGATES",
    "Split",
    "TrainResult",
    "TrainStep",
    "TrainingConfig",
    "TrainingDiverged",
    "TrialArray",
    "TrialConfig",
    "apply_overrides",
    "array_key",
    "build_model",
    "check_array",
    "count_parameters",
    "default_array_size",
    "detach_state",
    "evaluate",
    "layer_names",
    "load",
    "make_neuron",
    "make_optimizer",
    "resolve_device",
    "train",
    "train_array",
    "train_batch",
    "uses_cuda_graph",
]
