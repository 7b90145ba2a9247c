"""Losses: ``ce_rate`` is computed as one cross-entropy over all steps; it must equal
snntorch's ``ce_rate_loss`` (a cross-entropy per step, averaged), value and gradient."""

from __future__ import annotations

import pytest
import snntorch.functional as SF
import torch

from objectives import LOSSES


@pytest.mark.parametrize("steps", [1, 5, 25])
@pytest.mark.parametrize("kind", ["spikes", "membrane"])
def test_ce_rate_equals_snntorchs_ce_rate_loss(steps, kind):
    g = torch.Generator().manual_seed(steps)
    x = torch.rand(steps, 64, 10, generator=g)
    x = (x > 0.7).float() if kind == "spikes" else x * 4 - 2
    y = torch.randint(0, 10, (64,), generator=g)
    grads, values = [], []
    for loss in (LOSSES["ce_rate"].make(), SF.ce_rate_loss()):
        out = x.clone().requires_grad_()
        value = loss(out, y)
        value.backward()
        values.append(value.reshape(()))
        grads.append(out.grad)
    torch.testing.assert_close(values[0], values[1], rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-5, atol=1e-9)
    assert grads[0].abs().max() > 0
