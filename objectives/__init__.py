"""What one trial does: data, neurons, surrogates, backprop methods, the conv-SNN, training.

Every pluggable family is one registry (a dict keyed by the names used in configs,
``--help``, Optuna's categorical choices and error messages).
"""

from ._config import ConfigError, DatasetConfig, ModelConfig, TrainingConfig, TrialConfig, apply_overrides
from ._costs import E_AC_PJ, E_MAC_PJ, CostMetrics, cost_metrics
from ._data import DATASETS, Data, Split, load
from ._encodings import ENCODINGS
from ._losses import LOSSES
from ._model import ConvSNN, count_parameters, detach_state, layer_names, make_neuron
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
    "CostMetrics",
    "DATASETS",
    "Data",
    "DatasetConfig",
    "E_AC_PJ",
    "E_MAC_PJ",
    "ENCODINGS",
    "ENGINES",
    "EpochMetrics",
    "LOSSES",
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
    "TrialConfig",
    "apply_overrides",
    "build_model",
    "cost_metrics",
    "count_parameters",
    "detach_state",
    "evaluate",
    "layer_names",
    "load",
    "make_neuron",
    "make_optimizer",
    "resolve_device",
    "train",
    "train_batch",
    "uses_cuda_graph",
]
