"""Our training step equals snntorch.backprop.BPTT / TBPTT(K) / RTRL on the same net and batch,
and the fast engine equals the snntorch step loop; one optimizer step per batch under batch stepping;
the alpha neuron's delay through the network."""

from __future__ import annotations

import copy
import dataclasses
import itertools
import warnings

import pytest
import snntorch.functional as SF
import torch
from support import with_snntorch_arithmetic
from torch import nn

from objectives import BACKPROPS, NEURON_SPECS, NEURONS, ConfigError, TrialConfig, build_model, load, train_batch

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from snntorch import backprop as snn_backprop

NUM_STEPS, WINDOW, LR = 6, 4, 20.0 # a window that does not divide the steps: the remainder is tested too


def config(neuron, backprop, engine="fast", encoding="direct"):
    """A run under `original.yaml`'s arithmetic (snntorch's: raw gain and surrogate scale, a step per window)."""
    data = {
        "dataset": {"name": "synthetic", "val_size": 200},
        "model": {"neuron": neuron, "channels": [4, 8], "num_steps": NUM_STEPS, "encoding": encoding, "beta": 0.7,
                  "alpha": 0.9, "threshold": 0.25},  # a low threshold keeps every layer active: gradients everywhere
        "training": {"backprop": backprop, "tbptt_window": WINDOW, "optimizer": "sgd", "engine": engine},
    }
    if (neuron, backprop) != ("alpha", "rtrl"):
        return TrialConfig.from_dict(with_snntorch_arithmetic(data))
    # set past the config's check: the config refuses rtrl for the alpha neuron (a one-step window gives
    # the alpha network no gradient), but the engine must still compute what snntorch.backprop.RTRL does
    data["training"]["backprop"] = "bptt"
    cfg = TrialConfig.from_dict(with_snntorch_arithmetic(data))
    return dataclasses.replace(cfg, training=dataclasses.replace(cfg.training, backprop="rtrl"))


def snntorch_sequential(model):
    """The tutorial's network: nn.Sequential of snntorch neurons with init_hidden=True, same weights."""
    layers = []
    for conv, neuron in zip(model.convs, model.neurons):
        layers += [copy.deepcopy(conv), nn.MaxPool2d(2), neuron.to_snntorch(init_hidden=True, track=True)]
    output = model.neurons[-1].to_snntorch(init_hidden=True, output=True, track=True)
    layers += [nn.Flatten(), copy.deepcopy(model.fc), output]
    return nn.Sequential(*layers)


@pytest.fixture(scope="module")
def batch():
    data = load(config("leaky", "bptt").dataset)
    return data.train.x[:32], data.train.y[:32]


@pytest.mark.parametrize("neuron, backprop", list(itertools.product(NEURONS, BACKPROPS)))
def test_weights_after_one_batch_equal_snntorch_backprop(neuron, backprop, batch, snntorch_instances):
    cfg = config(neuron, backprop)
    x, y = batch
    torch.manual_seed(0)
    ours = build_model(cfg)
    reference = snntorch_sequential(ours)
    start = [m.weight.detach().clone() for m in (*ours.convs, ours.fc)]
    # plain SGD with a large rate: the update is lr * gradient, so equal weights mean equal gradients
    train_batch(ours, x, y, torch.optim.SGD(ours.parameters(), lr=LR), cfg)
    method = {"bptt": snn_backprop.BPTT, "tbptt": snn_backprop.TBPTT, "rtrl": snn_backprop.RTRL}[backprop]
    kwargs = {"K": WINDOW} if backprop == "tbptt" else {}
    method(
        reference, [(x, y)], torch.optim.SGD(reference.parameters(), lr=LR), SF.ce_rate_loss(),
        num_steps=NUM_STEPS, time_var=False, **kwargs,
    )
    theirs = [m for m in reference if isinstance(m, (nn.Conv2d, nn.Linear))]
    mine = [*ours.convs, ours.fc]
    moved = 0.0
    for a, b, before in zip(mine, theirs, start):
        torch.testing.assert_close(a.weight, b.weight, rtol=0, atol=1e-5)
        torch.testing.assert_close(a.bias, b.bias, rtol=0, atol=1e-5)
        moved += (a.weight - before).abs().max().item()
    if (neuron, backprop) == ("alpha", "rtrl"):
        # the alpha membrane answers an input only from the next step on (tau (x - x) = 0 now),
        # and RTRL cuts the graph after every step: no gradient reaches any weight, in snntorch too
        assert moved == 0.0
    else:
        assert moved > 1e-3  # the batch changed the weights: equality is not two untouched nets


def assert_engines_agree(configs, x, y, encoding):
    """The fast engine and the snntorch step loop (``configs[engine]``): the same spikes, membranes and gradients."""
    grads = []
    for engine in ("fast", "snntorch"):
        cfg = configs[engine]
        torch.manual_seed(0)
        model = build_model(cfg)
        out = model(x if encoding == "direct" else (torch.rand(NUM_STEPS, *x.shape) < x).float(), NUM_STEPS,
                    static=encoding == "direct")
        SF.ce_rate_loss()(out.spikes, y).backward()
        grads.append((out.spikes, out.mem, [p.grad for p in model.parameters()]))
    (spk_a, mem_a, g_a), (spk_b, mem_b, g_b) = grads
    assert torch.equal(spk_a, spk_b)
    torch.testing.assert_close(mem_a, mem_b, rtol=0, atol=1e-5)
    for a, b in zip(g_a, g_b):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


@pytest.mark.parametrize("neuron, backprop, encoding", list(itertools.product(NEURONS, BACKPROPS, ["direct", "rate"])))
def test_fast_engine_equals_the_snntorch_step_loop(neuron, backprop, encoding, batch):
    x, y = batch
    assert_engines_agree({e: config(neuron, backprop, e, encoding) for e in ("fast", "snntorch")}, x, y, encoding)


@pytest.mark.parametrize("neuron", NEURONS)
def test_under_the_defaults_the_fast_engine_equals_the_snntorch_step_loop_too(neuron, batch):
    # the matched gain (the step loop gives snntorch's classes the driven current) and a normalized surrogate
    x, y = batch
    configs = {
        engine: TrialConfig.from_dict({
            "dataset": {"name": "synthetic", "val_size": 200},
            "model": {"neuron": neuron, "channels": [4, 8], "num_steps": NUM_STEPS, "threshold": 0.25,
                      "surrogate": "atan"},
            "training": {"engine": engine},
        })
        for engine in ("fast", "snntorch")
    }
    assert configs["fast"].model.gain == "matched" and configs["fast"].model.surrogate_scale == "normalized"
    assert_engines_agree(configs, x, y, "direct")


# ---- equal update budgets: training.step_every ----------------------------------------------


def budget_config(backprop, step_every, num_steps=NUM_STEPS):
    return TrialConfig.from_dict({
        "dataset": {"name": "synthetic", "val_size": 200},
        "model": {"channels": [4, 8], "num_steps": num_steps, "threshold": 0.25},
        "training": {"backprop": backprop, "tbptt_window": WINDOW, "optimizer": "sgd", "step_every": step_every},
    })


class CountingSGD(torch.optim.SGD):
    """SGD that counts its steps and keeps the gradients each step saw."""

    def __init__(self, params, lr):
        super().__init__(params, lr=lr)
        self.seen: list[list[torch.Tensor]] = []

    def step(self, closure=None):
        self.seen.append([p.grad.clone() for group in self.param_groups for p in group["params"]])
        return super().step(closure)


@pytest.mark.parametrize("backprop", BACKPROPS)
@pytest.mark.parametrize("step_every", ["batch", "window"])
def test_batch_stepping_makes_one_optimizer_step_per_batch(backprop, step_every, batch):
    cfg = budget_config(backprop, step_every)
    torch.manual_seed(0)
    model = build_model(cfg)
    optimizer = CountingSGD(model.parameters(), lr=0.1)
    for _ in range(2):
        train_batch(model, *batch, optimizer, cfg)
    windows = -(-NUM_STEPS // BACKPROPS[backprop](cfg))  # 1, 2 (4 + a remainder of 2) and 6
    assert len(optimizer.seen) == 2 * (1 if step_every == "batch" else windows)


@pytest.mark.parametrize("backprop", ["tbptt", "rtrl"])
def test_a_batch_step_takes_the_sum_of_its_windows_gradients(backprop, batch):
    x, y = batch
    cfg = budget_config(backprop, "batch")
    torch.manual_seed(0)
    model = build_model(cfg)
    start = copy.deepcopy(model.state_dict())
    optimizer = CountingSGD(model.parameters(), lr=0.1)
    train_batch(model, x, y, optimizer, cfg)
    (accumulated,) = optimizer.seen

    # by hand, from the same weights: each window from the previous one's detached state, its own gradient
    model.load_state_dict(start)
    window = BACKPROPS[backprop](cfg)
    params = list(model.parameters())
    total = [torch.zeros_like(p) for p in params]
    state, n_windows = None, 0
    for t in range(0, NUM_STEPS, window):
        steps = min(window, NUM_STEPS - t)
        out = model(x, steps, state)
        grads = torch.autograd.grad(SF.ce_rate_loss()(out.spikes, y), params, allow_unused=True)
        total = [s + g if g is not None else s for s, g in zip(total, grads)]
        state, n_windows = [tuple(v.detach() for v in s) for s in out.state], n_windows + 1
    assert n_windows > 1
    for a, b in zip(accumulated, total):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
    assert sum(g.abs().sum() for g in total) > 0


# ---- the alpha neuron's delay -----------------------------------------------------------------


@pytest.mark.parametrize("channels", [[4], [4, 8]])
def test_an_alpha_window_shorter_than_the_delay_through_the_network_gives_the_first_layer_no_gradient(channels, batch):
    x, y = batch
    layers = len(channels) + 1  # spiking layers
    cfg = TrialConfig.from_dict({
        "dataset": {"name": "synthetic", "val_size": 200},
        # the raw gain (about 9 here) and a low threshold: every layer active within a few steps
        "model": {"neuron": "alpha", "channels": channels, "num_steps": 8, "threshold": 0.25, "gain": "raw"},
    })
    assert NEURON_SPECS["alpha"].min_window(layers) == layers + 1
    torch.manual_seed(0)
    model = build_model(cfg)
    weights = [*(c.weight for c in model.convs), model.fc.weight]
    with torch.no_grad():
        carried = model(x, 6).state  # a later window's start: every layer already active
    for window in range(1, layers + 3):
        # a truncated window from a carried state: its loss sees `window` steps
        out = model(x, window, carried)
        grads = torch.autograd.grad(SF.ce_rate_loss()(out.spikes, y), weights, allow_unused=True)
        for depth, grad in enumerate(grads):
            # layer `depth` reaches the output through (layers - depth) alpha layers, a step each
            reached = window >= layers - depth + 1
            zero = grad is None or not grad.any()
            assert zero != reached, (window, depth)
    # the config refuses exactly the windows below that delay (here tbptt windows)
    for window in range(1, 8):
        data = {**cfg.to_dict(), "training": {"backprop": "tbptt", "tbptt_window": window}}
        if window < layers + 1:
            with pytest.raises(ConfigError, match="training.tbptt_window"):
                TrialConfig.from_dict(data)
        else:
            TrialConfig.from_dict(data)
