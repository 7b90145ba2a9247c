"""Every surrogate is what its name says (SpikingJelly's surrogate contract, for our registry).

Forward: the Heaviside step. Backward: the derivative of the smooth function the
docstring names, checked against central finite differences on [-10, 10].
Gradients are finite everywhere there, and a few steps of training lower the loss.
"""

from __future__ import annotations

import pytest
import snntorch.surrogate as sg
import torch

from objectives import OPTIMIZERS, SURROGATES, TrialConfig, build_model, load, train_batch

POINTS = torch.linspace(-10, 10, 4001, dtype=torch.float64)
H = 1e-6


def backward_of(spike_fn, x):
    x = x.clone().requires_grad_(True)
    spike_fn(x).sum().backward()
    return x.grad


@pytest.mark.parametrize("name", SURROGATES)
def test_forward_is_the_heaviside_step(name):
    x = POINTS.to(torch.float32)
    assert torch.equal(SURROGATES[name].make()(x), (x > 0).float())


@pytest.mark.parametrize("name", SURROGATES)
def test_gradient_is_finite_everywhere(name):
    grad = backward_of(SURROGATES[name].make(), POINTS.to(torch.float32))
    assert torch.isfinite(grad).all()


@pytest.mark.parametrize("name", [n for n, s in SURROGATES.items() if s.primitive is not None])
@pytest.mark.parametrize("scale", [0.5, 1.0, 3.0])
def test_backward_is_the_derivative_of_the_named_smooth_function(name, scale):
    spec = SURROGATES[name]
    params = {k: v * scale for k, v in spec.params.items()}
    x = POINTS
    for kink in spec.kinks:  # a jump in the derivative: finite differences straddling it mean nothing
        x = x[(x - kink(**params)).abs() > 10 * H]
    numeric = (spec.primitive(x + H, **params) - spec.primitive(x - H, **params)) / (2 * H)
    analytic = backward_of(spec.make(**params), x)
    torch.testing.assert_close(analytic, numeric, rtol=1e-4, atol=1e-6)


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


@pytest.mark.parametrize("name", SURROGATES)
def test_a_few_steps_lower_the_loss(name, tiny):
    # the seed's layer widths on standardized pixels: the layers start active. From a silent
    # start (the tiny net on [0, 1] pixels) a surrogate whose gradient vanishes far below
    # threshold (sigmoid at slope 25: 25 e^-25 one unit below) has nothing to start from.
    tiny["model"].update(surrogate=name, channels=[12, 64], num_steps=10)
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
