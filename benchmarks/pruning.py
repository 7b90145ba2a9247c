"""How many epochs does pruning save, and at what cost in best accuracy?

The same small real study (MNIST subset, a fixed seed, the same sampled trials)
run three times: with pruner ``none``, ``median`` and ``hyperband``. For each:
epochs trained in total, wall time and the best validation accuracy.

    python benchmarks/pruning.py [--data DIR] [--trials 16] [--epochs 6] [--train 1500] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import optuna

from storage import EpochLog
from study._config import StudyConfig
from study._runner import run

PRUNERS = {
    "none": {"name": "none"},
    "median": {"name": "median", "n_startup_trials": 4, "n_warmup_steps": 1},
    "hyperband": {"name": "hyperband", "min_resource": 1, "reduction_factor": 3},
}


def study_config(pruner: dict, args, storage: str) -> StudyConfig:
    return StudyConfig.from_dict({
        "study": {"name": "pruning", "storage": storage, "sampler": "random", "seed": 0, "n_trials": args.trials,
                  "pruner": pruner},
        "dataset": {"name": "mnist", "root": args.data, "val_size": 1000, "train_subset": args.train,
                    "test_subset": 1000, "download": False},
        "training": {"epochs": args.epochs, "early_stopping_patience": args.epochs},
        "search": {"neuron": ["leaky", "synaptic", "alpha", "lapicque"],
                   "surrogate": ["fast_sigmoid", "atan", "triangular", "straight_through_estimator"],
                   "backprop": ["bptt"], "lr": {"low": 0.0003, "high": 0.03, "log": True}},
    })


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=os.environ.get("SNN_STUDY_DATA", "data/"))
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--train", type=int, default=1500)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, pruner in PRUNERS.items():
            storage = f"sqlite:///{tmp}/{name}.db"
            cfg = study_config(pruner, args, storage)
            start = time.perf_counter()
            assert run(cfg, quiet=True) == 0
            wall = time.perf_counter() - start
            study = optuna.load_study(study_name="pruning", storage=storage)
            states = [t.state.name for t in study.trials]
            epochs = len(EpochLog(storage).read("pruning"))
            row = {"pruner": name, "trials": len(states), "pruned": states.count("PRUNED"), "epochs": epochs,
                   "wall_s": round(wall, 1), "best_val": study.best_value}
            rows.append(row)
            print(f"{name:<10} trials {row['trials']:>3}  pruned {row['pruned']:>3}  epochs {epochs:>4}  "
                  f"wall {wall:7.1f}s  best val {study.best_value:.2%}", file=sys.stderr, flush=True)
    base = rows[0]
    for row in rows[1:]:
        saved = 1 - row["epochs"] / base["epochs"]
        print(f"{row['pruner']}: {saved:.0%} fewer epochs than none, best val {100 * (row['best_val'] - base['best_val']):+.2f} points",
              file=sys.stderr)
    if args.json:
        print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
