"""Our neuron layers compute exactly what snntorch's classes compute, and leave no global state."""

from __future__ import annotations

import itertools

import pytest
import torch
from snntorch._neurons.neurons import SpikingNeuron

from objectives import NEURONS, RESET_MECHANISMS, SURROGATES, ConfigError, TrialConfig, build_model

PARAMS = {"beta": 0.6, "alpha": 0.85}


def make(name, reset, threshold=0.7):
    cls = NEURONS[name]
    kwargs = {p: PARAMS[p] for p in cls.spec.params}
    return cls(SURROGATES["fast_sigmoid"].make(), threshold=threshold, reset_mechanism=reset, **kwargs)


# threshold 1 takes a shortcut (the reset is not multiplied by it): it must change no value
@pytest.mark.parametrize("threshold", [0.7, 1.0])
@pytest.mark.parametrize("name, reset", list(itertools.product(NEURONS, RESET_MECHANISMS)))
def test_spikes_and_every_state_variable_equal_snntorch_exactly(name, reset, threshold):
    ours = make(name, reset, threshold)
    theirs = ours.to_snntorch()
    torch.manual_seed(0)
    inputs = torch.rand(40, 16, 32) * 1.5 - 0.2
    state = ours.init_state(inputs[0])
    their_state = ours.init_state(inputs[0])
    n_spikes = 0
    for x in inputs:
        spk, state = ours(x, state)
        their_spk, *their_state = theirs(x, *their_state)
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
    neuron = NEURONS["lapicque"](SURROGATES["fast_sigmoid"].make(), beta=0.5, threshold=100.0)
    _, (mem,) = neuron(torch.zeros(1), (torch.ones(1),))
    assert mem.item() == pytest.approx(1 - torch.log(torch.tensor(2.0)).item())
