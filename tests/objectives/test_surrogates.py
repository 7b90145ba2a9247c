"""Every surrogate is what its name says (SpikingJelly's surrogate contract, for our registry).

Forward: the Heaviside step (escape noise: a spike drawn with the escape function's
probability). Backward: the derivative of the smooth function the docstring names,
checked against central finite differences on [-10, 10]. Gradients are finite
everywhere there, and a few steps of training lower the loss. Under the normalized
scale every surrogate with a width has derivative 1 at the threshold and area twice
the width under it.
"""

from __future__ import annotations

import math

import pytest
import snntorch.surrogate as sg
import torch

from objectives import (
    NEURONS,
    OPTIMIZERS,
    SURROGATE_SCALES,
    SURROGATE_SPECS,
    SURROGATES,
    TrialConfig,
    build_model,
    load,
    train_batch,
)

POINTS = torch.linspace(-10, 10, 4001, dtype=torch.float64)
H = 1e-6
DETERMINISTIC = [n for n in SURROGATES if not SURROGATE_SPECS[n].stochastic]
STOCHASTIC = [n for n in SURROGATES if SURROGATE_SPECS[n].stochastic]
NORMALIZED = [n for n in SURROGATES if SURROGATE_SPECS[n].width is not None]


def backward_of(spike_fn, x):
    x = x.clone().requires_grad_(True)
    spike_fn(x).sum().backward()
    return x.grad


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_forward_is_the_heaviside_step(name):
    x = POINTS.to(torch.float32)
    assert torch.equal(SURROGATES[name].make()(x), (x > 0).float())
    assert torch.equal(SURROGATES[name].normalized(0.5)(x), (x > 0).float())


@pytest.mark.parametrize("scale", SURROGATE_SCALES)
@pytest.mark.parametrize("name", STOCHASTIC)
def test_a_stochastic_forward_spikes_with_the_escape_probability(name, scale):
    surrogate = SURROGATES[name]
    spike_fn = surrogate.build(scale, 0.5)
    # membranes where the default noise draws both ways (p = sigmoid(4 u)), below and above the threshold
    x = 2 * surrogate.params["noise"] * torch.tensor([-2.0, -0.5, -0.1, 0.0, 0.2, 1.0, 3.0])
    n = 40000
    torch.manual_seed(0)
    spikes = spike_fn(x.expand(n, -1))
    assert set(spikes.unique().tolist()) <= {0.0, 1.0}
    # the frequency of spikes is the escape function sigmoid(2 x / noise), within 5 binomial standard deviations
    p = spike_fn.probability(x)
    assert ((p > 0) & (p < 1)).all() and (p.diff() > 0).all() and p[3] == 0.5
    torch.testing.assert_close(p, torch.sigmoid(2 * x / surrogate.params["noise"]))
    torch.testing.assert_close(spikes.mean(0), p, rtol=0, atol=5 * math.sqrt(0.25 / n))
    # at the matched noise (Gygax & Zenke) the probability is the primitive the backward differentiates
    slope = surrogate.params["slope"] if scale == "raw" else SURROGATE_SPECS[name].width(0.5)["slope"]
    matched = surrogate.build(scale, 0.5, noise=2 / slope)
    torch.testing.assert_close(matched.probability(x), surrogate.primitive(x, slope=slope))
    # seeded: the same draws again; another seed, others
    torch.manual_seed(0)
    assert torch.equal(spike_fn(x.expand(n, -1)), spikes)
    assert not torch.equal(spike_fn(x.expand(n, -1)), spikes)


@pytest.mark.parametrize("name", STOCHASTIC)
def test_a_neuron_with_a_stochastic_surrogate_resets_where_its_drawn_spikes_are(name):
    # leaky, zero reset, a constant current over a window (fused, no autograd): where a spike was drawn the
    # next membrane restarts from zero (it is the input alone), elsewhere it integrates (beta U + I)
    layer = NEURONS["leaky"](SURROGATES[name].normalized(0.5), beta=0.5, reset_mechanism="zero", gain="raw")
    torch.manual_seed(0)
    current = torch.linspace(0.2, 0.8, 20000)  # membranes from 0.4 to 1.6: below and above threshold
    with torch.no_grad():
        spikes, mem, _ = layer.run(current, None, num_steps=8, record_mem=True)
    above = mem > layer.threshold
    assert spikes[~above].sum() > 0 and (1 - spikes[above]).sum() > 0  # drawn: spikes below, silence above
    spiked = spikes[:-1] == 1
    expected = torch.where(spiked, current, 0.5 * mem[:-1] + current)
    torch.testing.assert_close(mem[1:], expected)


WIDTHS = [0.1, 0.5, 1.0, 2.0]
#: the fast sigmoid's slope at the width, cut below U_thr - B: its area is the fast sigmoid's less the cut tail
CUT = ["sparse_fast_sigmoid"]


def area(derivative, width: float) -> float:
    """The area under ``derivative`` on [-10^5 width, 10^5 width], on a grid fine near the threshold (the heavy
    tails of the fast sigmoid and atan leave some 2e-5 of it outside)."""
    x = width * torch.sinh(torch.linspace(-math.asinh(1e5), math.asinh(1e5), 400001, dtype=torch.float64))
    return torch.trapezoid(derivative(x), x).item()


@pytest.mark.parametrize(
    "name, width",
    # where the spec allows the width with the default parameters (sparse_fast_sigmoid needs B > width)
    [(n, w) for n in NORMALIZED for w in WIDTHS if SURROGATE_SPECS[n].rule(SURROGATE_SPECS[n].free("normalized"), w)
     is None],
)
def test_the_normalized_family_has_peak_one_at_threshold_and_area_twice_the_width(name, width):
    spike_fn = SURROGATES[name].normalized(width)
    x = torch.linspace(-4 * width, 4 * width, 8001, dtype=torch.float64)
    grad = backward_of(spike_fn, x)
    at_zero = backward_of(spike_fn, torch.zeros(1, dtype=torch.float64))
    assert at_zero.item() == pytest.approx(1.0, abs=1e-12) and grad.max().item() == pytest.approx(1.0, abs=1e-12)
    if name in CUT:
        # the fast sigmoid's derivative above U_thr - B, nothing below
        B = SURROGATE_SPECS[name].params["B"]
        fast = backward_of(SURROGATES["fast_sigmoid"].normalized(width), x)
        torch.testing.assert_close(grad, torch.where(x > -B, fast, 0.0))
    else:
        # as much gradient as a box of height 1 and half-width `width` (the clipped straight-through estimator)
        assert area(spike_fn.derivative, width) == pytest.approx(2 * width, rel=1e-4)


@pytest.mark.parametrize("name", [n for n in SURROGATES if n not in NORMALIZED])
def test_a_surrogate_without_a_width_is_the_same_under_either_scale(name):
    x = POINTS.to(torch.float32)
    torch.manual_seed(0)
    a = backward_of(SURROGATES[name].make(), x)
    torch.manual_seed(0)
    b = backward_of(SURROGATES[name].normalized(0.3), x)
    assert torch.equal(a, b)


@pytest.mark.parametrize("name", NORMALIZED)
def test_a_normalized_surrogate_is_its_raw_shape_at_the_width_s_parameters_over_its_peak(name):
    spec = SURROGATE_SPECS[name]
    params = {**spec.params, **spec.width(0.7)}
    x = POINTS.to(torch.float32)
    torch.manual_seed(0)
    raw = backward_of(SURROGATES[name].make(**params), x)
    torch.manual_seed(0)
    normalized = backward_of(SURROGATES[name].normalized(0.7), x)
    torch.testing.assert_close(normalized, raw / spec.peak(**params))


def test_the_clipped_straight_through_estimator_is_one_within_its_window():
    x = torch.tensor([-1.5, -1.0, -0.3, 0.0, 0.7, 1.0, 1.01, 4.0])
    assert backward_of(SURROGATES["clipped_straight_through"].make(), x).tolist() == [0, 1, 1, 1, 1, 1, 0, 0]
    assert backward_of(SURROGATES["clipped_straight_through"].make(window=0.5), x).tolist() == [0, 0, 1, 1, 0, 0, 0, 0]
    assert backward_of(SURROGATES["straight_through_estimator"].make(), x).tolist() == [1] * 8  # the identity


def test_stochastic_spike_operator_is_one_above_and_uniform_noise_below():
    spec = SURROGATES["stochastic_spike_operator"]
    torch.manual_seed(0)
    x = torch.cat([torch.full((20000,), -2.0), torch.full((20000,), 2.0)])
    grad = backward_of(spec.make(mean=0.1, variance=0.4), x)
    below, above = grad[:20000], grad[20000:]
    assert torch.equal(above, torch.ones_like(above))
    # (U[-0.5, 0.5) + mean) * variance: range [-0.16, 0.24), mean 0.04
    assert below.min() >= (-0.5 + 0.1) * 0.4 and below.max() < (0.5 + 0.1) * 0.4
    assert below.mean().item() == pytest.approx(0.1 * 0.4, abs=0.005)


@pytest.mark.parametrize("scale", SURROGATE_SCALES)
@pytest.mark.parametrize("name", SURROGATES)
def test_a_few_steps_lower_the_loss(name, tiny, scale):
    # the original code's layer widths on standardized pixels: the layers start active. From a silent
    # start (the tiny net on [0, 1] pixels) a surrogate whose gradient vanishes far below
    # threshold (sigmoid at slope 25: 25 e^-25 one unit below) has nothing to start from.
    tiny["model"].update(surrogate=name, channels=[12, 64], num_steps=10, surrogate_scale=scale)
    tiny["dataset"]["normalize"] = True
    cfg = TrialConfig.from_dict(tiny)
    data = load(cfg.dataset)
    torch.manual_seed(0)
    model = build_model(cfg, data)
    optimizer = OPTIMIZERS["adamax"](model.parameters(), 0.01)
    x, y = data.train.x[:64], data.train.y[:64]
    first = train_batch(model, x, y, optimizer, cfg)[0].item()
    for _ in range(20):
        last = train_batch(model, x, y, optimizer, cfg)[0].item()
    assert last < first


def test_unknown_surrogate_parameter_names_what_is_allowed():
    with pytest.raises(ValueError, match="allowed: slope"):
        SURROGATES["fast_sigmoid"].make(alpha=2)


# Where snntorch 1.0 disagrees with its own docstring, the registry carries the fix. These tests
# pin down the difference, so that an snntorch release that fixes it is noticed.


def test_snntorch_sigmoid_gives_nan_far_below_threshold_ours_does_not():
    x = torch.tensor([-10.0, -4.0, 0.0])
    assert torch.isnan(backward_of(sg.sigmoid(slope=25), x)[:2]).all()
    assert torch.isfinite(backward_of(SURROGATES["sigmoid"].make(slope=25), x)).all()


def test_snntorch_triangular_has_the_wrong_sign_above_threshold_ours_is_a_triangle():
    x = torch.tensor([-2.0, -0.5, 0.0, 0.5, 2.0])
    theirs = backward_of(sg.triangular(), x)
    assert (theirs[x >= 0] < 0).all() and theirs[0] == theirs[1]  # negative, and flat instead of a triangle
    ours = backward_of(SURROGATES["triangular"].make(alpha=1.0), x)
    assert ours.tolist() == [0.0, 0.5, 1.0, 0.5, 0.0]


def test_snntorch_spike_rate_escape_peaks_one_above_threshold_ours_at_threshold():
    x = torch.linspace(-3, 3, 601)
    assert x[backward_of(sg.spike_rate_escape(), x).argmax()].item() == pytest.approx(1.0)
    assert x[backward_of(SURROGATES["spike_rate_escape"].make(), x).argmax()].item() == pytest.approx(0.0, abs=1e-6)


def test_snntorch_sparse_fast_sigmoid_drops_the_gradient_just_above_threshold_ours_keeps_it():
    x = torch.tensor([-0.5, 0.1, 0.5])
    assert backward_of(sg.SFS(), x).tolist() == [0.0, 0.0, 0.0]
    ours = backward_of(SURROGATES["sparse_fast_sigmoid"].make(), x)
    assert (ours > 0).all()
    assert backward_of(SURROGATES["sparse_fast_sigmoid"].make(B=1.0), torch.tensor([-1.5])).item() == 0.0
