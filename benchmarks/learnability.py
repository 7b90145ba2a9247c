"""Can every neuron, every surrogate and every backprop method learn? One epoch on 10,000 real MNIST images each.

Three tables, each row over several training seeds (``training.seed``: the initial weights,
the batch order and every random draw), as mean +- std of the VALIDATION accuracy (the
test set is not looked at here: these runs choose defaults) and the seconds per run:

- ``neurons``: every neuron with the fast-sigmoid surrogate;
- ``surrogates``: every surrogate with the leaky neuron;
- ``backprop``: bptt, tbptt and rtrl (leaky, fast sigmoid), each with one optimizer step per
  batch (``training.step_every: batch``) and one per window (``window``). For bptt the two
  are one run (a batch is one window).

Every run uses the run-config defaults (gain matched, normalized surrogates at one width,
standardized pixels, one step per batch) unless ``--set`` overrides a field for every run.
Each run also prints the gradient norm of every weight after the first batch (a surrogate or
neuron whose gradient vanishes shows there) and the layers' spike rates. ``--log FILE`` keeps
one JSON line per run and skips runs already there, so an interrupted benchmark resumes; several
processes may each run some rows (``--only``) into their own log, and ``--report`` with every log
prints the tables of what they hold.

    python benchmarks/learnability.py [--data DIR] [--train 10000] [--seeds 0 1 2]
        [--table neurons --table surrogates --table backprop] [--set model.surrogate_width=0.5 ...]
        [--only leaky/atan/bptt/batch] [--log runs.jsonl ...] [--report] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from objectives import (
    BACKPROPS,
    NEURONS,
    OPTIMIZERS,
    STEP_EVERY,
    SURROGATES,
    TrialConfig,
    build_model,
    load,
    train,
    train_batch,
)
from study import parse_set

TABLES = ("neurons", "surrogates", "backprop")


def rows_of(table: str) -> list[tuple[str, str, str, str]]:
    """``(neuron, surrogate, backprop, step_every)`` for each row of ``table``."""
    if table == "neurons":
        return [(n, "fast_sigmoid", "bptt", "batch") for n in NEURONS]
    if table == "surrogates":
        return [("leaky", s, "bptt", "batch") for s in SURROGATES]
    # bptt has one window per batch: its two step modes are the same run
    return [("leaky", "fast_sigmoid", b, e) for b in BACKPROPS for e in STEP_EVERY if b != "bptt" or e == "batch"]


def first_batch_grad_norms(cfg: TrialConfig, data) -> list[float]:
    """Gradient norm of every conv/linear weight at the first optimizer step from the initial weights."""
    torch.manual_seed(cfg.training.seed)
    model = build_model(cfg, data)
    grads: dict[str, float] = {}
    optimizer = OPTIMIZERS[cfg.training.optimizer](model.parameters(), cfg.training.lr)
    original_step = optimizer.step

    def capture(*args, **kwargs):  # the gradients of the first step, before the update
        if not grads:
            grads.update({n: p.grad.norm().item() for n, p in model.named_parameters() if n.endswith("weight")})
        return original_step(*args, **kwargs)

    optimizer.step = capture  # type: ignore[method-assign]
    batch = cfg.training.batch_size
    train_batch(model, data.train.x[:batch], data.train.y[:batch], optimizer, cfg)
    return list(grads.values())


def run_one(cfg: TrialConfig) -> dict:
    """One training run of ``cfg``: validation accuracy, seconds, first-batch gradient norms, spike rates."""
    data = load(cfg.dataset)
    norms = first_batch_grad_norms(cfg, data)
    start = time.perf_counter()
    result = train(cfg, data)
    return {"val_acc": result.val_acc, "seconds": round(time.perf_counter() - start, 1), "grad_norms": norms,
            "spike_rates": list(result.spike_rates)}


def key_of(row: tuple[str, ...], seed: int, overrides: list[str]) -> str:
    return json.dumps([list(row), seed, sorted(overrides)])


def mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{100 * values[0]:5.2f} (one seed)"
    return f"{100 * statistics.mean(values):5.2f} ± {100 * statistics.stdev(values):4.2f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=os.environ.get("SNN_STUDY_DATA", "data/"))
    parser.add_argument("--train", type=int, default=10000, help="training images")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds of every row")
    parser.add_argument("--table", action="append", choices=TABLES, help="which tables (default: all three)")
    parser.add_argument("--set", action="append", default=[], help="override a field for every run")
    parser.add_argument("--only", action="append", default=[],
                        help="rows neuron/surrogate/backprop/step_every, e.g. leaky/atan/bptt/batch")
    parser.add_argument("--log", type=Path, action="append", default=[],
                        help="one JSON line per run; runs already there are not run again (several: all are read, "
                             "the last is written)")
    parser.add_argument("--report", action="store_true", help="run nothing: the tables of the runs the logs hold")
    parser.add_argument("--json", action="store_true", help="print every run as one JSON list on stdout")
    args = parser.parse_args()

    tables = {t: rows_of(t) for t in (args.table or TABLES)}
    if args.only:
        tables = {"only": [tuple(o.split("/")) for o in args.only]}  # type: ignore[misc]
    base = {"dataset": {"root": args.data, "train_subset": args.train, "download": False}, "training": {"epochs": 1}}
    done: dict[str, dict] = {}
    for log in args.log:
        for line in log.read_text().splitlines() if log.exists() else []:
            if line.strip():
                entry = json.loads(line)
                done[entry["key"]] = entry
    print(f"# {platform.processor() or platform.machine()}, nproc {os.cpu_count()}, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads); {args.train} training images, 1 epoch, seeds {args.seeds}; "
          f"overrides: {' '.join(args.set) or 'none'}", file=sys.stderr, flush=True)
    results: dict[tuple, dict[int, dict]] = {}  # row -> seed -> run (a row in two tables runs once)
    for rows in tables.values():
        for row in rows:
            neuron, surrogate, backprop, step_every = row
            for seed in args.seeds:
                key = key_of(row, seed, args.set)
                if key not in done and args.report:
                    continue
                if key not in done:
                    overrides = {"model.neuron": neuron, "model.surrogate": surrogate, "training.backprop": backprop,
                                 "training.step_every": step_every, "training.seed": seed, **parse_set(args.set)}
                    cfg = TrialConfig.from_dict(base).replace(**overrides)
                    done[key] = {"key": key, "row": list(row), "seed": seed, "overrides": args.set,
                                 **run_one(cfg)}
                    if args.log:
                        with args.log[-1].open("a") as f:
                            f.write(json.dumps(done[key]) + "\n")
                r = done[key]
                if seed in results.setdefault(row, {}):
                    continue
                results[row][seed] = r
                print(f"{'/'.join(row):<52} seed {seed}  val {r['val_acc']:6.2%}  {r['seconds']:6.1f}s  "
                      f"grad norms {' '.join(f'{g:.1e}' for g in r['grad_norms'])}  "
                      f"spikes {' '.join(f'{s:.3f}' for s in r['spike_rates'])}", file=sys.stderr, flush=True)
    for name, rows in tables.items():
        print(f"\n{name} (validation accuracy %, mean ± std over seeds {args.seeds}; seconds per run, mean)\n")
        print("| neuron | surrogate | backprop | step_every | val acc % | per seed | s |")
        print("|---|---|---|---|---|---|---|")
        for row in rows:
            by_seed = results.get(row, {})
            runs = list(by_seed.values())
            if not runs:
                print(f"| {' | '.join(row)} | (not run) | | |")
                continue
            vals = [r["val_acc"] for r in runs]
            per_seed = " ".join(f"{seed}: {100 * r['val_acc']:.2f}" for seed, r in sorted(by_seed.items()))
            seconds = statistics.mean(r["seconds"] for r in runs)
            print(f"| {' | '.join(row)} | {mean_std(vals)} | {per_seed} | {seconds:.0f} |")
    if args.json:
        print(json.dumps([r for runs in results.values() for r in runs.values()]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
