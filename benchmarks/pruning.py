"""How many epochs does pruning save, and at what cost in best accuracy?

The same small real study (MNIST subset, a fixed seed, the same sampled trials)
run once per pruner: ``none``, ``median``, ``hyperband`` and ``successive_halving``. For each:
epochs trained in total, wall time and the best validation accuracy.

    python benchmarks/pruning.py [--data DIR] [--seed 0] [--trials 16] [--epochs 6] [--train 1500]
                                 [--pruners none median ...] [--pruner LABEL=JSON ...] [--keep DIR]
                                 [--replay DB] [--json]

``--replay DB`` trains nothing: it replays the validation curves of a ``none`` run kept with
``--keep`` (``DB`` is its ``none.db``) into an in-memory study per pruner, trial by trial in the
same order, with the same pruner objects a real run builds. Training is deterministic on a CPU and
the random sampler's trials do not depend on pruning, so a pruner stops the same trials at the same
epochs as it would in a real run; wall time is then the sum of the replayed epochs' recorded seconds.
``--pruner LABEL=JSON`` adds a pruner to compare, e.g. ``--pruner 'p2={"name": "median", "patience": 2}'``.
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
from study import PrunerConfig, StudyConfig, make_pruner, run

STUDY = "pruning"

# Median and hyperband wait two epochs before they judge a trial: on 1,500 images an epoch is 12
# batches, and the trial that ends best was still at chance after it with --seed 0 and below the
# median of the finished trials with --seed 1. Replaying the development studies (--seed 1 and 2),
# every median setting (n_startup_trials 1 to 5) and hyperband and successive halving with
# reduction factor 3 to 6 that could prune after epoch 1 lost that trial with seed 1 (-6.8 points);
# waiting two epochs kept it in both. Successive halving with reduction factor 2, the one setting
# that saved >= 50 % of the epochs in both development studies without losing the best (61 %, 52 %),
# stays for comparison. Real runs with --seed 0 and 3: benchmarks/README.md. With 48 trials
# (--trials 48) median keeps the best at all four seeds and saves 43 to 50 %; the more eager
# settings that save more there (n_startup_trials 2; hyperband reduction factor 4) lost it at seed 0.
PRUNERS = {
    "none": {"name": "none"},
    "median": {"name": "median", "n_startup_trials": 4, "n_warmup_steps": 2},
    "hyperband": {"name": "hyperband", "min_resource": 2, "reduction_factor": 3},
    "successive_halving": {"name": "successive_halving", "min_resource": 1, "reduction_factor": 2},
}


def study_config(pruner: dict, args, storage: str) -> StudyConfig:
    return StudyConfig.from_dict({
        "study": {"name": STUDY, "storage": storage, "sampler": "random", "seed": args.seed, "n_trials": args.trials,
                  "pruner": pruner},
        "dataset": {"name": "mnist", "root": args.data, "val_size": 1000, "train_subset": args.train,
                    "test_subset": 1000, "download": False},
        "training": {"epochs": args.epochs, "early_stopping_patience": args.epochs},
        "search": {"neuron": ["leaky", "synaptic", "alpha", "lapicque"],
                   "surrogate": ["fast_sigmoid", "atan", "triangular", "straight_through_estimator"],
                   "backprop": ["bptt"], "lr": {"low": 0.0003, "high": 0.03, "log": True}},
    })


def curves(storage: str) -> list[dict]:
    """Each trial of an unpruned run in order: its state, value, validation accuracy and seconds per epoch."""
    study = optuna.load_study(study_name=STUDY, storage=storage)
    if any(t.state == optuna.trial.TrialState.PRUNED for t in study.trials):
        raise SystemExit(f"{storage}: has pruned trials; replay needs a run with pruner none")
    seconds: dict[int, dict[int, float]] = {}
    for row in EpochLog(storage, create=False).read(STUDY):
        seconds.setdefault(row["trial_number"], {})[row["epoch"]] = row["seconds"]
    trials = []
    for t in sorted(study.trials, key=lambda t: t.number):
        epochs = sorted(t.intermediate_values)
        trials.append({"state": t.state, "value": t.value, "val": [t.intermediate_values[e] for e in epochs],
                       "seconds": [seconds.get(t.number, {}).get(e, 0.0) for e in epochs]})
    return trials


def replay(trials: list[dict], pruner: dict, epochs: int) -> dict:
    """What ``pruner`` would have done to these trials: the same reports, in the same order, as a real run
    (never pruned at the last epoch, as ``objectives.Objective`` does)."""
    # the real run's study name: hyperband picks each trial's bracket from a hash of it and the trial number
    study = optuna.create_study(study_name=STUDY, direction="maximize",
                                pruner=make_pruner(PrunerConfig.from_value(pruner), epochs))
    ran = pruned = 0
    wall = 0.0
    for record in trials:
        trial = study.ask()
        state = None
        for epoch, (val, sec) in enumerate(zip(record["val"], record["seconds"]), start=1):
            trial.report(val, epoch)
            ran += 1
            wall += sec
            if epoch < epochs and trial.should_prune():
                state = optuna.trial.TrialState.PRUNED
                break
        if state is not None:
            pruned += 1
            study.tell(trial, state=state)
        elif record["state"] == optuna.trial.TrialState.COMPLETE:
            study.tell(trial, record["value"])
        else:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    return {"trials": len(study.trials), "pruned": pruned, "epochs": ran, "wall_s": round(wall, 1),
            "best_val": max(t.value for t in done) if done else float("nan")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=os.environ.get("SNN_STUDY_DATA", "data/"))
    parser.add_argument("--seed", type=int, default=0, help="the random sampler's seed: which trials are drawn")
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--train", type=int, default=1500)
    parser.add_argument("--pruners", nargs="+", choices=list(PRUNERS), default=list(PRUNERS))
    parser.add_argument("--pruner", action="append", default=[], metavar="LABEL=JSON",
                        help="one more pruner to compare, as a study.pruner mapping in JSON")
    parser.add_argument("--keep", metavar="DIR", help="keep each run's database in DIR (LABEL.db)")
    parser.add_argument("--replay", metavar="DB", help="replay the curves of a kept `none` run instead of training")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    pruners = {name: PRUNERS[name] for name in args.pruners}
    for item in args.pruner:
        label, _, spec = item.partition("=")
        pruners[label] = json.loads(spec)
    if "none" in pruners:  # the baseline first
        pruners = {"none": pruners.pop("none"), **pruners}
    rows = []
    if args.replay:
        trials = curves(f"sqlite:///{os.path.abspath(args.replay)}")
        if max(len(t["val"]) for t in trials) != args.epochs:
            raise SystemExit(f"{args.replay}: its trials ran {max(len(t['val']) for t in trials)} epochs, "
                             f"not --epochs {args.epochs}")
        print(f"# replay of the {len(trials)} trials in {args.replay} (no training; wall = recorded seconds of the "
              f"epochs each pruner lets run)", file=sys.stderr)
        for name, pruner in pruners.items():
            rows.append({"pruner": name, **replay(trials, pruner, args.epochs)})
            _print(rows[-1])
    else:
        with tempfile.TemporaryDirectory() as tmp:
            folder = args.keep or tmp
            os.makedirs(folder, exist_ok=True)
            for name, pruner in pruners.items():
                path = os.path.abspath(os.path.join(folder, f"{name}.db"))
                if os.path.exists(path):
                    os.remove(path)
                storage = f"sqlite:///{path}"
                cfg = study_config(pruner, args, storage)
                start = time.perf_counter()
                if run(cfg, quiet=True) != 0:
                    raise SystemExit(f"the study with pruner {name} failed")
                wall = time.perf_counter() - start
                study = optuna.load_study(study_name=STUDY, storage=storage)
                states = [t.state.name for t in study.trials]
                rows.append({"pruner": name, "trials": len(states), "pruned": states.count("PRUNED"),
                             "epochs": len(EpochLog(storage).read(STUDY)), "wall_s": round(wall, 1),
                             "best_val": study.best_value})
                _print(rows[-1])
    if rows[0]["pruner"] == "none":
        base = rows[0]
        for row in rows[1:]:
            saved = 1 - row["epochs"] / base["epochs"]
            print(f"{row['pruner']}: {saved:.0%} fewer epochs than none, "
                  f"best val {100 * (row['best_val'] - base['best_val']):+.2f} points", file=sys.stderr)
    if args.json:
        print(json.dumps(rows))
    return 0


def _print(row: dict) -> None:
    print(f"{row['pruner']:<18} trials {row['trials']:>3}  pruned {row['pruned']:>3}  epochs {row['epochs']:>4}  "
          f"wall {row['wall_s']:7.1f}s  best val {row['best_val']:.2%}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
