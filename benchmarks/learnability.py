"""Can every neuron and every surrogate learn? One epoch on 10,000 real MNIST images each.

Every neuron with the fast-sigmoid surrogate and every surrogate with the leaky
neuron, at the registry defaults (and the seed's hyperparameters), then a table
of validation and test accuracy, seconds, and the gradient norm per layer after
the first batch (a surrogate with zero or non-finite gradients shows up there).

    python benchmarks/learnability.py [--data DIR] [--train 10000] [--set model.beta=0.9 ...] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch

from objectives import NEURONS, OPTIMIZERS, SURROGATES, TrialConfig, build_model, load, train, train_batch
from study import parse_set


def first_batch_grad_norms(cfg: TrialConfig, data) -> list[float]:
    """Gradient norm of every conv/linear weight after one batch from the initial weights."""
    torch.manual_seed(cfg.training.seed)
    model = build_model(cfg, data)
    grads = {}
    optimizer = OPTIMIZERS[cfg.training.optimizer](model.parameters(), cfg.training.lr)
    original_step = optimizer.step

    def capture(*args, **kwargs):  # read the gradients of the first window, before the update
        if not grads:
            grads.update({n: p.grad.norm().item() for n, p in model.named_parameters() if n.endswith("weight")})
        return original_step(*args, **kwargs)

    optimizer.step = capture
    train_batch(model, data.train.x[: cfg.training.batch_size], data.train.y[: cfg.training.batch_size], optimizer, cfg)
    return list(grads.values())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=os.environ.get("SNN_STUDY_DATA", "data/"))
    parser.add_argument("--train", type=int, default=10000, help="training images")
    parser.add_argument("--set", action="append", default=[], help="override a field for every run")
    parser.add_argument("--only", action="append", default=[], help="neuron/surrogate pairs, e.g. leaky/atan")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    runs = [(n, "fast_sigmoid") for n in NEURONS] + [("leaky", s) for s in SURROGATES if s != "fast_sigmoid"]
    if args.only:
        runs = [tuple(o.split("/")) for o in args.only]
    base = {"dataset": {"root": args.data, "train_subset": args.train, "download": False}, "training": {"epochs": 1}}
    rows = []
    for neuron, surrogate in runs:
        overrides = {"model.neuron": neuron, "model.surrogate": surrogate, **parse_set(args.set)}
        cfg = TrialConfig.from_dict(base).replace(**overrides)
        data = load(cfg.dataset)
        norms = first_batch_grad_norms(cfg, data)
        start = time.perf_counter()
        result = train(cfg, data)
        row = {"neuron": neuron, "surrogate": surrogate, "val_acc": result.val_acc, "test_acc": result.test_acc,
               "seconds": round(time.perf_counter() - start, 1), "grad_norms": norms,
               "spike_rates": result.spike_rates, "overrides": args.set}
        rows.append(row)
        print(f"{neuron:<9} {surrogate:<27} val {result.val_acc:6.2%}  test {result.test_acc:6.2%}  "
              f"{row['seconds']:6.1f}s  grad norms {' '.join(f'{g:.1e}' for g in norms)}", file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
