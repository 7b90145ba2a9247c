"""Cost metrics (objectives.cost_metrics): counts on hand-built networks where they are known by
arithmetic, their agreement with the trial's own evaluation and between engines, and a
cross-check against NeuroBench's own metrics (skipped with the reason when it is not installed)."""

from __future__ import annotations

import json

import pytest
import torch
from snntorch import spikegen
from torch import nn

from objectives import (
    E_AC_PJ,
    E_MAC_PJ,
    ENCODINGS,
    LOSSES,
    NEURONS,
    ConvSNN,
    CostMetrics,
    Split,
    TrialConfig,
    build_model,
    cost_metrics,
    count_parameters,
    evaluate,
    load,
    train,
)
from objectives import _costs as costs_module
from objectives._costs import accuracy_by_step, decision_step

STEPS = 4
#: the hand-built network: 16x16 images -> conv 3x3 (2 ch) -> 14x14 -> pool 7x7 -> conv 3x3 (3 ch) -> 5x5
#: -> pool 2x2 -> linear 12 -> 4 classes
SHAPE, CHANNELS, KERNEL, CLASSES = (1, 16, 16), (2, 3), 3, 4
POOLED = ((2, 7, 7), (3, 2, 2))
CONV_OUT = (14 * 14, 5 * 5)  # output positions of each convolution, before pooling
STRONG = 5.0  # a constant current far above threshold: the neuron fires as often as its dynamics allow


def hand_built(neuron="leaky", encoding="direct", loss="ce_rate", seed=0):
    """The hand-built network and its run config (weights: PyTorch's initialization under ``seed``), under
    snntorch's arithmetic (the raw gain, threshold 1, each neuron's snntorch reset), for which the counts below
    are worked out."""
    cfg = TrialConfig.from_dict({
        "model": {"neuron": neuron, "encoding": encoding, "channels": list(CHANNELS), "kernel_size": KERNEL,
                  "num_steps": STEPS, "gain": "raw", "threshold": 1.0, "reset_mechanism": None},
        "training": {"loss": loss, "device": "cpu", "seed": seed},
    })
    torch.manual_seed(seed)
    return ConvSNN(cfg.model, SHAPE, CLASSES), cfg


def images(n=6, value=0.0, pixels=()):
    """``n`` identical images, zero but for ``value`` at ``pixels`` (row, column), labelled 1."""
    x = torch.zeros((n, *SHAPE))
    for r, c in pixels:
        x[:, 0, r, c] = value
    return Split(x, torch.ones(n, dtype=torch.long))


def drive(conv: nn.Module, biases):
    """Silence ``conv``'s inputs (zero weights) and give each output channel a constant current."""
    with torch.no_grad():
        conv.weight.zero_()
        conv.bias.copy_(torch.tensor(biases))


#: pixels whose every kernel position lies inside the image: each is read by all 2 x 3 x 3 weights of conv1
INTERIOR = ((2, 2), (5, 9), (8, 8), (13, 2), (13, 13))


@pytest.mark.parametrize(
    "encoding, value, kind",
    [
        ("direct", 0.5, "macs"),  # the image as a real-valued current: multiply-accumulates
        ("rate", 1.0, "acs"),  # Poisson spikes (probability 1 here: a spike at every step): accumulates
        # NeuroBench's rule reads the values (binary_inputs): an image of 0 and 1 is spikes even when fed as current
        ("direct", 1.0, "acs"),
    ],
)
def test_first_layer_counts_macs_for_real_inputs_and_acs_for_spikes(encoding, value, kind):
    model, cfg = hand_built(encoding=encoding)
    with torch.no_grad():
        model.convs[0].weight.fill_(0.1)
    c = cost_metrics(model, cfg, images(value=value, pixels=INTERIOR))
    ops = STEPS * len(INTERIOR) * CHANNELS[0] * KERNEL**2  # nonzero inputs x fan-out, every step
    assert (c.layer_effective_macs[0], c.layer_effective_acs[0]) == ((ops, 0) if kind == "macs" else (0, ops))
    assert c.layer_dense_synops[0] == STEPS * 1 * CHANNELS[0] * KERNEL**2 * CONV_OUT[0]
    assert c.energy_proxy_uj == pytest.approx((c.effective_macs * E_MAC_PJ + c.effective_acs * E_AC_PJ) * 1e-6)
    assert (E_MAC_PJ, E_AC_PJ) == (4.6, 0.9)


def test_a_pixel_on_the_border_is_read_by_fewer_weights():
    """A corner pixel lies under one kernel position of each output channel: its fan-out is 2, not 18."""
    model, cfg = hand_built()
    c = cost_metrics(model, cfg, images(value=0.5, pixels=[(0, 0)]))
    assert c.layer_effective_macs[0] == STEPS * CHANNELS[0]


@pytest.mark.parametrize("neuron", NEURONS)
def test_hidden_layers_count_one_accumulate_per_spike_and_nonzero_fan_out(neuron):
    model, cfg = hand_built(neuron)
    drive(model.convs[0], [STRONG, -STRONG])  # channel 0 fires alike everywhere, channel 1 never
    with torch.no_grad():
        model.convs[1].weight.uniform_(0.5, 1.0)  # every weight nonzero, and enough current to make conv2 fire
        model.fc.weight.uniform_(0.5, 1.0)
        model.fc.weight[:2] = 0  # pruned: the first two classes read nothing, so each input's fan-out is 2
    c = cost_metrics(model, cfg, images())
    spikes = c.layer_spikes_per_sample
    assert spikes[0] > 0 and spikes[1] > 0
    per_position = spikes[0] / (POOLED[0][1] * POOLED[0][2])  # channel 0 fires alike at its 49 positions
    # over all of an input channel's positions, the fan-outs add up to out-channels x kernel x output positions
    assert c.layer_effective_acs[1] == pytest.approx(per_position * CHANNELS[1] * KERNEL**2 * CONV_OUT[1], rel=1e-12)
    assert c.layer_effective_acs[2] == pytest.approx(spikes[1] * 2, rel=1e-12)
    assert c.layer_effective_macs[1:] == (0.0, 0.0)
    assert c.layer_dense_synops[1] == STEPS * CHANNELS[0] * CHANNELS[1] * KERNEL**2 * CONV_OUT[1]
    assert c.layer_dense_synops[2] == STEPS * 12 * CLASSES
    assert c.synops == pytest.approx(c.effective_acs + c.effective_macs)
    assert c.effective_acs == pytest.approx(sum(c.layer_effective_acs))


#: steps out of STEPS at which a neuron fires under a strong constant current. The alpha neuron's two
#: traces cancel at the first step and after every reset (to zero, snntorch's default), so its membrane is zero
#: there: it fires at steps 2, 5, 8, ... and never saturates.
FIRES_UNDER_STRONG_CURRENT = {"leaky": STEPS, "synaptic": STEPS, "lapicque": STEPS, "alpha": 1}


@pytest.mark.parametrize("neuron", NEURONS)
def test_dead_and_saturated_neurons_set_by_biases(neuron):
    model, cfg = hand_built(neuron)
    drive(model.convs[0], [STRONG, -STRONG])
    drive(model.convs[1], [STRONG, -STRONG, -STRONG])
    drive(model.fc, [-STRONG] * CLASSES)
    c = cost_metrics(model, cfg, images())
    fires = FIRES_UNDER_STRONG_CURRENT[neuron]
    saturated = fires / STEPS > 0.9
    assert c.layer_neurons == (98, 12, CLASSES)
    assert c.layer_dead_fraction == (1 / 2, 2 / 3, 1.0)
    assert c.layer_saturated_fraction == (1 / 2 if saturated else 0.0, 1 / 3 if saturated else 0.0, 0.0)
    assert c.layer_spikes_per_sample == (fires * 49, fires * 4, 0.0)
    sparsity = (1 - fires * 49 / (98 * STEPS), 1 - fires * 4 / (12 * STEPS), 1.0)
    assert c.layer_activation_sparsity == pytest.approx(sparsity)
    total = 98 * STEPS + 12 * STEPS + CLASSES * STEPS
    assert c.activation_sparsity == pytest.approx(1 - fires * 53 / total)
    assert c.spikes_per_sample == fires * 53


#: bytes of constants (float32 scalars) each neuron layer holds as buffers
NEURON_BUFFER_BYTES = {"leaky": 2 * 4, "synaptic": 3 * 4, "alpha": 4 * 4, "lapicque": 7 * 4}


@pytest.mark.parametrize("neuron", NEURONS)
def test_footprint_and_connection_sparsity_of_a_pruned_network(neuron):
    model, cfg = hand_built(neuron)
    with torch.no_grad():
        model.convs[0].weight.view(-1)[:5] = 0
        model.convs[1].weight.view(-1)[:20] = 0
        model.fc.weight.view(-1)[:7] = 0
        model.fc.bias.zero_()  # biases are not connections: they never count
    c = cost_metrics(model, cfg, images())
    weights = 2 * 1 * 9 + 3 * 2 * 9 + 12 * 4
    assert c.connection_sparsity == (5 + 20 + 7) / weights
    params = weights + 2 + 3 + 4
    assert params == count_parameters(model)
    assert c.footprint_bytes == 4 * params + 3 * NEURON_BUFFER_BYTES[neuron]


def constructed_output(decided_at, labels, classes=4):
    """Output spikes (and the same tensor as membrane) ``[T, B, classes]`` that name nothing (all zero,
    read as class 0) until sample i's step ``decided_at[i]``, then its label at every step."""
    out = torch.zeros((STEPS, len(labels), classes))
    for i, (t, y) in enumerate(zip(decided_at, labels)):
        out[t - 1 :, i, y] = 1
    return out


@pytest.mark.parametrize("loss", LOSSES)
def test_latency_on_a_constructed_output(loss):
    labels = torch.tensor([1, 2, 3, 1, 2])
    # samples decide at steps 1, 2, 2, 3 and never (STEPS + 1)
    out = constructed_output([1, 2, 2, 3, STEPS + 1], labels)
    acc = (accuracy_by_step(LOSSES[loss], out, labels).double() / len(labels)).tolist()
    assert acc == [1 / 5, 3 / 5, 4 / 5, 4 / 5]
    assert decision_step(acc) == 3


@pytest.mark.parametrize(
    "accuracy, step",
    [([0.5, 0.9, 0.991, 1.0], 3), ([0.2, 0.6, 0.8, 0.8], 3), ([0.0, 0.0], 1), ([0.9, 0.5, 0.9], 1), ([0.7], 1)],
)
def test_decision_step_is_the_first_to_reach_99_percent_of_the_final_accuracy(accuracy, step):
    assert decision_step(accuracy) == step


@pytest.fixture(scope="module")
def trained(request):
    """A tiny trained model (synthetic data, 2 epochs), its config and data."""
    cfg = TrialConfig.from_dict({
        "dataset": {"name": "synthetic", "val_size": 200, "train_subset": 1000},
        "model": {"channels": [4, 8], "num_steps": 5},
        "training": {"epochs": 2, "batch_size": 64, "device": "cpu"},
    })
    data = load(cfg.dataset, torch.device("cpu"))
    return train(cfg, data, keep_weights=True).state_dict, cfg, data


def model_of(trained, **changes):
    state, cfg, data = trained
    cfg = cfg.replace(**changes)
    model = build_model(cfg, data)
    # the snntorch engine's twin neurons take their constants from the config, not from the weights
    missing, _ = model.load_state_dict(state, strict=False)
    assert all(k.startswith("snn_neurons.") for k in missing)
    return model, cfg, data


@pytest.mark.parametrize("loss", LOSSES)
def test_final_accuracy_is_the_trials_test_accuracy(trained, loss):
    model, cfg, data = model_of(trained, **{"training.loss": loss})
    c = cost_metrics(model, cfg, data.test)
    assert c.accuracy == c.accuracy_by_step[-1] == evaluate(model, data.test, cfg)
    assert len(c.accuracy_by_step) == cfg.model.num_steps
    assert c.accuracy_by_step[c.decision_step - 1] >= 0.99 * c.accuracy
    assert all(a < 0.99 * c.accuracy for a in c.accuracy_by_step[: c.decision_step - 1])


@pytest.mark.parametrize("encoding", ["direct", "rate"])
def test_both_engines_report_the_same_costs(trained, encoding):
    fast = cost_metrics(*model_of(trained, **{"model.encoding": encoding})[:2], trained[2].test)
    reference = cost_metrics(
        *model_of(trained, **{"model.encoding": encoding, "training.engine": "snntorch"})[:2], trained[2].test
    )
    assert reference == fast


def test_rate_encoded_costs_are_reproducible_and_leave_the_callers_random_state(trained):
    model, cfg, data = model_of(trained, **{"model.encoding": "rate"})
    before = torch.get_rng_state()
    first = cost_metrics(model, cfg, data.test)
    assert torch.equal(torch.get_rng_state(), before)
    assert cost_metrics(model, cfg, data.test) == first


def test_a_sample_cap_is_part_of_the_result(trained):
    model, cfg, data = model_of(trained)
    capped = cost_metrics(model, cfg, data.test, max_samples=120)
    assert capped.n_samples == 120
    assert capped == cost_metrics(model, cfg, Split(data.test.x[:120], data.test.y[:120]))
    assert cost_metrics(model, cfg, data.test, max_samples=10**6).n_samples == len(data.test)


def test_batches_add_up_to_the_metrics_of_the_whole_split(trained, monkeypatch):
    model, cfg, data = model_of(trained)
    whole = cost_metrics(model, cfg, data.test)
    monkeypatch.setattr(costs_module, "COST_BATCH", 7)  # 300 test images: 42 batches of 7 and one of 6
    assert cost_metrics(model, cfg, data.test) == whole


def test_to_dict_is_json_and_round_trips(trained):
    model, cfg, data = model_of(trained)
    model.train()
    c = cost_metrics(model, cfg, data.test)
    assert model.training  # left as it was
    assert CostMetrics.from_dict(json.loads(json.dumps(c.to_dict()))) == c
    assert c.layers == ("conv1", "conv2", "output")


# --- NeuroBench's own metrics on the same model and batch -----------------------------------------


class SpikesAndMembrane(nn.Module):
    """The output neuron's ``(spikes, *state)`` as the pair NeuroBench's snntorch wrapper unpacks: the
    alpha and synaptic neurons return their synaptic traces too. Neither a connection nor a neuron
    layer, so invisible to the metrics."""

    def forward(self, out):
        return out[0], out[-1]


def neurobench_results(model: ConvSNN, cfg: TrialConfig, split: Split) -> dict:
    """NeuroBench's Benchmark over ``split`` (one batch) with its snntorch wrapper (``SNNTorchModel``)
    on the snntorch twin of ``model``: the snntorch tutorial's ``nn.Sequential`` of the same
    convolutions, pooling and linear layer and the neurons' snntorch classes (``Neuron.to_snntorch``,
    with their state inside, as the wrapper resets it), called once per step on ``[B, T, ...]`` inputs. The rate-encoded
    input is drawn as ``cost_metrics`` draws it (the trial's seed)."""
    from neurobench.benchmarks import Benchmark
    from neurobench.metrics.static import ConnectionSparsity, Footprint
    from neurobench.metrics.workload import (
        ActivationSparsity,
        ActivationSparsityByLayer,
        ClassificationAccuracy,
        SynapticOperations,
    )
    from neurobench.models import SNNTorchModel, TorchModel
    from torch.utils.data import DataLoader, TensorDataset

    last = len(model.neurons) - 1
    snn = [n.to_snntorch(init_hidden=True, output=i == last) for i, n in enumerate(model.neurons)]
    layers = []
    for conv, neuron in zip(model.convs, snn):
        layers += [conv, nn.MaxPool2d(2), neuron]
    net = nn.Sequential(*layers, nn.Flatten(), model.fc, snn[-1], SpikesAndMembrane())
    steps = cfg.model.num_steps
    if cfg.model.encoding == "rate":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.training.seed)
            inputs = spikegen.rate(split.x, num_steps=steps).transpose(0, 1)
    else:
        inputs = split.x.unsqueeze(1).expand(-1, steps, *split.x.shape[1:])
    loader = DataLoader(TensorDataset(inputs, split.y), batch_size=len(split))
    bench = Benchmark(
        SNNTorchModel(net), loader, [], [lambda spikes: spikes.sum(1).argmax(1)],
        [[ConnectionSparsity],
         [ActivationSparsity, ActivationSparsityByLayer, SynapticOperations, ClassificationAccuracy]],
    )
    results = bench.run(quiet=True)
    # the footprint of the network itself: NeuroBench's plain wrapper around the fast-engine model (the
    # snntorch classes hold other constants, e.g. graded_spikes_factor, that the trial's network has not)
    results["Footprint"] = Footprint()(TorchModel(model))
    return results


#: weight gain after training: the alpha and Lapicque neurons learn little in two epochs of this tiny
#: network and leave its later layers silent, which would leave their counts unchecked
GAIN = {"leaky": 1.0, "synaptic": 1.0, "alpha": 4.0, "lapicque": 4.0}


@pytest.mark.parametrize("encoding", ["direct", "rate"])
@pytest.mark.parametrize("neuron", NEURONS)
def test_neurobench_reports_the_same_costs(neuron, encoding):
    pytest.importorskip("neurobench", reason="NeuroBench's cross-check needs it: pip install -e '.[metrics]'")
    cfg = TrialConfig.from_dict({
        "dataset": {"name": "synthetic", "val_size": 200, "train_subset": 1000, "test_subset": 200},
        # snntorch's arithmetic: the twin NeuroBench wraps is made of snntorch's classes
        "model": {"neuron": neuron, "encoding": encoding, "channels": [4, 8], "num_steps": 5, "gain": "raw",
                  "threshold": 1.0},
        "training": {"epochs": 2, "batch_size": 64, "device": "cpu"},
    })
    data = load(cfg.dataset, torch.device("cpu"))
    model = build_model(cfg, data)
    model.load_state_dict(train(cfg, data, keep_weights=True).state_dict)
    with torch.no_grad():
        for layer in (*model.convs, model.fc):
            layer.weight *= GAIN[neuron]
        model.fc.weight[:, :40] = 0  # some pruned connections, which neither may count
    ours = cost_metrics(model, cfg, data.test)
    theirs = neurobench_results(model, cfg, data.test)

    assert all(s > 0 for s in ours.layer_spikes_per_sample), "every layer must fire for the check to mean anything"
    assert ours.footprint_bytes == theirs["Footprint"]
    assert round(ours.connection_sparsity, 4) == theirs["ConnectionSparsity"] > 0
    assert ours.activation_sparsity == pytest.approx(theirs["ActivationSparsity"], rel=1e-12)
    by_layer = list(theirs["ActivationSparsityByLayer"].values())  # keyed by the Sequential's indices, in order
    assert ours.layer_activation_sparsity == pytest.approx(by_layer, rel=1e-12)
    synops = theirs["SynapticOperations"]
    # NeuroBench sums each step's binary-layer outputs in float32: exact to about 1e-7
    assert ours.effective_macs == pytest.approx(synops["Effective_MACs"], rel=1e-6)
    assert ours.effective_acs == pytest.approx(synops["Effective_ACs"], rel=1e-6)
    assert ours.dense_synops == pytest.approx(synops["Dense"], rel=1e-6)
    assert (ours.effective_macs > 0) == (encoding == "direct")
    assert ours.accuracy == pytest.approx(theirs["ClassificationAccuracy"])  # ce_rate: the most spikes


@pytest.mark.parametrize("cap", [0, -3])
def test_no_images_is_refused(cap):
    model, cfg = hand_built()
    with pytest.raises(ValueError, match="at least one image"):
        cost_metrics(model, cfg, images(), max_samples=cap)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_a_gpu_the_costs_are_the_cpus_and_the_random_state_is_left(trained):
    model, cfg, data = model_of(trained)
    on_cpu = cost_metrics(model, cfg, data.test)
    cuda = torch.device("cuda")
    test = Split(data.test.x.to(cuda), data.test.y.to(cuda))
    on_gpu = cost_metrics(model.to(cuda), cfg, test)
    assert (on_gpu.footprint_bytes, on_gpu.connection_sparsity) == (on_cpu.footprint_bytes, on_cpu.connection_sparsity)
    assert on_gpu.layer_dense_synops == on_cpu.layer_dense_synops
    # a membrane within float rounding of the threshold may fire on one device and not on the other
    for name in ("layer_spikes_per_sample", "layer_effective_macs", "layer_effective_acs"):
        assert getattr(on_gpu, name) == pytest.approx(getattr(on_cpu, name), rel=1e-2), name
    before = torch.cuda.get_rng_state(cuda)
    cost_metrics(model, cfg.replace(**{"model.encoding": "rate"}), test)
    assert torch.equal(torch.cuda.get_rng_state(cuda), before)


def test_a_trial_reports_its_costs_from_its_test_pass(tiny):
    cfg = TrialConfig.from_dict(tiny)
    data = load(cfg.dataset)
    result = train(cfg, data, keep_weights=True)
    model = build_model(cfg, data)
    model.load_state_dict(result.state_dict)
    assert result.costs == cost_metrics(model, cfg, data.test)
    assert result.test_acc == result.costs.accuracy == evaluate(model, data.test, cfg)


@pytest.mark.parametrize("encoding", ["direct", "rate"])
def test_every_epoch_counts_its_validation_costs_and_the_trial_keeps_the_best_epochs(tiny, encoding):
    tiny["training"]["epochs"] = 3
    tiny["model"]["encoding"] = encoding
    cfg = TrialConfig.from_dict(tiny)
    data = load(cfg.dataset)
    result = train(cfg, data, keep_weights=True)
    assert [m.val_costs["accuracy"] for m in result.history] == [m.val_acc for m in result.history]
    assert all(m.val_costs["n_samples"] == len(data.val) for m in result.history)
    assert result.history[result.best_epoch - 1].val_costs == result.val_costs.to_dict()
    model = build_model(cfg, data)
    model.load_state_dict(result.state_dict)
    assert result.val_costs == cost_metrics(model, cfg, data.val)
    assert result.val_acc == result.val_costs.accuracy
    if encoding == "direct":  # rate-encoded, evaluate draws other spikes (from the caller's random state)
        assert result.val_acc == evaluate(model, data.val, cfg)


@pytest.mark.parametrize("engine", ["fast", "snntorch"])
@pytest.mark.parametrize("encoding", ["direct", "rate"])
def test_counting_spikes_keeps_no_layer_and_counts_what_recording_keeps(trained, engine, encoding):
    model, cfg, data = model_of(trained, **{"model.encoding": encoding, "training.engine": engine})
    inputs = ENCODINGS[encoding].encode(data.test.x[:50], cfg.model.num_steps)
    static = ENCODINGS[encoding].static
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        counted = model(inputs, cfg.model.num_steps, static=static, count=True)
        recorded = model(inputs, cfg.model.num_steps, static=static, record=True)
    assert counted.trace is None and recorded.counts is None
    assert len(counted.counts) == len(recorded.trace) == len(model.neurons)
    for count, (spikes, _) in zip(counted.counts, recorded.trace):
        assert count.dtype == torch.float64 and torch.equal(count, spikes.sum((0, 1)).double())
    assert torch.equal(counted.spikes, recorded.spikes)
