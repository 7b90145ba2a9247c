"""The fused window (`Neuron.run`: one autograd node per layer and window, a hand-written
backward over time) computes what stepping the neuron with autograd computes."""

from __future__ import annotations

import itertools

import pytest
import snntorch.surrogate
import torch
from support import SNNTORCH

from objectives import GAINS, NEURONS, RESET_MECHANISMS, SURROGATES
from objectives._neurons import _base

PARAMS = {"beta": 0.6, "alpha": 0.85}
STEPS = 12
TOL = dict(rtol=0, atol=1e-5)
RAW = SNNTORCH["model"]["gain"]


def make(name, reset, spike_fn=None, threshold=0.7, gain=RAW):
    cls = NEURONS[name]
    spike_fn = spike_fn or SURROGATES["fast_sigmoid"].make()
    return cls(spike_fn, threshold=threshold, reset_mechanism=reset, gain=gain,
               **{p: PARAMS[p] for p in cls.spec.params})


def stepped(neuron, current, state, constant):
    """The reference: `neuron.step` with autograd through every operation."""
    spikes, mems = [], []
    for t in range(STEPS):
        spk, state = neuron(current if constant else current[t], state)
        spikes.append(spk)
        mems.append(state[-1])
    return torch.stack(spikes), torch.stack(mems), state


def fused(neuron, current, state, constant):
    return neuron.run(current, state, STEPS if constant else None, record_mem=True)


def outputs_and_grads(neuron, run, current, init, constant, seed=0):
    """Spikes, membranes, final state, and the gradients of a loss on all three with
    respect to the input and the initial state."""
    current = current.detach().clone().requires_grad_()
    init = tuple(s.detach().clone().requires_grad_() for s in init)
    spikes, mems, final = run(neuron, current, init, constant)
    g = torch.Generator().manual_seed(seed)
    weights = [torch.randn(t.shape, generator=g) * 0.1 for t in (spikes, mems, *final)]
    loss = sum((w * t).sum() for w, t in zip(weights, (spikes, mems, *final)))
    loss.backward()
    grads = [current.grad, *(s.grad for s in init)]
    return spikes.detach(), mems.detach(), [f.detach() for f in final], grads


@pytest.fixture(params=["step by step", "whole window"])
def backward_mode(request, monkeypatch):
    """The window's backward takes the surrogate's derivative step by step (the CPU's way)
    or over the whole window at once (the GPU's way): both must give the same gradients."""
    monkeypatch.setattr(_base, "whole_window", lambda t: request.param == "whole window")
    return request.param


def assert_same_grads(ours, theirs):
    for a, b in zip(ours, theirs):
        # a state variable that only feeds the (detached) reset gets no gradient: None in
        # autograd, None or zeros here
        if a is None or b is None:
            assert (a is None or not a.any()) and (b is None or not b.any())
        else:
            torch.testing.assert_close(a, b, **TOL)


# under the matched gain the input is scaled before the window (its gradient by the same factor, through autograd)
@pytest.mark.parametrize("gain", GAINS)
@pytest.mark.parametrize(
    "name, reset, constant", list(itertools.product(NEURONS, RESET_MECHANISMS, [False, True]))
)
def test_fused_window_equals_stepping(name, reset, constant, backward_mode, gain):
    neuron = make(name, reset, gain=gain)
    g = torch.Generator().manual_seed(1)
    shape = (4, 3, 5, 5)
    current = torch.rand((*shape,) if constant else (STEPS, *shape), generator=g) * 1.2 - 0.1
    current = current / neuron.input_scale  # the same membranes under either gain: resets in both
    init = tuple(torch.rand(shape, generator=g) * 1.2 for _ in neuron.state_names)
    spk_a, mem_a, fin_a, grad_a = outputs_and_grads(neuron, fused, current, init, constant)
    spk_b, mem_b, fin_b, grad_b = outputs_and_grads(neuron, stepped, current, init, constant)
    assert torch.equal(spk_a, spk_b)
    assert 0 < spk_a.sum() < spk_a.numel()  # resets happened, and not everywhere
    torch.testing.assert_close(mem_a, mem_b, **TOL)
    for a, b in zip(fin_a, fin_b):
        torch.testing.assert_close(a, b, **TOL)
    assert grad_a[0].abs().max() > 1e-3  # the comparison is of real gradients
    assert_same_grads(grad_a, grad_b)


@pytest.mark.parametrize("name", NEURONS)
def test_a_spike_function_not_built_on_the_registry_falls_back_to_its_own_backward(name, backward_mode):
    neuron = make(name, None, spike_fn=snntorch.surrogate.fast_sigmoid(slope=25))
    current = torch.rand(STEPS, 8, 6, generator=torch.Generator().manual_seed(2)) * 1.5 - 0.2
    init = neuron.init_state(current[0])
    a = outputs_and_grads(neuron, fused, current, init, False)
    b = outputs_and_grads(neuron, stepped, current, init, False)
    assert torch.equal(a[0], b[0])
    assert_same_grads(a[3], b[3])


@pytest.mark.parametrize("name", NEURONS)
def test_channels_last_input_gives_channels_last_steps(name):
    neuron = make(name, None)
    current = torch.rand(2, 6, 5, 5).contiguous(memory_format=torch.channels_last)
    spikes, mem, state = neuron.run(current.requires_grad_(), None, num_steps=3, record_mem=True)
    for t in range(3):
        assert spikes[t].is_contiguous(memory_format=torch.channels_last)
        assert mem[t].is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("name", NEURONS)
def test_without_autograd_the_window_gives_the_same_values(name):
    neuron = make(name, None)
    current = torch.rand(STEPS, 8, 6) * 1.5
    spikes, mem, state = neuron.run(current.requires_grad_(), None, record_mem=True)
    with torch.no_grad():
        spikes_ng, mem_ng, state_ng = neuron.run(current, None, record_mem=True)
        _, no_mem, _ = neuron.run(current, None)
    assert torch.equal(spikes, spikes_ng) and torch.equal(mem, mem_ng) and no_mem is None
    for a, b in zip(state, state_ng):
        assert torch.equal(a, b)


def stochastic(name="leaky", reset="none"):
    return make(name, reset, spike_fn=SURROGATES["stochastic_spike_operator"].make(mean=0.0, variance=0.2))


@pytest.mark.parametrize("name", NEURONS)
def test_stochastic_surrogate_draws_the_noise_stepping_draws(name):
    # the noise is drawn in the backward pass, one draw per step from the last step to the
    # first, in the order autograd runs the stepped graph: the same seed gives the same gradients
    neuron = stochastic(name, None)
    x = torch.rand(STEPS, 64, 32, generator=torch.Generator().manual_seed(4)) * 1.5
    weights = torch.linspace(0, 1, STEPS)[:, None, None]
    grads = []
    for run in (fused, stepped):
        current = x.clone().requires_grad_()
        spikes, _, _ = run(neuron, current, neuron.init_state(x[0]), False)
        torch.manual_seed(3)
        (spikes * weights).sum().backward()
        grads.append(current.grad)
    torch.testing.assert_close(grads[0], grads[1], **TOL)


def test_stochastic_surrogate_gradient_is_one_above_threshold_and_noise_below():
    neuron = stochastic()
    current = (torch.randn(4000) * 0.5 + 0.7).requires_grad_()
    # two steps from rest without reset: U[1] = (1 + beta) I, so dU[1]/dI = 1.6 (beta 0.6)
    spikes, _, _ = neuron.run(current, None, 2)
    spikes[1].sum().backward()
    above = current * 1.6 > 0.7
    grad = current.grad / 1.6  # dS[1]/dU[1]
    torch.testing.assert_close(grad[above], torch.ones_like(grad[above]), **TOL)  # 1 above threshold
    below = grad[~above]
    assert below.min() >= -0.1 - 1e-6 and below.max() < 0.1 + 1e-6  # (U[-0.5, 0.5) + mean) * variance
    assert below.std() > 0.03  # random, not a constant

    # over a window: seeded, reproducible; another seed, other noise
    def window_grad(seed):
        x = (torch.rand(STEPS, 500) * 0.6).requires_grad_()
        torch.manual_seed(seed)
        neuron.run(x, None)[0].sum().backward()
        return x.grad

    torch.manual_seed(0)
    a = window_grad(1)
    torch.manual_seed(0)
    assert torch.equal(a, window_grad(1))
    torch.manual_seed(0)
    assert not torch.equal(a, window_grad(2))
    assert torch.isfinite(a).all() and a.abs().sum() > 0
