"""On a GPU the training step is replayed as a CUDA graph (`objectives.TrainStep`); it must
train what the same batches train eagerly. Which runs use a graph is decided without a GPU
and is checked everywhere; the rest needs CUDA and is skipped without it (CI has none):
run `python -m pytest tests/test_cuda.py` on a GPU machine."""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import warnings

import pytest
import torch

from objectives import (
    BACKPROPS,
    LOSSES,
    NEURONS,
    STEP_EVERY,
    SURROGATES,
    TrainStep,
    TrialConfig,
    build_model,
    load,
    make_optimizer,
    train,
    train_batch,
    uses_cuda_graph,
)

CUDA = torch.device("cuda")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def config(tiny, **training) -> TrialConfig:
    tiny["training"].update(device="cuda", **training)
    return TrialConfig.from_dict(tiny)


@pytest.mark.parametrize(
    "device, training, graphed",
    [
        ("cuda", {}, True),
        ("cpu", {}, False),
        ("cuda", {"cuda_graph": False}, False),
        ("cuda", {"engine": "snntorch"}, False),  # the reference stays kernel by kernel
        ("cuda", {"loss": "mse_count"}, False),  # its targets need the GPU's answer mid-batch
        *[("cuda", {"loss": name}, True) for name in LOSSES if name != "mse_count"],
        *[("cuda", {"optimizer": name}, True) for name in ("adamax", "adam", "adamw", "sgd")],
    ],
)
def test_which_runs_are_recorded_as_a_cuda_graph(tiny, device, training, graphed):
    cfg = config(tiny, **training)
    assert uses_cuda_graph(cfg, torch.device(device)) is graphed


def test_the_optimizer_keeps_its_step_count_on_the_device_only_for_a_graph(tiny):
    cfg = config(tiny)
    model = build_model(cfg)
    assert make_optimizer(cfg, model, CUDA).param_groups[0]["capturable"]
    assert not make_optimizer(cfg, model, torch.device("cpu")).param_groups[0]["capturable"]


def test_on_a_cpu_the_step_is_train_batch_itself(tiny):
    tiny["training"]["device"] = "cpu"
    cfg = TrialConfig.from_dict(tiny)
    data = load(cfg.dataset)
    x, y = data.train.x[:64], data.train.y[:64]
    weights = []
    for use_step in (True, False):
        torch.manual_seed(0)
        model = build_model(cfg, data)
        optimizer = make_optimizer(cfg, model, torch.device("cpu"))
        step = TrainStep(model, optimizer, cfg)
        assert not step.graphed
        for _ in range(2):
            if use_step:
                step(x, y)
            else:
                train_batch(model, x, y, optimizer, cfg)
        weights.append([p.detach().clone() for p in model.parameters()])
    for a, b in zip(*weights):
        assert torch.equal(a, b)


@contextlib.contextmanager
def exact_arithmetic():
    """Full fp32 (no TF32) and deterministic cuDNN, so that two runs of the same kernels agree."""
    saved = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.deterministic)
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.deterministic = True
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved[:2]
        torch.backends.cudnn.deterministic = saved[2]


def train_batches(cfg: TrialConfig, graph: bool, n_full: int = TrainStep.WARMUP + 3):
    """The step, the weights and per-batch losses after ``n_full`` full batches and one partial
    batch, and whether the weights moved; with the graph or without (both with the graph's
    capturable optimizer: the same arithmetic)."""
    data = load(cfg.dataset, CUDA)
    torch.manual_seed(0)
    model = build_model(cfg, data).to(CUDA)
    initial = [p.detach().clone() for p in model.parameters()]
    optimizer = make_optimizer(cfg, model, CUDA)
    step = TrainStep(model, optimizer, cfg.replace(**{"training.cuda_graph": graph}))
    size = cfg.training.batch_size
    losses = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback, no stray warning
        warnings.filterwarnings("ignore", message=".*capturable=True.*")  # the eager run's optimizer
        for b in range(n_full):
            loss, *_ = step(data.train.x[b * size : (b + 1) * size], data.train.y[b * size : (b + 1) * size])
            losses.append(loss.item())
        loss, *_ = step(data.train.x[:37], data.train.y[:37])
        losses.append(loss.item())
    weights = [p.detach().clone() for p in model.parameters()]
    return step, weights, losses, any(not torch.equal(a, b) for a, b in zip(weights, initial))


@needs_cuda
@pytest.mark.parametrize("step_every", STEP_EVERY)
@pytest.mark.parametrize("neuron, backprop", list(itertools.product(NEURONS, BACKPROPS)))
def test_graph_replays_train_the_weights_eager_batches_train(tiny, neuron, backprop, step_every):
    tiny["model"]["neuron"] = neuron
    if neuron == "alpha" and backprop != "bptt":
        # set past the config's check, which refuses windows shorter than the alpha network's delay (here 2
        # and 1 steps, below 4): the graph must still record what the eager batch computes
        cfg = config(tiny, step_every=step_every)
        cfg = dataclasses.replace(cfg, training=dataclasses.replace(cfg.training, backprop=backprop,
                                                                    tbptt_window=2))
    else:
        cfg = config(tiny, backprop=backprop, tbptt_window=2, step_every=step_every)
    with exact_arithmetic():
        step, graph_weights, graph_losses, moved = train_batches(cfg, graph=True)
        _, eager_weights, eager_losses, _ = train_batches(cfg, graph=False)
    assert step.graphed and step._graph is not None  # recorded, and replayed for the last full batches
    # the comparison is of trained weights, except where nothing can train: the alpha neuron's
    # membrane answers an input only from the next step, so one-step windows carry no gradient
    assert moved is not (neuron == "alpha" and backprop == "rtrl")
    assert graph_losses == pytest.approx(eager_losses, abs=1e-6)
    for a, b in zip(graph_weights, eager_weights):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


@needs_cuda
@pytest.mark.parametrize("loss", LOSSES)
def test_every_loss_trains_on_the_gpu(tiny, loss):
    cfg = config(tiny, loss=loss)
    step, _, losses, moved = train_batches(cfg, graph=True)
    assert step.graphed is LOSSES[loss].graphable and moved
    assert all(torch.isfinite(torch.tensor(losses)))


@needs_cuda
@pytest.mark.parametrize("surrogate", SURROGATES)
def test_every_surrogate_is_recorded(tiny, surrogate):
    tiny["model"]["surrogate"] = surrogate
    step, _, losses, moved = train_batches(config(tiny), graph=True)
    assert step.graphed and moved and all(torch.isfinite(torch.tensor(losses)))


@needs_cuda
def test_random_draws_are_fresh_at_every_replay(tiny):
    # the same batch replayed with a learning rate too small to change anything and a threshold
    # low enough that the first layer spikes: only the Poisson input can make its spikes differ
    tiny["model"].update(encoding="rate", threshold=0.05)
    cfg = config(tiny, lr=1e-30)
    data = load(cfg.dataset, CUDA)
    torch.manual_seed(0)
    model = build_model(cfg, data).to(CUDA)
    step = TrainStep(model, make_optimizer(cfg, model, CUDA), cfg)
    x, y = data.train.x[:64], data.train.y[:64]
    rates = [step(x, y)[3][0].item() for _ in range(TrainStep.WARMUP + 3)]
    assert step._graph is not None
    assert 0 < rates[-1] < 1 and len(set(rates[-3:])) == 3


@needs_cuda
def test_a_run_trains_as_well_with_the_graph_as_without(tiny):
    tiny["training"].update(epochs=3, batch_size=32)
    results = [train(config(tiny, cuda_graph=graph)) for graph in (True, False)]
    assert results[0].val_acc > 0.6
    assert abs(results[0].val_acc - results[1].val_acc) < 0.05
