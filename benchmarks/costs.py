"""What the cost metrics add to a trial at the ``quick`` preset's size (3,000 training images,
1,000 validation, 2,000 test, 3 epochs, 25 steps, channels [12, 64]); the target is at most 5 %,
and what the cost pass holds in memory.

``objectives.train`` counts the cost metrics in passes it runs anyway: every epoch's
validation pass (``cost_metrics`` on the validation set gives the validation accuracy too) and
the final test pass (``cost_metrics`` on the best weights gives the test accuracy). So what they
add to a trial is, on each split, the time of ``cost_metrics`` less that of the plain pass it
replaced (``objectives.evaluate`` on the same images): once on the test set, and once per epoch
on the validation set. In one process: loads the data, trains one trial as a study's objective
does, then times ``--repeats`` runs each of ``evaluate`` and ``cost_metrics`` on the trial's test
and validation images with its best weights, alternating which goes first, and prints the medians
(and the fastest runs: on a shared machine the least disturbed), the trial's seconds and the
percentage. Then (CPU) the peak resident memory above the process's before each pass on the test
set: ``evaluate``, ``cost_metrics``, and the forward pass that records every layer's spikes and
membranes (``record=True``), which is what the cost pass kept before it counted spikes instead.

    python benchmarks/costs.py                      # MNIST from $SNN_STUDY_DATA (else data/)
    python benchmarks/costs.py --set model.neuron=synaptic --repeats 5 --json
"""

from __future__ import annotations

import argparse
import ctypes
import json
import resource
import statistics
import sys
import time

import torch
import yaml

from objectives import ENCODINGS, TrialConfig, apply_overrides, build_model, cost_metrics, evaluate, load, train

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


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def peak_above(fn) -> float | None:
    """MiB the process's resident memory peaked above its level before ``fn()`` (Linux: the peak reset through
    ``/proc/self/clear_refs`` after ``malloc_trim`` hands freed heap memory back; ``None`` elsewhere)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        before = rss_mib()
    except (OSError, AttributeError):
        return None
    fn()
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - before


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

    runs = {(split, kind): ([], []) for split in ("test", "val") for kind in ("evaluate", "cost_metrics")}
    for r in range(args.repeats):
        for split in ("test", "val"):
            images = getattr(data, split)
            pair = [("evaluate", lambda images=images: evaluate(model, images, cfg)),
                    ("cost_metrics", lambda images=images: cost_metrics(model, cfg, images))]
            for kind, fn in pair if r % 2 == 0 else pair[::-1]:
                _, s, cpu = timed(fn)
                runs[(split, kind)][0].append(s)
                runs[(split, kind)][1].append(cpu)
    wall = {k: statistics.median(v[0]) for k, v in runs.items()}
    cpu = {k: statistics.median(v[1]) for k, v in runs.items()}
    passes = {"test": 1, "val": result.epochs}  # the validation pass runs once per epoch trained

    def added(t: dict) -> float:
        return sum(n * (t[(split, "cost_metrics")] - t[(split, "evaluate")]) for split, n in passes.items())

    added_s, added_cpu = added(wall), added(cpu)
    out = {
        "config": {"neuron": cfg.model.neuron, "surrogate": cfg.model.surrogate, "backprop": cfg.training.backprop,
                   "encoding": cfg.model.encoding, "threads": torch.get_num_threads()},
        "epochs": result.epochs,
        "trial_s": trial_s,
        "train_result_s": result.seconds,
        "passes_s": {f"{split} {kind}": wall[(split, kind)] for split, kind in runs},
        "passes_min_s": {f"{split} {kind}": min(runs[(split, kind)][0]) for split, kind in runs},
        "added_s": added_s,
        "added_pct": 100 * added_s / (trial_s - added_s),
        "trial_cpu_s": trial_cpu,
        "added_cpu_s": added_cpu,
        "added_cpu_pct": 100 * added_cpu / (trial_cpu - added_cpu),
        "test_acc": result.test_acc,
        "metrics": result.costs.to_dict(),
        "torch": torch.__version__,
    }
    say(f"trial (load + train with validation and test costs): {trial_s:.2f} s (train() itself {result.seconds:.2f} s, "
        f"{result.epochs} epochs), test acc {result.test_acc:.4f}")
    for split in ("test", "val"):
        n = len(getattr(data, split))
        for kind in ("evaluate", "cost_metrics"):
            say(f"{split} set ({n} images), {kind:<12}: median {wall[(split, kind)]:.3f} s of "
                f"{[round(t, 3) for t in runs[(split, kind)][0]]}")
    say(f"the metrics add {added_s:.2f} s = {out['added_pct']:.2f} % to the trial (target <= {TARGET_PCT:g} %): "
        f"the test pass once, the validation pass {result.epochs} times")
    say(f"in CPU seconds: trial {trial_cpu:.1f}, added {added_cpu:.2f} = {out['added_cpu_pct']:.2f} %")

    if cfg.training.device == "cpu":
        encoding = ENCODINGS[cfg.model.encoding]
        batch = data.test.x[:1000]

        @torch.no_grad()
        def recording():  # one batch of what the cost pass used to keep: every layer's spikes and membranes
            return model(encoding.encode(batch, cfg.model.num_steps), cfg.model.num_steps, static=encoding.static,
                         record=True)

        memory = {"evaluate": peak_above(lambda: evaluate(model, data.test, cfg)),
                  "cost_metrics": peak_above(lambda: cost_metrics(model, cfg, data.test)),
                  "recording forward, 1000 images": peak_above(recording)}
        out["peak_above_mib"] = memory
        say("peak resident memory above the process's before the pass: "
            + ", ".join(f"{k} {v:.0f} MiB" for k, v in memory.items() if v is not None))
    if args.json:
        print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
