"""Study throughput: a fixed set of trials trained one after another, as N processes sharing the
device, and as fused trial arrays (``objectives.train_array``) of K members.

The trial set: ``--trials`` trials of the original code's conv-SNN (bptt, Adamax, 25 steps, batch 128), half
leaky and half synaptic, with learning rates log-spaced over [2e-3, 2e-2] and beta over [0.5, 0.9]
(in another order), seed = trial number, ``--epochs`` epochs each (patience = epochs: no early stop).
Arrays group trials by architecture (``objectives.array_key``: here the neuron) into arrays of at
most K members, in trial order.

Modes, each in fresh worker processes that load the data first and time only the training (model
set-up, every epoch, validation, test):

(a) ``sequential``: one process, ``objectives.train`` for each trial in turn (what a study worker does);
(b) ``processes``: ``--processes`` such processes at once, the trials dealt round-robin;
(c) ``array-K``: one process, ``objectives.train_array`` on each array of at most K trials.

Printed per mode: wall seconds from the first worker's start to the last one's end, trials per hour,
training samples per second summed over what runs at once (each process's training samples over its
time in training batches, summed over processes), peak memory (GPU: the CUDA allocator's peak per
process; CPU: peak RSS per process; summed over processes), the speed-up in trials per hour over (a),
and the largest difference of any trial's validation accuracy (every epoch) from (a)'s, checked
against ``--tolerance``: on a CPU an array computes what a lone run computes (default tolerance 0);
on a GPU the kernels differ (grouped convolutions, TF32, cuDNN's choices), so runs agree to training
noise (default 0.01).

    python benchmarks/study_throughput.py --device cpu                 # small: 8 trials, 1,000 images
    python benchmarks/study_throughput.py --device cuda                # 32 trials, 55,000 images, K = 4..32
    python benchmarks/study_throughput.py --device cuda --trials 64    # 32 per architecture: K = 32 fills

MNIST is used when ``--data`` or ``$SNN_STUDY_DATA`` names a folder holding ``MNIST/raw``; otherwise
synthetic 28x28 images (the project's synthetic set, tiled to the sizes asked for).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from objectives import (  # noqa: E402
    MNIST_FILES,
    Data,
    DatasetConfig,
    Split,
    TrialConfig,
    array_key,
    load,
    train,
    train_array,
)

#: per device: trials, training / validation / test images, array sizes, processes, tolerance
DEFAULTS = {
    "cpu": {"trials": 8, "train_images": 1000, "val_images": 500, "test_images": 500, "arrays": [2, 4],
            "processes": 2, "tolerance": 0.0},
    "cuda": {"trials": 32, "train_images": 55000, "val_images": 5000, "test_images": 10000, "arrays": [4, 8, 16, 32],
             "processes": 4, "tolerance": 0.01},
}


def mnist_root(arg: str | None) -> str | None:
    for candidate in (arg, os.environ.get("SNN_STUDY_DATA")):
        if candidate and all((Path(candidate) / "MNIST" / "raw" / f).exists() for f in MNIST_FILES):
            return candidate
    return None


def trial_set(args) -> list[TrialConfig]:
    """The fixed trials: alternately each neuron, lr and beta spread over their ranges."""
    per_neuron = math.ceil(args.trials / len(args.neurons))
    root = mnist_root(args.data)
    dataset = ({"name": "mnist", "root": root, "download": False, "val_size": args.val_images,
                "train_subset": args.train_images, "test_subset": args.test_images}
               if root else {"name": "synthetic", "val_size": 200})
    cfgs = []
    for i in range(args.trials):
        neuron, j = args.neurons[i % len(args.neurons)], i // len(args.neurons)
        at = j / max(per_neuron - 1, 1)
        lr = 2e-3 * 10**at
        beta = 0.5 + 0.4 * ((j * 5) % per_neuron) / max(per_neuron - 1, 1)
        cfgs.append(TrialConfig.from_dict({
            "dataset": dataset,
            "model": {"neuron": neuron, "beta": round(beta, 4)},
            "training": {"backprop": "bptt", "epochs": args.epochs, "early_stopping_patience": args.epochs,
                         "lr": round(lr, 6), "seed": i, "device": args.device},
        }))
    return cfgs


def make_data(args, device: torch.device) -> tuple[Data, str]:
    """The data every trial trains on: MNIST's split, or the synthetic set tiled to the sizes asked for."""
    root = mnist_root(args.data)
    if root is not None:
        cfg = DatasetConfig(name="mnist", root=root, download=False, val_size=args.val_images,
                            train_subset=args.train_images, test_subset=args.test_images)
        return load(cfg, device), f"MNIST ({root})"
    small = load(DatasetConfig(name="synthetic", val_size=200), device)

    def tiled(split: Split, n: int) -> Split:
        reps = -(-n // len(split))
        return Split(split.x.repeat(reps, 1, 1, 1)[:n], split.y.repeat(reps)[:n])

    data = Data(tiled(small.train, args.train_images), tiled(small.val, args.val_images),
                tiled(small.test, args.test_images), small.num_classes)
    return data, f"synthetic 28x28 ({len(small.train)} training images tiled)"


def arrays_of(cfgs: list[TrialConfig], ids: list[int], size: int) -> list[list[int]]:
    """``ids`` grouped by architecture, in order, into arrays of at most ``size``."""
    groups: dict[str, list[int]] = {}
    for i in ids:
        groups.setdefault(array_key(cfgs[i]), []).append(i)
    return [g[s : s + size] for g in groups.values() for s in range(0, len(g), size)]


# ----------------------------------------------------------------------------- a worker


def worker(args) -> dict:
    """Train ``args.ids`` (one after another, or in arrays of ``args.array_size``); print what it measured."""
    device = torch.device(args.device)
    cfgs = trial_set(args)
    data, _ = make_data(args, device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    rows, train_seconds = {}, 0.0
    n_train = len(data.train)

    def seconds_training(result) -> float:
        return sum(n_train / m.train_samples_per_s for m in result.history)

    started, cpu_started = time.time(), time.process_time()
    if args.array_size:
        for members in arrays_of(cfgs, args.ids, args.array_size):
            results = train_array([cfgs[i] for i in members], data)
            for i, result in zip(members, results):
                if isinstance(result, Exception):
                    raise result
                rows[i] = result
            # the members share their batches: the array's time in training is its longest-running member's
            train_seconds += max(seconds_training(r) for r in results)
    else:
        for i in args.ids:
            rows[i] = train(cfgs[i], data)
            train_seconds += seconds_training(rows[i])
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    ended = time.time()
    return {
        "started": started,
        "ended": ended,
        "cpu_s": time.process_time() - cpu_started,
        "train_seconds": train_seconds,
        "samples": sum(n_train * r.epochs for r in rows.values()),
        "peak_mib": (torch.cuda.max_memory_allocated(device) if device.type == "cuda"
                     else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024) / 2**20,
        "trials": {str(i): {"val_accs": [m.val_acc for m in r.history], "val_acc": r.val_acc, "test_acc": r.test_acc}
                   for i, r in rows.items()},
    }


def spawn(args, ids: list[int], array_size: int, threads: int) -> subprocess.Popen:
    command = [sys.executable, __file__, "--worker", "--device", args.device, "--trials", str(args.trials),
               "--neurons", *args.neurons, "--epochs", str(args.epochs), "--train-images", str(args.train_images),
               "--val-images", str(args.val_images), "--test-images", str(args.test_images),
               "--threads", str(threads), "--array-size", str(array_size), "--ids", *map(str, ids)]
    if args.data:
        command += ["--data", args.data]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    return subprocess.Popen(command, stdout=subprocess.PIPE, env=env, text=True)


def run_mode(args, name: str, groups: list[list[int]], array_size: int, threads: int) -> dict:
    procs = [spawn(args, ids, array_size, threads) for ids in groups]
    outs = []
    for p in procs:
        stdout, _ = p.communicate()
        if p.returncode != 0:
            raise SystemExit(f"{name}: a worker failed (exit {p.returncode})")
        outs.append(json.loads(stdout))
    wall = max(o["ended"] for o in outs) - min(o["started"] for o in outs)
    trials = {k: v for o in outs for k, v in o["trials"].items()}
    return {
        "mode": name,
        "processes": len(groups),
        "threads_per_process": threads,
        "wall_s": wall,
        "cpu_s": sum(o["cpu_s"] for o in outs),
        "trials_per_hour": len(trials) / wall * 3600,
        "samples_per_s": sum(o["samples"] / o["train_seconds"] for o in outs),
        "peak_mib": sum(o["peak_mib"] for o in outs),
        "trials": trials,
    }


def machine(device: torch.device) -> dict:
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    info = {"cpu": cpu, "nproc": os.cpu_count(), "torch": torch.__version__, "python": platform.python_version(),
            "load_average": os.getloadavg()[0]}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    p.add_argument("--trials", type=int, default=None, help="trials in the set (cpu 8, cuda 32)")
    p.add_argument("--neurons", nargs="+", default=["leaky", "synaptic"], help="architectures, dealt in turn")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--train-images", type=int, default=None, help="cpu 1000, cuda 55000")
    p.add_argument("--val-images", type=int, default=None, help="cpu 500, cuda 5000")
    p.add_argument("--test-images", type=int, default=None, help="cpu 500, cuda 10000")
    p.add_argument("--arrays", type=int, nargs="+", default=None, help="array sizes K (cpu 2 4, cuda 4 8 16 32)")
    p.add_argument("--processes", type=int, default=None, help="(b)'s processes (cpu 2, cuda 4)")
    p.add_argument("--threads", type=int, default=1,
                   help="CPU threads per mode: (a) and (c) get them all, (b) shares them among its processes")
    p.add_argument("--modes", nargs="+", default=["sequential", "processes", "arrays"],
                   choices=["sequential", "processes", "arrays"])
    p.add_argument("--tolerance", type=float, default=None,
                   help="largest allowed difference of a trial's validation accuracy from (a)'s (cpu 0, cuda 0.01)")
    p.add_argument("--data", default=None, help="folder holding MNIST/raw (default $SNN_STUDY_DATA)")
    p.add_argument("--json", action="store_true", help="also print every figure as one JSON object")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--array-size", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--ids", type=int, nargs="*", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        p.error(f"--device {args.device}: CUDA is not available here")
    for name, value in DEFAULTS[device.type].items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    torch.set_num_threads(args.threads)
    if args.worker:
        print(json.dumps(worker(args)))
        return 0

    cfgs = trial_set(args)
    ids = list(range(len(cfgs)))
    info = machine(device)
    _, source = make_data(args, torch.device("cpu"))
    print(f"# {info['cpu']}, nproc {info['nproc']}, load {info['load_average']:.1f}, torch {info['torch']}, "
          f"device {device}" + (f" ({info['gpu']})" if "gpu" in info else ""))
    print(f"# {len(cfgs)} trials ({', '.join(args.neurons)}; bptt, Adamax, 25 steps, batch 128), {args.epochs} epochs "
          f"on {args.train_images} images of {source}, validation {args.val_images}, test {args.test_images}")
    runs = []
    if "sequential" in args.modes:
        runs.append(run_mode(args, "(a) one after another", [ids], 0, args.threads))
    if "processes" in args.modes:
        n = args.processes
        runs.append(run_mode(args, f"(b) {n} processes", [ids[k::n] for k in range(n)], 0, max(args.threads // n, 1)))
    if "arrays" in args.modes:
        for k in args.arrays:
            sizes = sorted({len(a) for a in arrays_of(cfgs, ids, k)}, reverse=True)
            runs.append(run_mode(args, f"(c) arrays K={k}" + (f" (of {sizes})" if sizes != [k] else ""), [ids], k,
                                 args.threads))
    reference = next((r for r in runs if r["mode"].startswith("(a)")), None)
    ok = True
    print(f"\n{'mode':32} {'threads':>7} {'wall s':>8} {'CPU s':>8} {'trials/h':>9} {'samples/s':>10} "
          f"{'peak MiB':>9} {'vs (a)':>7} {'max |dval|':>11}")
    for r in runs:
        threads = f"{r['processes']}x{r['threads_per_process']}"
        line = f"{r['mode']:32} {threads:>7} {r['wall_s']:8.1f} {r['cpu_s']:8.1f} {r['trials_per_hour']:9.1f} " \
               f"{r['samples_per_s']:10.1f} {r['peak_mib']:9.0f}"
        if reference is not None:
            diff = max(abs(a - b) for i, t in r["trials"].items()
                       for a, b in zip(t["val_accs"], reference["trials"][i]["val_accs"], strict=True))
            r["max_val_acc_diff"] = diff
            r["speedup"] = r["trials_per_hour"] / reference["trials_per_hour"]
            ok &= diff <= args.tolerance
            line += f" {r['speedup']:6.2f}x {diff:10.4f}{'' if diff <= args.tolerance else ' FAIL'}"
        print(line, flush=True)
    memory = "CUDA allocator peak" if device.type == "cuda" else "peak RSS"
    print("\nwall: first worker's start to last one's end (data loading excluded); CPU s: the workers' CPU time "
          "(user + system) in that stretch, summed (on a shared machine: the work done, whatever the contention); "
          "samples/s: training samples over time in training batches, summed over processes; "
          f"peak MiB: {memory} per process, summed; max |dval|: largest difference of any trial's validation "
          f"accuracy (any epoch) from (a)'s, tolerance {args.tolerance}")
    if args.json:
        print(json.dumps({"machine": info, "args": {k: v for k, v in vars(args).items() if k not in ("worker", "ids")},
                          "data": source, "runs": runs}, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
