"""Our neuron layers compute exactly what snntorch's classes compute, and leave no global state;
gain matching settles every neuron's membrane at its constant input."""

from __future__ import annotations

import itertools

import pytest
import torch
from snntorch._neurons.neurons import SpikingNeuron
from support import SNNTORCH

from objectives import GAINS, NEURONS, RESET_MECHANISMS, SURROGATES, ConfigError, TrialConfig, build_model

PARAMS = {"beta": 0.6, "alpha": 0.85}
#: snntorch's arithmetic, as `study/presets/original.yaml` sets it
RAW = SNNTORCH["model"]["gain"]


def make(name, reset, threshold=0.7, gain=RAW, **params):
    cls = NEURONS[name]
    kwargs = {p: params.get(p, PARAMS[p]) for p in cls.spec.params}
    return cls(SURROGATES["fast_sigmoid"].make(), threshold=threshold, reset_mechanism=reset, gain=gain, **kwargs)


# threshold 1 takes a shortcut (the reset is not multiplied by it): it must change no value. Under the
# matched gain the snntorch class is given the driven current (under the raw gain, the input itself).
@pytest.mark.parametrize("gain", GAINS)
@pytest.mark.parametrize("threshold", [0.7, 1.0])
@pytest.mark.parametrize("name, reset", list(itertools.product(NEURONS, RESET_MECHANISMS)))
def test_spikes_and_every_state_variable_equal_snntorch_exactly(name, reset, threshold, gain):
    ours = make(name, reset, threshold, gain)
    theirs = ours.to_snntorch()
    torch.manual_seed(0)
    inputs = torch.rand(40, 16, 32) * 1.5 - 0.2
    if gain == "matched":
        inputs = inputs / ours.input_scale  # the same membranes: resets happen under both gains
    state = ours.init_state(inputs[0])
    their_state = ours.init_state(inputs[0])
    n_spikes = 0
    for x in inputs:
        spk, state = ours(x, state)
        their_spk, *their_state = theirs(ours.drive(x), *their_state)
        assert torch.equal(spk, their_spk)
        for a, b in zip(state, their_state):
            assert torch.equal(a, b)
        n_spikes += int(spk.sum())
    assert n_spikes > 0  # the comparison covered resets, not only silence


@pytest.mark.parametrize("name", NEURONS)
def test_run_over_time_equals_stepping(name):
    neuron = make(name, None)
    current = torch.rand(12, 4, 8)
    spikes, mem, state = neuron.run(current, None, record_mem=True)
    s = neuron.init_state(current[0])
    for t in range(12):
        spk, s = neuron(current[t], s)
        assert torch.equal(spikes[t], spk) and torch.equal(mem[t], s[-1])
    constant, _, _ = neuron.run(current[0], None, num_steps=12)
    assert torch.equal(constant, neuron.run(current[0].expand(12, 4, 8), None)[0])


def test_building_models_does_not_grow_snntorchs_global_neuron_list(tiny):
    before = len(SpikingNeuron.instances)
    for engine in ("fast", "snntorch"):
        tiny["training"]["engine"] = engine
        for _ in range(20):
            build_model(TrialConfig.from_dict(tiny))
    assert len(SpikingNeuron.instances) == before


@pytest.mark.parametrize(
    "neuron, params, field",
    [
        ("alpha", {"alpha": 0.5, "beta": 0.5}, "model.alpha"),
        ("alpha", {"alpha": 0.4, "beta": 0.6}, "model.alpha"),
        ("alpha", {"alpha": 0.9, "beta": 0.0}, "model.beta"),
        ("lapicque", {"beta": 0.3}, "model.beta"),
    ],
)
def test_parameters_a_neuron_cannot_work_with_are_rejected(neuron, params, field):
    with pytest.raises(ConfigError) as err:
        TrialConfig.from_dict({"model": {"neuron": neuron, **params}})
    assert err.value.field == field


def test_lapicque_decay_is_one_minus_log_inverse_beta():
    neuron = NEURONS["lapicque"](SURROGATES["fast_sigmoid"].make(), beta=0.5, threshold=100.0, gain=RAW)
    _, (mem,) = neuron(torch.zeros(1), (torch.ones(1),))
    assert mem.item() == pytest.approx(1 - torch.log(torch.tensor(2.0)).item())


def test_the_raw_gain_drives_with_the_input_itself():
    for name in NEURONS:
        neuron = make(name, None)
        x = torch.rand(3, 4)
        assert neuron.input_scale == 1.0 and neuron.drive(x) is x


# a grid of the decays a search draws, each where the neuron takes it (alpha above beta for the alpha
# neuron, beta above 1/e for lapicque)
DECAYS = [
    (name, a, b)
    for name in NEURONS
    for a in (0.5, 0.8, 0.9, 0.95)
    for b in (0.4, 0.5, 0.7, 0.9)
    if not NEURONS[name].spec.check(alpha=a, beta=b, gain="matched")
]


@pytest.mark.parametrize("name, alpha, beta", DECAYS)
def test_matched_gain_settles_every_neuron_at_its_constant_input(name, alpha, beta):
    # no spike (threshold out of reach, no reset): the membrane's own dynamics
    neuron = make(name, "none", threshold=1e9, gain="matched", alpha=alpha, beta=beta)
    current = torch.tensor([0.3, 1.0, -2.0], dtype=torch.float64)
    with torch.no_grad():
        _, mem, _ = neuron.run(current, None, num_steps=3000, record_mem=True)
    torch.testing.assert_close(mem[-1], current.to(mem.dtype), rtol=1e-4, atol=1e-6)
    raw = make(name, "none", threshold=1e9, alpha=alpha, beta=beta)
    with torch.no_grad():
        _, raw_mem, _ = raw.run(current, None, num_steps=3000, record_mem=True)
    # the raw neuron settles at its DC gain times the input: the gain the match divides by
    gain = NEURONS[name].spec.dc_gain(alpha, beta)
    torch.testing.assert_close(raw_mem[-1], current.to(raw_mem.dtype) * gain, rtol=1e-4, atol=1e-6)


def test_matched_gain_refuses_a_neuron_without_leak():
    with pytest.raises(ConfigError, match="model.beta: got 1.0; model.gain matched needs beta < 1"):
        TrialConfig.from_dict({"model": {"neuron": "leaky", "beta": 1.0}})
    with pytest.raises(ConfigError, match="model.alpha: got 1.0; model.gain matched needs alpha < 1"):
        TrialConfig.from_dict({"model": {"neuron": "synaptic", "alpha": 1.0}})
    # the raw gain runs it (snntorch's arithmetic, an integrator)
    assert TrialConfig.from_dict({"model": {"neuron": "leaky", "beta": 1.0, "gain": "raw"}}).model.beta == 1.0
