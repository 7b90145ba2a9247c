"""The training loop: epochs of batches, validation after each, early stopping, test at the end.

The three backprop methods are one mechanism with different window lengths
(``BACKPROPS``, as snntorch defines them). Each window runs forward from the
previous window's (detached) state, takes the loss over the window's outputs and
backpropagates it; ``training.step_every`` says whether the optimizer steps after
every window (snntorch's TBPTT and RTRL) or once per batch on the windows' summed
gradients (every method one update per batch).
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

import torch

from ._config import TrialConfig
from ._costs import CostMetrics, cost_metrics
from ._data import Data, Split, load
from ._encodings import ENCODINGS
from ._errors import TrainingDiverged
from ._losses import LOSSES
from ._model import ConvSNN, count_parameters, detach_state
from ._optimizers import OPTIMIZERS
from ._record import EpochMetrics
from ._specs import BACKPROPS, LOSS_SPECS

EVAL_BATCH = 1000


@dataclass
class TrainResult:
    """The outcome of one run: best validation accuracy, test accuracy of those weights, history,
    and what those weights cost at inference on the test set (``costs``, whose ``accuracy`` is ``test_acc``)
    and on the validation set (``val_costs``, whose ``accuracy`` is ``val_acc``: what a study may choose by)."""

    val_acc: float
    best_epoch: int
    test_acc: float
    epochs: int
    seconds: float
    train_samples_per_s: float
    spike_rates: tuple[float, ...]
    n_params: int
    costs: CostMetrics
    val_costs: CostMetrics
    history: list[EpochMetrics] = field(default_factory=list)
    stopped_early: bool = False
    state_dict: dict[str, torch.Tensor] | None = None


def resolve_device(name: str) -> torch.device:
    """``auto`` is the first CUDA device when there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def missing_device(name: str) -> str | None:
    """Why the device ``name`` (a valid ``training.device``) is not on this machine, else ``None``: checked before
    a study or a run starts, so that no trial fails on it."""
    if name in ("auto", "cpu"):
        return None
    if not torch.cuda.is_available():
        return "this machine has no CUDA device (torch sees none); use cpu or auto"
    index = torch.device(name).index
    count = torch.cuda.device_count()
    if index is not None and index >= count:
        return f"this machine has {count} CUDA device{'s' if count != 1 else ''} (cuda:0 to cuda:{count - 1})"
    return None


def build_model(cfg: TrialConfig, data: Data | None = None) -> ConvSNN:
    """The conv-SNN for ``cfg`` (input shape and classes from ``data``, MNIST's by default)."""
    shape = data.input_shape if data is not None else (1, 28, 28)
    classes = data.num_classes if data is not None else 10
    return ConvSNN(cfg.model, shape, classes, engine=cfg.training.engine)


def train_batch(model: ConvSNN, x: torch.Tensor, y: torch.Tensor, optimizer, cfg: TrialConfig):
    """Train on one batch with the config's backprop method.

    Under ``step_every: window`` every window's gradient makes its own optimizer step;
    under ``batch`` the windows' gradients accumulate (their sum) into one step at the end.
    Returns the mean loss over windows, the output spikes and membrane over all
    steps (detached, for accuracy) and the layers' spike rates, all as tensors so
    that nothing waits for the device here.
    """
    num_steps = cfg.model.num_steps
    window = BACKPROPS[cfg.training.backprop](cfg)
    per_window = cfg.training.step_every == "window"
    encoding = ENCODINGS[cfg.model.encoding]
    loss_spec = LOSSES[cfg.training.loss]
    criterion = loss_spec.make()
    inputs = encoding.encode(x, num_steps)

    # gradients start from None (not zeros): the first backward writes them, the later ones add
    # (and a CUDA graph recorded from None writes them at every replay)
    optimizer.zero_grad(set_to_none=True)
    state, losses, spikes, mems, rates = None, [], [], [], []
    for start in range(0, num_steps, window):
        steps = min(window, num_steps - start)
        chunk = inputs if encoding.static else inputs[start : start + steps]
        out = model(chunk, steps, state, static=encoding.static)
        loss = criterion(out.spikes if loss_spec.on == "spikes" else out.mem, y)
        loss.backward()
        if per_window:
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        state = detach_state(out.state)
        losses.append(loss.detach().reshape(()))
        spikes.append(out.spikes.detach())
        mems.append(out.mem.detach())
        rates.append(torch.stack(out.rates) * steps)
    if not per_window:
        optimizer.step()
    return torch.stack(losses).mean(), torch.cat(spikes), torch.cat(mems), torch.stack(rates).sum(0) / num_steps


def uses_cuda_graph(cfg: TrialConfig, device: torch.device) -> bool:
    """Whether :class:`TrainStep` records ``cfg``'s training batches as a CUDA graph on ``device``:
    on a GPU, with ``training.cuda_graph`` on, the fast engine (the snntorch engine stays the
    plain reference) and a loss a graph can record."""
    t = cfg.training
    return device.type == "cuda" and t.cuda_graph and t.engine == "fast" and LOSS_SPECS[t.loss].graphable


def make_optimizer(cfg: TrialConfig, model: ConvSNN, device: torch.device) -> torch.optim.Optimizer:
    """``training.optimizer`` over ``model``'s parameters, ready for a CUDA graph where one is used."""
    t = cfg.training
    return OPTIMIZERS[t.optimizer](model.parameters(), t.lr, capturable=uses_cuda_graph(cfg, device))


class TrainStep:
    """Trains ``model`` on one batch (:func:`train_batch`): eagerly, or on a GPU
    (:func:`uses_cuda_graph`) by replaying a CUDA graph of the batch.

    One batch launches some 700 to 2,000 small kernels (each neuron layer at each time
    step, forward and backward, and each window's optimizer step); on a GPU, launching
    them from Python one by one takes longer than running them. A CUDA graph records
    the batch's kernels and their memory once and replays them with one launch. The
    recording needs fixed shapes: it is made for full batches after ``WARMUP`` eager
    ones, which run on a side stream as PyTorch asks, so that cuDNN's and the
    optimizer's one-time set-up stays out of it. A batch of another size (an epoch's
    last) runs eagerly on the same weights and optimizer state. Each replay computes
    what the eager batch computes, random draws included (a fresh draw per replay).
    The returned tensors are copies: a later call does not overwrite them.
    """

    WARMUP = 3

    def __init__(self, model: ConvSNN, optimizer: torch.optim.Optimizer, cfg: TrialConfig):
        self.model, self.optimizer, self.cfg = model, optimizer, cfg
        device = next(model.parameters()).device
        self.graphed = uses_cuda_graph(cfg, device)
        self._device = device
        self._graph: torch.cuda.CUDAGraph | None = None
        self._warm = 0
        self._side: torch.cuda.Stream | None = None

    def __call__(self, x: torch.Tensor, y: torch.Tensor):
        if not self.graphed:
            return train_batch(self.model, x, y, self.optimizer, self.cfg)
        # streams and the recording belong to the current device: make it the model's (cuda:1
        # in a worker given --devices cuda:0,cuda:1 whose current device is still cuda:0)
        with torch.cuda.device(self._device):
            return self._graphed(x, y)

    def _graphed(self, x, y):
        full = len(x) == self.cfg.training.batch_size
        graph = self._graph
        if graph is None:
            if not full or self._warm < self.WARMUP:
                self._warm += int(full)
                return self._warm_up(x, y)
            try:
                graph = self._record(x, y)
            except RuntimeError as e:
                warnings.warn(f"CUDA graph capture failed, training this run batch by batch instead: {e}", stacklevel=3)
                self.graphed = False
                return self._eager(x, y)
        if not full:
            return self._eager(x, y)
        self._x.copy_(x)
        self._y.copy_(y)
        graph.replay()
        return tuple(t.clone() for t in self._out)

    def _eager(self, x, y):
        with warnings.catch_warnings():
            # the optimizer was built for the graph (``capturable``); this batch runs without it, on purpose
            warnings.filterwarnings("ignore", message=".*capturable=True.*")
            return train_batch(self.model, x, y, self.optimizer, self.cfg)

    def _warm_up(self, x, y):
        self._side = self._side or torch.cuda.Stream(self._device)
        main = torch.cuda.current_stream(self._device)
        self._side.wait_stream(main)
        with torch.cuda.stream(self._side):
            out = self._eager(x, y)
        main.wait_stream(self._side)
        return out

    def _record(self, x, y) -> torch.cuda.CUDAGraph:
        self._x, self._y = x.clone(), y.clone()
        # gradients recorded from None are written, not accumulated, at each replay
        self.optimizer.zero_grad(set_to_none=True)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self._out = train_batch(self.model, self._x, self._y, self.optimizer, self.cfg)
        self._graph = graph
        return graph


@torch.no_grad()
def evaluate(model: ConvSNN, split: Split, cfg: TrialConfig) -> float:
    """Accuracy on ``split`` over the full window of time steps."""
    model.eval()
    encoding = ENCODINGS[cfg.model.encoding]
    loss_spec = LOSSES[cfg.training.loss]
    correct = torch.zeros((), device=split.y.device)
    for i in range(0, len(split), EVAL_BATCH):
        x, y = split.x[i : i + EVAL_BATCH], split.y[i : i + EVAL_BATCH]
        out = model(encoding.encode(x, cfg.model.num_steps), cfg.model.num_steps, static=encoding.static)
        pred = loss_spec.predict(out.spikes if loss_spec.on == "spikes" else out.mem)
        correct += (pred == y).sum()
    model.train()
    return correct.item() / len(split)


def train(
    cfg: TrialConfig,
    data: Data | None = None,
    on_epoch: Callable[[EpochMetrics], None] | None = None,
    on_batch: Callable[[int, int], None] | None = None,
    keep_weights: bool = False,
) -> TrainResult:
    """Train ``cfg`` to the end (or early stopping) and test the best-validation weights.

    ``on_epoch`` is called after every epoch and may raise (``optuna.TrialPruned``)
    to stop; ``on_batch(done, total)`` reports progress within an epoch.
    """
    t = cfg.training
    device = resolve_device(t.device)
    data = data if data is not None else load(cfg.resolved().dataset, device)
    torch.manual_seed(t.seed)
    model = build_model(cfg, data).to(device)
    optimizer = make_optimizer(cfg, model, device)
    step = TrainStep(model, optimizer, cfg)
    shuffle = torch.Generator().manual_seed(t.seed)
    n_train = len(data.train)
    n_batches = math.ceil(n_train / t.batch_size)

    history: list[EpochMetrics] = []
    # the first epoch always beats these
    best_val, best_epoch, best_weights = -1.0, 0, model.state_dict()
    best_rates: tuple[float, ...] = ()
    best_costs: CostMetrics | None = None
    started = time.perf_counter()
    for epoch in range(1, t.epochs + 1):
        epoch_start = time.perf_counter()
        order = torch.randperm(n_train, generator=shuffle).to(device)
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device)
        rate_sum = torch.zeros(len(model.neurons), device=device)
        for b in range(n_batches):
            idx = order[b * t.batch_size : (b + 1) * t.batch_size]
            y = data.train.y[idx]
            loss, spikes, mems, rates = step(data.train.x[idx], y)
            pred = LOSSES[t.loss].predict(spikes if LOSSES[t.loss].on == "spikes" else mems)
            loss_sum += loss * len(idx)
            correct += (pred == y).sum()
            rate_sum += rates * len(idx)
            if on_batch is not None:
                on_batch(b + 1, n_batches)
        train_seconds = time.perf_counter() - epoch_start
        # one device sync per epoch: a NaN loss is caught here, not batch by batch
        train_loss = loss_sum.item() / n_train
        if not math.isfinite(train_loss):
            raise TrainingDiverged(epoch, train_loss)
        # the validation pass counts what the weights cost too (a study may choose by it, never by the test set)
        val_costs = cost_metrics(model, cfg, data.val)
        val_acc = val_costs.accuracy
        metrics = EpochMetrics(
            epoch=epoch,
            train_loss=train_loss,
            train_acc=correct.item() / n_train,
            val_acc=val_acc,
            spike_rates=tuple((rate_sum / n_train).tolist()),
            seconds=time.perf_counter() - epoch_start,
            train_samples_per_s=n_train / train_seconds,
            val_costs=val_costs.to_dict(),
        )
        history.append(metrics)
        if val_acc > best_val:
            best_val, best_epoch, best_rates, best_costs = val_acc, epoch, metrics.spike_rates, val_costs
            best_weights = copy.deepcopy(model.state_dict())
        if on_epoch is not None:
            on_epoch(metrics)
        if epoch - best_epoch >= t.early_stopping_patience:
            break

    model.load_state_dict(best_weights)
    # the test pass and the cost metrics are one pass: a second one would add some 5 % to a small trial
    costs = cost_metrics(model, cfg, data.test)
    train_time = sum(n_train / m.train_samples_per_s for m in history)
    return TrainResult(
        val_acc=best_val,
        best_epoch=best_epoch,
        test_acc=costs.accuracy,
        epochs=len(history),
        seconds=time.perf_counter() - started,
        train_samples_per_s=n_train * len(history) / train_time,
        spike_rates=best_rates,
        n_params=count_parameters(model),
        history=history,
        stopped_early=len(history) < t.epochs,
        state_dict=best_weights if keep_weights else None,
        costs=costs,
        val_costs=cast(CostMetrics, best_costs),  # the first epoch always sets it
    )
