"""Memory across trials: does one process that trains trial after trial (as a study's
worker does) keep its memory flat?

Runs ``--trials`` short trials (synthetic data, a tiny network, ``objectives.train``)
in one process, cycling through every neuron, surrogate and backprop method, and
prints the resident memory (RSS) after each. The figure that matters is the growth
from the end of the first trial to the end of the last (target: under 5 %).

    python benchmarks/memory.py               # 30 trials
    python benchmarks/memory.py --trials 60 --json
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import sys
import time

import torch

from objectives import BACKPROPS, NEURONS, SURROGATES, TrialConfig, train

TARGET_GROWTH_PCT = 5.0


def rss_mib() -> float:
    """Resident memory now (Linux: /proc/self/statm), else the peak so far (getrusage)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def trial_configs(n: int):
    """``n`` tiny run configs, each with the next neuron, surrogate and backprop method (every
    one of each comes up within the first eight) and a new seed."""
    for i in range(n):
        neuron, surrogate, backprop = (list(reg)[i % len(reg)] for reg in (NEURONS, SURROGATES, BACKPROPS))
        yield TrialConfig.from_dict(
            {
                "dataset": {"name": "synthetic", "val_size": 200, "train_subset": 256, "test_subset": 100},
                "model": {"neuron": neuron, "surrogate": surrogate, "channels": [4, 8], "num_steps": 5},
                "training": {"backprop": backprop, "epochs": 2, "batch_size": 64, "device": "cpu", "seed": i},
            }
        )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, default=30)
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the lines")
    args = p.parse_args(argv)
    if args.trials < 2:
        p.error(f"--trials must be at least 2, but got {args.trials}")
    torch.set_num_threads(args.threads)
    say = (lambda *a, **k: None) if args.json else print

    before = rss_mib()
    say(f"RSS before the first trial: {before:.1f} MiB")
    rows = []
    for i, cfg in enumerate(trial_configs(args.trials), 1):
        start = time.perf_counter()
        result = train(cfg)
        del result
        gc.collect()
        m = cfg.model
        rows.append({"trial": i, "neuron": m.neuron, "surrogate": m.surrogate, "backprop": cfg.training.backprop,
                     "seconds": time.perf_counter() - start, "rss_mib": rss_mib()})
        r = rows[-1]
        say(f"trial {i:3d}  {r['neuron']:9} {r['surrogate']:27} {r['backprop']:6} {r['seconds']:5.1f} s  "
            f"RSS {r['rss_mib']:7.1f} MiB", flush=True)
    first, last = rows[0]["rss_mib"], rows[-1]["rss_mib"]
    growth = 100 * (last - first) / first
    peak = max(r["rss_mib"] for r in rows)
    out = {
        "trials": args.trials,
        "rss_before_mib": before,
        "rss_after_first_mib": first,
        "rss_after_last_mib": last,
        "rss_max_after_trial_mib": peak,
        "growth_after_first_pct": growth,
        "target_pct": TARGET_GROWTH_PCT,
        "torch": torch.__version__,
        "rows": rows,
    }
    say(f"\nRSS after trial 1: {first:.1f} MiB, after trial {args.trials}: {last:.1f} MiB "
        f"(highest {peak:.1f}); growth after the first trial: {growth:+.2f} % (target < {TARGET_GROWTH_PCT:g} %)")
    if args.json:
        print(json.dumps(out, indent=2))
    return 0 if growth < TARGET_GROWTH_PCT else 1


if __name__ == "__main__":
    sys.exit(main())
