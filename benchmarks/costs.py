"""What the cost metrics add to a trial at the ``quick`` preset's size (3,000 training images,
1,000 validation, 2,000 test, 3 epochs, 25 steps, channels [12, 64]); the target is at most 5 %.

``objectives.train`` computes the cost metrics in its test pass (``cost_metrics`` on the
best weights gives the test accuracy too), so what they add to a trial is the time of
``cost_metrics`` less that of the plain test pass it replaced (``objectives.evaluate``
on the same images). In one process: loads the data, trains one trial as a study's
objective does, then times ``--repeats`` runs each of ``evaluate`` and ``cost_metrics``
on the trial's test images with its best weights, alternating which goes first, and
prints the medians (and the fastest runs: on a shared machine the least disturbed), the
trial's seconds and both percentages.

    python benchmarks/costs.py                      # MNIST from $SNN_STUDY_DATA (else data/)
    python benchmarks/costs.py --set model.neuron=synaptic --repeats 5 --json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import torch
import yaml

from objectives import TrialConfig, apply_overrides, build_model, cost_metrics, evaluate, load, train

TARGET_PCT = 5.0
QUICK = {
    "dataset": {"name": "mnist", "val_size": 1000, "train_subset": 3000, "test_subset": 2000},
    "model": {"num_steps": 25, "channels": [12, 64], "kernel_size": 5},
    "training": {"epochs": 3, "batch_size": 128, "device": "cpu", "seed": 0},
}


def timed(fn):
    """``fn()``, its wall seconds and the CPU seconds of this process meanwhile."""
    wall, cpu = time.perf_counter(), time.process_time()
    value = fn()
    return value, time.perf_counter() - wall, time.process_time() - cpu


def trial(cfg: TrialConfig):
    """Load the data and train ``cfg`` as a study's objective does: the data and the result."""
    data = load(cfg.dataset, torch.device(cfg.training.device))
    return data, train(cfg, data, keep_weights=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a run-config field")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the lines")
    args = p.parse_args(argv)
    overrides = dict(item.split("=", 1) for item in args.set)
    cfg = TrialConfig.from_dict(apply_overrides(QUICK, {k: yaml.safe_load(v) for k, v in overrides.items()}))
    say = (lambda *a, **k: None) if args.json else print
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    (data, result), trial_s, trial_cpu = timed(lambda: trial(cfg))
    model = build_model(cfg, data).to(cfg.training.device)
    model.load_state_dict(result.state_dict)

    test_s, cost_s, test_cpu, cost_cpu, metrics = [], [], [], [], None
    runs = [("test", lambda: evaluate(model, data.test, cfg)), ("cost", lambda: cost_metrics(model, cfg, data.test))]
    for r in range(args.repeats):
        for name, fn in runs if r % 2 == 0 else runs[::-1]:
            value, s, cpu = timed(fn)
            (test_s if name == "test" else cost_s).append(s)
            (test_cpu if name == "test" else cost_cpu).append(cpu)
            if name == "cost":
                metrics = value
    test, cost = statistics.median(test_s), statistics.median(cost_s)
    without = trial_s - cost + test  # the same trial with the plain test pass
    # CPU seconds: on a machine shared with other work, the wall clock also counts their share
    test_c, cost_c = statistics.median(test_cpu), statistics.median(cost_cpu)
    without_c = trial_cpu - cost_c + test_c
    out = {
        "config": {"neuron": cfg.model.neuron, "surrogate": cfg.model.surrogate, "backprop": cfg.training.backprop,
                   "encoding": cfg.model.encoding, "threads": torch.get_num_threads()},
        "trial_s": trial_s,
        "train_result_s": result.seconds,
        "test_pass_s": test,
        "cost_metrics_s": cost,
        "test_pass_min_s": min(test_s),
        "cost_metrics_min_s": min(cost_s),
        "added_pct": 100 * (cost - test) / without,
        "separate_pass_pct": 100 * cost / without,
        "trial_cpu_s": trial_cpu,
        "test_pass_cpu_s": test_c,
        "cost_metrics_cpu_s": cost_c,
        "added_cpu_pct": 100 * (cost_c - test_c) / without_c,
        "separate_pass_cpu_pct": 100 * cost_c / without_c,
        "test_acc": result.test_acc,
        "metrics": metrics.to_dict(),
        "torch": torch.__version__,
    }
    say(f"trial (load + train + test with cost metrics): {trial_s:.2f} s (train() itself {result.seconds:.2f} s), "
        f"test acc {result.test_acc:.4f}")
    say(f"plain test pass (evaluate), {len(data.test)} images: median {test:.3f} s of {[round(t, 3) for t in test_s]}")
    say(f"cost_metrics on the same images:        median {cost:.3f} s of {[round(t, 3) for t in cost_s]}")
    say(f"the metrics add {out['added_pct']:.2f} % to the trial (target <= {TARGET_PCT:g} %); "
        f"as a separate pass they would add {out['separate_pass_pct']:.2f} %")
    say(f"in CPU seconds: trial {trial_cpu:.1f}, test pass {test_c:.3f}, cost_metrics {cost_c:.3f}: "
        f"the metrics add {out['added_cpu_pct']:.2f} %, as a separate pass {out['separate_pass_cpu_pct']:.2f} %")
    say(json.dumps(metrics.to_dict()))
    if args.json:
        print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
