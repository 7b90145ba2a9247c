"""A fused trial array trains each member as the member would train alone: same initial weights,
same batches, same updates (CPU, fp32), and leaves every lone result (TrainResult, weights) intact."""

from __future__ import annotations

import contextlib
import copy
import itertools

import optuna
import pytest
import torch

from objectives import (
    BACKPROPS,
    ENCODINGS,
    GAINS,
    LOSSES,
    NEURONS,
    OPTIMIZERS,
    STEP_EVERY,
    SURROGATE_SPECS,
    SURROGATES,
    ConfigError,
    TrainingDiverged,
    TrialArray,
    TrialConfig,
    _fused,
    _model,
    array_key,
    build_model,
    check_array,
    evaluate,
    load,
    make_optimizer,
    train,
    train_array,
    train_batch,
)
from objectives._fused import FUSED_ENCODINGS, FUSED_OPTIMIZERS, FusedConv, FusedLinear, make_fused_optimizer
from objectives._neurons import _base
from objectives._surrogates import side_by_side

TOL = 1e-5
#: gradients summed in another order (the grouped convolution's): relative to the tensor's largest
GRAD_TOL = 1e-4
BATCHES = 3
#: three members that differ in everything a search draws (alpha > beta: the alpha neuron needs it)
MEMBERS = [
    {"lr": 0.01, "beta": 0.5, "alpha": 0.9, "seed": 0},
    {"lr": 0.003, "beta": 0.7, "alpha": 0.95, "seed": 1},
    {"lr": 0.02, "beta": 0.6, "alpha": 0.8, "seed": 2},
]
#: SGD moves a weight by lr times its gradient, which is small here: larger rates, so that weights move
SGD_MEMBERS = [{**m, "lr": m["lr"] * 1000} for m in MEMBERS]
#: surrogates that draw no random numbers (the stochastic operator's noise and escape noise's spikes are
#: drawn for the whole array at once: the same distribution as alone, not the same numbers)
DETERMINISTIC_SURROGATES = [
    s for s in SURROGATES if s != "stochastic_spike_operator" and not SURROGATE_SPECS[s].stochastic
]
#: surrogates whose shape the normalized scale sets from a width
WIDE_SURROGATES = [s for s in DETERMINISTIC_SURROGATES if SURROGATE_SPECS[s].width is not None]


def configs(tiny, members=MEMBERS, **shared) -> list[TrialConfig]:
    """One config per member: ``tiny`` with the member's values and the ``section__field`` overrides all share.

    Six steps with tbptt windows of 4 and 2 (the remainder is tested too; the alpha neuron needs a
    window of 4 for its three layers to pass a gradient back to the first), and a threshold of 0.02
    that keeps every layer spiking under the matched gain, so that every weight moves in three batches.
    """
    out = []
    for m in members:
        d = copy.deepcopy(tiny)
        d["model"].update(num_steps=6, threshold=0.02)
        d["training"]["tbptt_window"] = 4
        for key, value in shared.items():
            section, name = key.split("__")
            d[section][name] = value
        for key, value in m.items():
            section = "training" if key in ("lr", "seed", "epochs", "early_stopping_patience") else "model"
            d[section][key] = value
        out.append(TrialConfig.from_dict(d))
    return out


def recording(optimizer, params, grads: list):
    """``optimizer`` whose ``step`` first appends a copy of ``params``' gradients to ``grads``."""
    step = optimizer.step

    def record(*args, **kwargs):
        grads.append([p.grad.clone() for p in params])
        return step(*args, **kwargs)

    optimizer.step = record
    return optimizer


def lone_batches(cfg, data, n=BATCHES, grads=None):
    """``n`` batches as ``objectives.train`` starts a run: seeded model and batch order. Initial weights,
    weights and losses; every window's gradients into ``grads``."""
    device = data.train.x.device
    torch.manual_seed(cfg.training.seed)
    model = build_model(cfg, data).to(device)
    initial = copy.deepcopy(model.state_dict())
    optimizer = make_optimizer(cfg, model, device)
    if grads is not None:
        recording(optimizer, list(model.parameters()), grads)
    order = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(cfg.training.seed))
    size, losses = cfg.training.batch_size, []
    for b in range(n):
        idx = order[b * size : (b + 1) * size]
        losses.append(train_batch(model, data.train.x[idx], data.train.y[idx], optimizer, cfg)[0])
    return initial, model.state_dict(), torch.stack(losses)


def array_orders(cfgs, data):
    return torch.stack([torch.randperm(len(data.train), generator=torch.Generator().manual_seed(c.training.seed))
                        for c in cfgs])


def array_batches(array, data, orders, batches):
    """Train ``array`` on ``batches`` (indices into ``orders``' columns, in batch-size steps): each member's losses."""
    size, losses = array.cfgs[0].training.batch_size, []
    for b in batches:
        idx = orders[:, b * size : (b + 1) * size]
        losses.append(array.train_batch(data.train.x[idx], data.train.y[idx])[0])
    return torch.stack(losses, 1)


def max_diff(a: dict, b: dict) -> float:
    assert list(a) == list(b)
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


def least_moved(initial: dict, weights: dict) -> float:
    """The smallest largest change of any weight tensor: > 0 when every layer learned."""
    return min((weights[k] - initial[k]).abs().max().item() for k in weights if not k.startswith("neurons."))


def assert_members_train_as_alone(cfgs, data):
    """After ``BATCHES`` batches each member's weights and losses equal its lone run's within ``TOL``,
    where each lone run moved every weight tensor by far more than that."""
    array = TrialArray(cfgs, data)
    losses = array_batches(array, data, array_orders(cfgs, data), range(BATCHES))
    for k, cfg in enumerate(cfgs):
        initial, weights, lone_losses = lone_batches(cfg, data)
        assert least_moved(initial, weights) > 100 * TOL
        assert max_diff(array.member_state_dict(k), weights) <= TOL, f"member {k}"
        torch.testing.assert_close(losses[k], lone_losses, rtol=0, atol=TOL)


@pytest.fixture(scope="module")
def data():
    return load(TrialConfig.from_dict({"dataset": {"name": "synthetic", "val_size": 200}}).dataset)


# ----------------------------------------------------------------------------- one batch after another


#: every neuron and backprop method the config accepts for ``configs``' windows (the alpha neuron answers an
#: input a step late, so a one-step rtrl window gives its first layers no gradient: the config refuses it)
METHODS = [(n, b) for n, b in itertools.product(NEURONS, BACKPROPS) if (n, b) != ("alpha", "rtrl")]


@pytest.mark.parametrize("step_every", STEP_EVERY)
@pytest.mark.parametrize("neuron, backprop", METHODS)
def test_members_with_their_own_lr_beta_alpha_and_seed_train_as_alone(tiny, data, neuron, backprop, step_every):
    cfgs = configs(tiny, model__neuron=neuron, training__backprop=backprop, training__step_every=step_every)
    assert_members_train_as_alone(cfgs, data)


@pytest.mark.parametrize("gain", GAINS)
def test_members_under_either_gain_train_as_alone(tiny, data, gain):
    # matched: each member's input scale (1 - beta for the leaky neuron) is its own
    assert_members_train_as_alone(configs(tiny, model__gain=gain), data)


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_every_optimizer_steps_each_member_with_its_own_learning_rate(tiny, data, optimizer):
    members = SGD_MEMBERS if optimizer == "sgd" else MEMBERS
    assert_members_train_as_alone(configs(tiny, members, training__optimizer=optimizer), data)


@pytest.mark.parametrize("loss", LOSSES)
def test_every_loss_gives_each_member_its_own_gradient(tiny, data, loss):
    assert_members_train_as_alone(configs(tiny, training__loss=loss, training__backprop="tbptt"), data)


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_every_encoding_gives_each_member_its_own_input(tiny, data, encoding):
    # rate encoding: each member's Poisson spikes are the ones its lone run draws
    assert_members_train_as_alone(configs(tiny, model__encoding=encoding, model__neuron="synaptic"), data)


@pytest.mark.parametrize("surrogate", DETERMINISTIC_SURROGATES)
def test_members_may_differ_in_threshold_and_raw_surrogate_shape(tiny, data, surrogate):
    defaults = SURROGATES[surrogate].params
    members = [{**m, "threshold": t, "surrogate_args": {p: v * scale for p, v in defaults.items()}}
               for m, t, scale in zip(MEMBERS, (0.02, 0.015, 0.025), (1.0, 0.5, 1.5))]
    cfgs = configs(tiny, members, model__surrogate=surrogate, model__neuron="alpha", model__surrogate_scale="raw")
    assert_members_train_as_alone(cfgs, data)


@pytest.mark.parametrize("surrogate", WIDE_SURROGATES)
def test_members_may_differ_in_normalized_surrogate_width(tiny, data, surrogate):
    members = [{**m, "surrogate_width": w} for m, w in zip(MEMBERS, (0.5, 0.25, 1.0))]
    assert_members_train_as_alone(configs(tiny, members, model__surrogate=surrogate), data)


@pytest.mark.parametrize("surrogate", DETERMINISTIC_SURROGATES)
def test_members_may_differ_in_the_kind_of_surrogate_whose_forward_pass_is_the_step(tiny, data, surrogate):
    # a grid over surrogates: one array per neuron and backprop method
    kinds = ("atan", surrogate, "triangular")
    members = [{**m, "surrogate": kind} for m, kind in zip(MEMBERS, kinds)]
    cfgs = configs(tiny, members)
    assert len({array_key(c) for c in cfgs}) == 1
    assert_members_train_as_alone(cfgs, data)


@pytest.mark.parametrize("drawing", [s for s in SURROGATES if SURROGATE_SPECS[s].stochastic])
def test_a_surrogate_that_draws_its_spikes_shares_no_array_with_one_whose_forward_is_the_step(tiny, drawing):
    first, second = configs(tiny, MEMBERS[:2])
    other = second.replace(**{"model.surrogate": drawing})
    assert array_key(first) != array_key(other)
    with pytest.raises(ConfigError, match=rf"model\.surrogate: got '{drawing}'; a surrogate whose forward pass draws"):
        check_array([first, other])


@pytest.mark.parametrize("surrogate", [s for s in SURROGATES if s != "stochastic_spike_operator"])
def test_side_by_side_surrogates_give_each_block_its_own_derivative_and_probability(surrogate):
    # the stochastic operator's derivative is a random draw: nothing to compare it with
    fns = [SURROGATES[surrogate].build("normalized", w) for w in (0.25, 0.5, 1.0)]
    fused = side_by_side(fns, -3)
    x = torch.randn(2, 3 * 4, 5, 5, generator=torch.Generator().manual_seed(0))
    blocks = x.chunk(3, -3)
    assert torch.equal(fused.derivative(x), torch.cat([f.derivative(b) for f, b in zip(fns, blocks)], -3))
    assert (getattr(fused, "probability", None) is None) is (not SURROGATE_SPECS[surrogate].stochastic)
    if SURROGATE_SPECS[surrogate].stochastic:
        assert torch.equal(fused.probability(x), torch.cat([f.probability(b) for f, b in zip(fns, blocks)], -3))


def test_the_registries_of_optimizers_and_encodings_are_covered():
    assert set(FUSED_OPTIMIZERS) == set(OPTIMIZERS)
    assert set(FUSED_ENCODINGS) == set(ENCODINGS)


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_a_fused_optimizer_step_is_torch_optims_step_for_each_member(optimizer):
    g = torch.Generator().manual_seed(0)
    lrs = [0.01, 0.3, 1e-4]
    params = [torch.randn(3, 5, 4, generator=g), torch.randn(3, 7, generator=g)]
    fused = [p.clone().requires_grad_() for p in params]
    alone = [[p[k].clone().requires_grad_() for p in params] for k in range(3)]
    fused_opt = make_fused_optimizer(optimizer, fused, torch.tensor(lrs, dtype=torch.float64))
    lone_opts = [OPTIMIZERS[optimizer](alone[k], lr) for k, lr in enumerate(lrs)]
    for _ in range(4):
        grads = [torch.randn(p.shape, generator=g) * 1e-3 for p in params]
        for p, grad in zip(fused, grads):
            p.grad = grad.clone()
        fused_opt.step()
        for k, opt in enumerate(lone_opts):
            for p, grad in zip(alone[k], grads):
                p.grad = grad[k].clone()
            opt.step()
    for k in range(3):
        for p, q in zip(fused, alone[k]):
            assert torch.equal(p[k], q), f"member {k}"


@pytest.fixture
def accelerator_path(monkeypatch):
    """The GPU's way on the CPU: each window's work at once over all its steps, lone and fused, and
    the array's convolutions and linear layer as one grouped convolution and one batched product."""
    for module in (_base, _model, _fused):
        monkeypatch.setattr(module, "whole_window", lambda t: True)


def assert_gradients_as_alone(cfgs, data):
    """Every window's gradients of each member equal its lone run's to float rounding (three batches),
    and every weight tensor has a gradient in some window."""
    array = TrialArray(cfgs, data)
    assert all(layer.grouped is None for layer in [*array.model.convs, array.model.fc])  # the device decides
    fused_grads = []
    recording(array.optimizer, array.optimizer.params, fused_grads)
    array_batches(array, data, array_orders(cfgs, data), range(BATCHES))
    for k, cfg in enumerate(cfgs):
        lone_grads = []
        lone_batches(cfg, data, grads=lone_grads)
        for window, (fused, lone) in enumerate(zip(fused_grads, lone_grads, strict=True)):
            for g, expected in zip(fused, lone, strict=True):
                atol = GRAD_TOL * expected.abs().max().item()
                torch.testing.assert_close(g[k], expected, rtol=0, atol=atol, msg=f"member {k} window {window}")
        reached = [any(window[i].abs().max() > 0 for window in lone_grads) for i in range(len(lone_grads[0]))]
        assert all(reached)


@pytest.mark.parametrize("neuron, backprop", METHODS)
def test_the_accelerator_path_computes_each_members_gradients(tiny, data, neuron, backprop, accelerator_path):
    # The grouped convolution sums its weight gradient in another order than the lone convolution, so the
    # accelerator path is the lone computation to float rounding, window after window (SGD: each step is
    # lr * gradient, and these small rates keep the runs on the same weights; Adam-type optimizers divide
    # by sqrt(v) + eps and magnify last-bit differences of near-zero gradients into diverging runs).
    cfgs = configs(tiny, model__neuron=neuron, training__backprop=backprop, training__optimizer="sgd")
    assert_gradients_as_alone(cfgs, data)


def layer_outputs_and_grads(layer, x, grad_out):
    x = x.detach().clone().requires_grad_()
    out = layer(x)
    return (out, *torch.autograd.grad(out, [x, *layer.parameters()], grad_out))


def lone_layers_outputs_and_grads(layers, x, grad_out):
    """What each member's own layer gives on its block of ``x`` (channels for 4-d, features for 3-d)."""
    dim = 1 if x.dim() == 4 else -1
    x = x.detach().clone().requires_grad_()
    blocks = x.chunk(len(layers), dim)
    outs = [layer(b.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else b.contiguous())
            for layer, b in zip(layers, blocks)]
    out = torch.cat(outs, dim)
    grads = torch.autograd.grad(out, [x, *(p for layer in layers for p in layer.parameters())], grad_out)
    weights = torch.stack(grads[1::2])
    biases = torch.stack(grads[2::2])
    return out, grads[0], weights, biases


def member_layers(kind, members=4):
    torch.manual_seed(0)
    return [torch.nn.Conv2d(12, 64, 5) if kind == "conv" else torch.nn.Linear(1024, 10) for _ in range(members)]


def layer_input(kind, members=4):
    g = torch.Generator().manual_seed(1)
    if kind == "conv":  # the original code's second convolution on a batch of 128 (spikes, channels-last)
        x = (torch.rand(128, members * 12, 12, 12, generator=g) < 0.3).float()
        return x.contiguous(memory_format=torch.channels_last), torch.randn(128, members * 64, 8, 8, generator=g)
    # the linear layer on 25 steps of a batch of 128
    spikes = (torch.rand(25, 128, members * 1024, generator=g) < 0.3).float()
    return spikes, torch.randn(25, 128, members * 10, generator=g)


@pytest.mark.parametrize("kind", ["conv", "linear"])
def test_on_a_cpu_each_member_is_computed_by_its_own_layer_to_the_bit(kind):
    lone = member_layers(kind)
    fused = (FusedConv if kind == "conv" else FusedLinear)(lone)
    x, grad_out = layer_input(kind)
    for a, b in zip(layer_outputs_and_grads(fused, x, grad_out), lone_layers_outputs_and_grads(lone, x, grad_out)):
        assert torch.equal(a, b)


@pytest.mark.parametrize("kind", ["conv", "linear"])
def test_the_accelerators_batched_layer_computes_each_members_layer(kind):
    lone = member_layers(kind)
    x, grad_out = layer_input(kind)
    grouped = layer_outputs_and_grads((FusedConv if kind == "conv" else FusedLinear)(lone, grouped=True), x, grad_out)
    for a, b in zip(grouped, lone_layers_outputs_and_grads(lone, x, grad_out)):
        torch.testing.assert_close(a, b, rtol=0, atol=GRAD_TOL * b.abs().max().item())


# ----------------------------------------------------------------------------- stopping and compaction


def test_a_stopped_member_takes_no_more_steps_and_the_others_go_on(tiny, data):
    cfgs = configs(tiny)
    array, orders = TrialArray(cfgs, data), array_orders(cfgs, data)
    array_batches(array, data, orders, [0])
    frozen = array.member_state_dict(1)
    array.stop(1)
    array_batches(array, data, orders, [1, 2])
    assert max_diff(array.member_state_dict(1), frozen) == 0
    for k in (0, 2):
        assert max_diff(array.member_state_dict(k), lone_batches(cfgs[k], data)[1]) <= TOL


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_compaction_keeps_the_other_members_bit_for_bit(tiny, data, optimizer):
    cfgs = configs(tiny, training__optimizer=optimizer)
    orders = array_orders(cfgs, data)
    compacted, stopped = TrialArray(cfgs, data), TrialArray(cfgs, data)
    for array in (compacted, stopped):
        array_batches(array, data, orders, [0, 1])
    before = [compacted.member_state_dict(k) for k in (0, 2)]
    state_before = [{name: v[[0, 2]].clone() for name, v in s.items()} for s in compacted.optimizer.state]
    compacted.keep([0, 2])
    assert compacted.members == 2 and compacted.cfgs == [cfgs[0], cfgs[2]]
    for slot, weights in enumerate(before):
        assert all(torch.equal(a, b) for a, b in zip(compacted.member_state_dict(slot).values(), weights.values()))
    for s, expected in zip(compacted.optimizer.state, state_before):
        assert s.keys() == expected.keys() and all(torch.equal(s[name], expected[name]) for name in s)
    # and it trains on as the uncompacted array with the member stopped does
    stopped.stop(1)
    array_batches(compacted, data, orders[[0, 2]], [2])
    array_batches(stopped, data, orders, [2])
    for slot, k in enumerate((0, 2)):
        assert all(torch.equal(a, b) for a, b in
                   zip(compacted.member_state_dict(slot).values(), stopped.member_state_dict(k).values()))


# ----------------------------------------------------------------------------- whole runs


def assert_same_result(got, expected):
    """An array member's TrainResult equals its lone run's (wall-clock fields aside)."""
    assert (got.best_epoch, got.epochs, got.stopped_early, got.n_params) == (
        expected.best_epoch, expected.epochs, expected.stopped_early, expected.n_params)
    assert got.val_acc == pytest.approx(expected.val_acc, abs=TOL)
    assert got.test_acc == pytest.approx(expected.test_acc, abs=TOL)
    assert got.spike_rates == pytest.approx(expected.spike_rates, abs=TOL)
    for a, b in zip(got.history, expected.history, strict=True):
        assert a.epoch == b.epoch
        for name in ("train_loss", "train_acc", "val_acc"):
            assert getattr(a, name) == pytest.approx(getattr(b, name), abs=TOL), (a.epoch, name)
        assert a.spike_rates == pytest.approx(b.spike_rates, abs=TOL)
    assert max_diff(got.state_dict, expected.state_dict) <= TOL
    # what the weights cost, measured on the member's own network: the lone run's figures to the bit
    assert got.costs == expected.costs and got.val_costs == expected.val_costs
    assert [a.val_costs for a in got.history] == [b.val_costs for b in expected.history]


def test_each_member_gets_the_train_result_of_its_lone_run(tiny, data):
    # epochs, patience and learning rate per member: one learns nothing and stops early after its patience
    members = [
        {**MEMBERS[0], "epochs": 3},
        {**MEMBERS[1], "epochs": 2},
        {**MEMBERS[2], "lr": 1e-12, "epochs": 4, "early_stopping_patience": 1},
    ]
    cfgs = configs(tiny, members)
    seen = [[], [], []]
    results = train_array(cfgs, data, on_epoch=[s.append for s in seen], keep_weights=True)
    for k, cfg in enumerate(cfgs):
        lone_seen = []
        expected = train(cfg, data, on_epoch=lone_seen.append, keep_weights=True)
        assert_same_result(results[k], expected)
        assert [m.epoch for m in seen[k]] == [m.epoch for m in lone_seen] == [m.epoch for m in expected.history]
    assert [r.epochs for r in results] == [3, 2, 2] and results[2].stopped_early


def test_a_member_pruned_after_epoch_1_leaves_and_the_others_go_on_unchanged(tiny, data):
    tiny["training"]["epochs"] = 3
    cfgs = configs(tiny)

    def prune(m):
        raise optuna.TrialPruned(f"pruned at epoch {m.epoch}")

    seen = []
    callbacks = [None, lambda m: (seen.append(m), prune(m)), None]
    results = train_array(cfgs, data, on_epoch=callbacks, keep_weights=True)

    lone_seen = []
    with pytest.raises(optuna.TrialPruned):
        train(cfgs[1], data, on_epoch=lambda m: (lone_seen.append(m), prune(m)))
    assert isinstance(results[1], optuna.TrialPruned) and str(results[1]) == "pruned at epoch 1"
    assert [m.epoch for m in seen] == [m.epoch for m in lone_seen] == [1]
    assert seen[0].val_acc == pytest.approx(lone_seen[0].val_acc, abs=TOL)
    assert seen[0].train_loss == pytest.approx(lone_seen[0].train_loss, abs=TOL)
    for k in (0, 2):
        assert_same_result(results[k], train(cfgs[k], data, keep_weights=True))


def test_a_diverging_member_fails_alone(tiny, data):
    members = [{**MEMBERS[0], "lr": 0.05}, {**MEMBERS[1], "lr": 1e38}, {**MEMBERS[2], "lr": 0.02}]
    cfgs = configs(tiny, members, training__optimizer="sgd", training__loss="ce_max_membrane")
    results = train_array(cfgs, data, keep_weights=True)
    assert isinstance(results[1], TrainingDiverged) and "training.lr" in str(results[1])
    with pytest.raises(TrainingDiverged):
        train(cfgs[1], data)
    for k in (0, 2):
        assert_same_result(results[k], train(cfgs[k], data, keep_weights=True))


def test_an_interrupt_stops_the_whole_array(tiny, data):
    def interrupt(m):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_array(configs(tiny), data, on_epoch=[None, interrupt, None])


def test_a_members_weights_load_into_its_own_network(tiny, data):
    cfgs = configs(tiny)
    result = train_array(cfgs, data, keep_weights=True)[2]
    model = build_model(cfgs[2], data)
    assert list(result.state_dict) == list(model.state_dict())
    model.load_state_dict(result.state_dict)
    assert evaluate(model, data.test, cfgs[2]) == pytest.approx(result.test_acc, abs=TOL)


# ----------------------------------------------------------------------------- what members share


def test_members_share_the_architecture_and_differ_in_what_a_search_draws(tiny):
    drawn = zip(MEMBERS, (1.0, 0.5, 2.0), (0.25, 0.5, 1.0), (2, 3, 4), (1, 2, 3))
    cfgs = configs(tiny, [{**m, "threshold": t, "surrogate_width": w, "epochs": e, "early_stopping_patience": p}
                          for m, t, w, e, p in drawn])
    check_array(cfgs)
    assert len({array_key(c) for c in cfgs}) == 1


@pytest.mark.parametrize("field, value", [
    ("model.neuron", "synaptic"),
    ("model.gain", "raw"),
    ("model.surrogate_scale", "raw"),
    ("model.channels", [4, 6]),
    ("model.num_steps", 7),
    ("model.encoding", "rate"),
    ("training.backprop", "rtrl"),
    ("training.tbptt_window", 3),
    ("training.step_every", "window"),
    ("training.batch_size", 32),
    ("training.optimizer", "adam"),
    ("training.loss", "ce_count"),
    ("dataset.val_size", 100),
])
def test_members_that_differ_in_architecture_are_refused(tiny, field, value):
    first, second = configs(tiny, MEMBERS[:2])
    other = second.replace(**{field: value})
    assert array_key(first) != array_key(other)
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        check_array([first, other])


def test_the_snntorch_engine_is_refused(tiny):
    tiny["training"]["engine"] = "snntorch"
    with pytest.raises(ConfigError, match="training.engine"):
        check_array(configs(tiny))


# ----------------------------------------------------------------------------- on a GPU (skipped without one)


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@contextlib.contextmanager
def full_fp32():
    """No TF32 in cuDNN convolutions and CUDA matrix products: the lone and the grouped convolutions
    differ in shape, and TF32's rounding would differ between them far above the tolerance."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


@needs_cuda
@pytest.mark.parametrize("neuron, backprop", METHODS)
def test_on_a_gpu_each_member_gets_its_lone_gradients(tiny, neuron, backprop):
    # the lone runs eager (no CUDA graph: its optimizer is the capturable one), like the array
    cfgs = configs(tiny, model__neuron=neuron, training__backprop=backprop, training__optimizer="sgd",
                   training__device="cuda", training__cuda_graph=False)
    with full_fp32():
        assert_gradients_as_alone(cfgs, load(cfgs[0].dataset, "cuda"))


@needs_cuda
def test_on_a_gpu_every_member_gets_a_result_whose_weights_load_into_its_own_network(tiny):
    cfgs = configs(tiny, training__device="cuda")
    data = load(cfgs[0].dataset, "cuda")
    results = train_array(cfgs, data, keep_weights=True)
    for cfg, result in zip(cfgs, results, strict=True):
        assert result.epochs == cfg.training.epochs and result.val_acc > 0.3
        model = build_model(cfg, data).to("cuda")
        model.load_state_dict(result.state_dict)
        # another kernel than the array's grouped one: a spike may flip, an image's prediction with it
        assert evaluate(model, data.test, cfg) == pytest.approx(result.test_acc, abs=0.01)
