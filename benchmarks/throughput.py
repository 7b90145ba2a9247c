"""Training throughput: the project's fast engine against the snntorch tutorial's step loop.

For each neuron model and backprop method, in one process, on the same initial
weights and the same batches:

(a) the snntorch tutorial: ``nn.Sequential(Conv2d, MaxPool2d, snn.<Neuron>(init_hidden=True), ...)``
    called once per time step, with truncation as ``snntorch.backprop`` does it
    (``utils.reset(net)`` per batch, ``<Neuron>.detach_hidden()`` after every window);
(b) the project's training step (``objectives.TrainStep``: ``train_batch`` with the
    default run config, engine ``fast``; on a GPU replayed as a CUDA graph).

It first checks that both compute the same thing on one batch (SGD: spikes
identical, losses and every window's gradients within 1e-5), and on a GPU that
the CUDA graph's replays train to the same weights as eager batches; then it times
training over ``--repeats`` pairs of runs of ``--batches`` batches each,
alternating which goes first so that drift in the machine's speed cancels, and
prints the median samples/s of each and the median of the paired ratios
fast / step loop.

    python benchmarks/throughput.py                      # every neuron x backprop, CPU
    python benchmarks/throughput.py --neurons leaky --backprops bptt rtrl --repeats 3
    python benchmarks/throughput.py --device cuda --json
    python benchmarks/throughput.py --device cuda --epoch    # one 55,000-image epoch through objectives.train

MNIST is used when ``--data`` or ``$SNN_STUDY_DATA`` names a folder holding
``MNIST/raw``; otherwise synthetic 28x28 images (throughput does not depend on
the pixels' values).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import ctypes
import json
import os
import platform
import resource
import statistics
import sys
import time
import warnings
from pathlib import Path

import snntorch.functional as SF
import torch
from snntorch import utils as snn_utils
from snntorch._neurons.neurons import SpikingNeuron
from torch import nn

from objectives import (
    BACKPROPS,
    MNIST_FILES,
    NEURONS,
    OPTIMIZERS,
    Data,
    DatasetConfig,
    Split,
    TrainStep,
    TrialConfig,
    build_model,
    load,
    make_optimizer,
    train,
    train_batch,
    untrack,
)

GRAD_TOL = 1e-5
CHECK_LR = 0.01


# ----------------------------------------------------------------------------- the two contenders


def step_loop_net(model) -> nn.Sequential:
    """The tutorial's network with ``model``'s weights and neurons (same surrogate), as snntorch classes."""
    layers: list[nn.Module] = []
    for conv, neuron in zip(model.convs, model.neurons):
        layers += [copy.deepcopy(conv), nn.MaxPool2d(2), neuron.to_snntorch(init_hidden=True, track=True)]
    layers += [
        nn.Flatten(),
        copy.deepcopy(model.fc),
        model.neurons[-1].to_snntorch(init_hidden=True, output=True, track=True),
    ]
    return nn.Sequential(*layers)


def step_loop_batch(net: nn.Sequential, x, y, optimizer, num_steps: int, window: int, criterion):
    """One batch of the tutorial's loop, truncated every ``window`` steps as snntorch.backprop does.

    Returns the mean loss over windows and the output spikes ``[T, B, classes]`` (detached).
    """
    neuron_classes = {type(m) for m in net if isinstance(m, SpikingNeuron)}
    snn_utils.reset(net)
    losses, spikes = [], []
    for start in range(0, num_steps, window):
        spk_rec = []
        for _ in range(min(window, num_steps - start)):
            # the output neuron returns (spk, *state): (spk, mem), (spk, syn, mem), ...
            spk_rec.append(net(x)[0])
        spk_rec = torch.stack(spk_rec)
        loss = criterion(spk_rec, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        for cls in neuron_classes:
            cls.detach_hidden()
        losses.append(loss.detach())
        spikes.append(spk_rec.detach())
    return torch.stack(losses).mean(), torch.cat(spikes)


class RecordingSGD(torch.optim.SGD):
    """SGD that keeps a copy of every gradient it applies (one list per optimizer step)."""

    def __init__(self, params, lr):
        super().__init__(params, lr=lr)
        self.grads: list[list[torch.Tensor]] = []

    def step(self, closure=None):
        params = [p for g in self.param_groups for p in g["params"]]
        self.grads.append([torch.zeros_like(p) if p.grad is None else p.grad.detach().clone() for p in params])
        return super().step(closure)


# ----------------------------------------------------------------------------- set-up


def config(neuron: str, backprop: str, device: str, **training) -> TrialConfig:
    """The default run config for this neuron and backprop method (engine fast)."""
    training = {"backprop": backprop, "device": device, "engine": "fast", **training}
    return TrialConfig.from_dict({"model": {"neuron": neuron}, "training": training})


def mnist_root(arg: str | None) -> str | None:
    for candidate in (arg, os.environ.get("SNN_STUDY_DATA")):
        if candidate and all((Path(candidate) / "MNIST" / "raw" / f).exists() for f in MNIST_FILES):
            return candidate
    return None


def batches(root: str | None, n: int, batch_size: int, device: torch.device):
    """``n`` batches of training images and labels on ``device``: MNIST when ``root``, else synthetic."""
    g = torch.Generator().manual_seed(0)
    if root is not None:
        train = load(DatasetConfig(name="mnist", root=root, download=False), device).train
        idx = torch.randperm(len(train), generator=g)[: n * batch_size].to(device)
        x, y = train.x[idx], train.y[idx]
        source = f"MNIST ({root})"
    else:
        x = torch.rand(n * batch_size, 1, 28, 28, generator=g).to(device)
        y = torch.randint(0, 10, (n * batch_size,), generator=g).to(device)
        source = "synthetic 28x28"
    return [(x[i : i + batch_size], y[i : i + batch_size]) for i in range(0, n * batch_size, batch_size)], source


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class PeakMemory:
    """Peak memory of a stretch of code, in MiB: on a GPU, the CUDA allocator's peak; on a
    CPU, the process's peak RSS (``resource.getrusage``'s ``ru_maxrss``). Linux lets the RSS
    peak be reset (``/proc/self/clear_refs``) once freed heap memory is handed back
    (``malloc_trim``), so each stretch gets its own peak; elsewhere it is the peak since
    the process started."""

    def __init__(self, device: torch.device):
        self.device = device
        self.mib = 0.0

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            reset_peak_rss()
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            self.mib = torch.cuda.max_memory_allocated(self.device) / 2**20
        else:
            self.mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def reset_peak_rss() -> bool:
    """Hand freed heap memory back to the system and reset the RSS peak to the current RSS."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except (OSError, AttributeError):
        return False


# ----------------------------------------------------------------------------- check and timing


@contextlib.contextmanager
def full_fp32():
    """No TF32 in cuDNN convolutions and CUDA matrix products (PyTorch allows it in convolutions
    by default): the two contenders' convolutions differ in batch shape, so TF32's rounding
    would differ between them far above the check's 1e-5."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def check(neuron: str, backprop: str, device: torch.device, batch) -> dict:
    """One batch with SGD through both: spikes identical, losses and each window's gradients within 1e-5."""
    with full_fp32():
        return _check(neuron, backprop, device, batch)


def _check(neuron: str, backprop: str, device: torch.device, batch) -> dict:
    cfg = config(neuron, backprop, device.type)
    x, y = batch
    torch.manual_seed(0)
    model = build_model(cfg).to(device)
    net = step_loop_net(model).to(device)
    try:
        opt_fast = RecordingSGD(model.parameters(), CHECK_LR)
        opt_step = RecordingSGD(net.parameters(), CHECK_LR)
        loss_fast, spk_fast, _, _ = train_batch(model, x, y, opt_fast, cfg)
        loss_step, spk_step = step_loop_batch(
            net, x, y, opt_step, cfg.model.num_steps, BACKPROPS[backprop](cfg), SF.ce_rate_loss()
        )
    finally:
        untrack(net)
    # parameters() orders both as conv1 w, b, conv2 w, b, fc w, b
    grad_diff = max(
        (a - b).abs().max().item() for ga, gb in zip(opt_fast.grads, opt_step.grads) for a, b in zip(ga, gb)
    )
    result = {
        "spikes_identical": bool(torch.equal(spk_fast, spk_step)),
        "loss_diff": abs(loss_fast.item() - loss_step.item()),
        "max_grad_diff": grad_diff,
        "max_grad": max(b.abs().max().item() for gb in opt_step.grads for b in gb),
        "windows": len(opt_fast.grads),
        "output_spikes": int(spk_fast.sum().item()),
    }
    result["ok"] = (
        result["spikes_identical"]
        and len(opt_fast.grads) == len(opt_step.grads)
        and grad_diff <= GRAD_TOL
        and result["loss_diff"] <= GRAD_TOL
    )
    return result


def graph_check(neuron: str, backprop: str, device: torch.device, data) -> float:
    """On a GPU: the largest weight difference after training the same batches from the
    same weights through the CUDA graph (warm-up, capture, replays, a partial batch) and
    batch by batch without it, both with the optimizer the graph needs, in full fp32
    with deterministic cuDNN."""
    weights = []
    saved = torch.backends.cudnn.deterministic
    torch.backends.cudnn.deterministic = True
    try:
        with full_fp32(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*capturable=True.*")
            for graph in (True, False):
                # both with the optimizer the graph needs (capturable): the same arithmetic
                graphed = config(neuron, backprop, device.type)
                torch.manual_seed(0)
                model = build_model(graphed).to(device)
                run_cfg = config(neuron, backprop, device.type, cuda_graph=graph)
                step = TrainStep(model, make_optimizer(graphed, model, device), run_cfg)
                batches = [data[i % len(data)] for i in range(TrainStep.WARMUP + 3)]
                x, y = batches[-1]
                for bx, by in batches + [(x[:37], y[:37])]:
                    step(bx, by)
                sync(device)
                weights.append([p.detach().clone() for p in model.parameters()])
    finally:
        torch.backends.cudnn.deterministic = saved
    return max((a - b).abs().max().item() for a, b in zip(*weights))


def time_pairs(neuron, backprop, device, data, repeats: int, n_batches: int) -> dict:
    """Median training samples/s of each contender over ``repeats`` alternating pairs."""
    cfg = config(neuron, backprop, device.type)
    torch.manual_seed(0)
    model = build_model(cfg).to(device)
    net = step_loop_net(model).to(device)
    step = TrainStep(model, make_optimizer(cfg, model, device), cfg)
    opt_step = OPTIMIZERS[cfg.training.optimizer](net.parameters(), cfg.training.lr)
    window = BACKPROPS[backprop](cfg)
    criterion = SF.ce_rate_loss()
    num_steps = cfg.model.num_steps

    def run_fast(bs):
        for x, y in bs:
            step(x, y)

    def run_step(bs):
        for x, y in bs:
            step_loop_batch(net, x, y, opt_step, num_steps, window, criterion)

    runs = {"step_loop": run_step, "fast": run_fast}
    rates: dict[str, list[float]] = {name: [] for name in runs}
    peak: dict[str, float] = {name: 0.0 for name in runs}
    try:
        # warm-up: allocator, oneDNN primitives, CUDA kernels; the fast step's CUDA graph is recorded here
        warm = [data[i % len(data)] for i in range(TrainStep.WARMUP + 1)]
        for run in runs.values():
            run(warm)
        sync(device)
        for r in range(repeats):
            bs = data[(r * n_batches) % len(data) :][:n_batches]
            bs = bs + data[: n_batches - len(bs)]
            order = ("step_loop", "fast") if r % 2 == 0 else ("fast", "step_loop")
            for name in order:
                with PeakMemory(device) as mem:
                    sync(device)
                    t0 = time.perf_counter()
                    runs[name](bs)
                    sync(device)
                    elapsed = time.perf_counter() - t0
                rates[name].append(sum(len(y) for _, y in bs) / elapsed)
                peak[name] = max(peak[name], mem.mib)
    finally:
        untrack(net)
    ratios = [f / s for f, s in zip(rates["fast"], rates["step_loop"])]
    return {
        "step_loop_samples_per_s": statistics.median(rates["step_loop"]),
        "fast_samples_per_s": statistics.median(rates["fast"]),
        "ratio": statistics.median(ratios),
        "ratios": ratios,
        "step_loop_peak_mib": peak["step_loop"],
        "fast_peak_mib": peak["fast"],
    }


def epoch_data(root: str | None, n_train: int, device: torch.device) -> tuple[Data, str]:
    """``n_train`` training images and 5,000 validation images on ``device``: MNIST's split
    when ``root``; else the synthetic set's 1,200 images repeated (the same arithmetic)."""
    if root is not None:
        cfg = DatasetConfig(name="mnist", root=root, download=False, train_subset=n_train, test_subset=1000)
        return load(cfg, device), f"MNIST ({root})"
    small = load(DatasetConfig(name="synthetic", val_size=200), device)
    reps = -(-max(n_train, 5000) // len(small.train))

    def tiled(split, n):
        return Split(split.x.repeat(reps, 1, 1, 1)[:n], split.y.repeat(reps)[:n])

    data = Data(tiled(small.train, n_train), tiled(small.val, 5000), small.test, small.num_classes)
    return data, f"synthetic 28x28 ({len(small.train)} images repeated)"


def time_epochs(neuron: str, backprop: str, device: torch.device, root, n_train: int, epochs: int, say) -> dict:
    """Train ``epochs`` epochs of the default run config through ``objectives.train`` and
    time each: training alone (samples/s) and with the validation pass."""
    data, source = epoch_data(root, n_train, device)
    cfg = config(neuron, backprop, device.type, epochs=epochs, early_stopping_patience=epochs)
    graph = "on" if device.type == "cuda" and cfg.training.cuda_graph else "off"
    say(f"# {neuron}/{backprop}, {len(data.train)} training images ({source}), batch {cfg.training.batch_size}, "
        f"{cfg.model.num_steps} steps, CUDA graph {graph}")
    rows = []

    def on_epoch(m):
        train_s = len(data.train) / m.train_samples_per_s
        rows.append({"epoch": m.epoch, "train_s": train_s, "samples_per_s": m.train_samples_per_s,
                     "epoch_s": m.seconds, "val_acc": m.val_acc})
        say(f"epoch {m.epoch}: training {train_s:6.2f} s ({m.train_samples_per_s:8.0f} samples/s), "
            f"with validation {m.seconds:6.2f} s, val {m.val_acc:.2%}", flush=True)

    train(cfg, data, on_epoch=on_epoch)
    return {"neuron": neuron, "backprop": backprop, "train_images": len(data.train), "data": source, "epochs": rows}


def machine(device: torch.device) -> dict:
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    info = {
        "cpu": cpu,
        "nproc": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    p.add_argument("--neurons", nargs="+", default=None, choices=list(NEURONS), help="default: all (--epoch: leaky)")
    p.add_argument("--backprops", nargs="+", default=None, choices=list(BACKPROPS), help="default: all (--epoch: bptt)")
    p.add_argument("--repeats", type=int, default=5, help="timed pairs per combination (default 5)")
    p.add_argument("--batches", type=int, default=2, help="batches per timed run (default 2)")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    p.add_argument("--data", default=None, help="folder holding MNIST/raw (default $SNN_STUDY_DATA)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.add_argument("--epoch", action="store_true",
                   help="instead of the side-by-side table: time whole epochs of objectives.train "
                        "(the first neuron and backprop given)")
    p.add_argument("--train-images", type=int, default=55000, help="--epoch: training images (default 55000)")
    p.add_argument("--epochs", type=int, default=2, help="--epoch: epochs to time (default 2)")
    p.add_argument("--runs", type=int, default=1,
                   help="--epoch: runs one after the other in this process, as a study worker trains trials "
                        "(default 1)")
    args = p.parse_args(argv)
    for name in ("repeats", "batches", "train_images", "epochs", "runs"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1, but got {getattr(args, name)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        p.error(f"--device {args.device}: CUDA is not available here")
    warnings.filterwarnings("ignore", category=DeprecationWarning)

    say = (lambda *a, **k: None) if args.json else print
    if args.epoch:
        info = machine(device)
        say(f"# {info['cpu']}, nproc {info['nproc']}, torch {info['torch']}, device {device}"
            + (f" ({info['gpu']})" if "gpu" in info else ""))
        neuron, backprop = (args.neurons or ["leaky"])[0], (args.backprops or ["bptt"])[0]
        runs = [time_epochs(neuron, backprop, device, mnist_root(args.data), args.train_images, args.epochs, say)
                for _ in range(args.runs)]
        if args.json:
            print(json.dumps({"machine": info, "device": str(device), "runs": runs}, indent=2))
        return 0

    batch_size = config("leaky", "bptt", device.type).training.batch_size
    data, source = batches(mnist_root(args.data), max(args.batches * args.repeats, 2), batch_size, device)
    out = {"machine": machine(device), "device": str(device), "data": source, "batch_size": batch_size,
           "repeats": args.repeats, "batches": args.batches, "results": []}
    say(f"# {out['machine']['cpu']}, nproc {out['machine']['nproc']}, torch {out['machine']['torch']} "
        f"({out['machine']['torch_threads']} threads), device {device}"
        + (f" ({out['machine']['gpu']})" if "gpu" in out["machine"] else ""))
    say(f"# data: {source}, batch {batch_size}, {args.repeats} pairs x {args.batches} batches\n")
    say(f"{'neuron':9} {'backprop':8} {'check':44} {'step loop':>10} {'fast':>10} {'fast/step':>9} "
        f"{'peak MiB step/fast':>19}")
    for neuron in args.neurons or NEURONS:
        for backprop in args.backprops or BACKPROPS:
            row = {"neuron": neuron, "backprop": backprop}
            row["check"] = check(neuron, backprop, device, data[0])
            if device.type == "cuda":
                row["check"]["graph_weight_diff"] = graph_check(neuron, backprop, device, data)
                row["check"]["ok"] = row["check"]["ok"] and row["check"]["graph_weight_diff"] <= GRAD_TOL
            row.update(time_pairs(neuron, backprop, device, data, args.repeats, args.batches))
            out["results"].append(row)
            c = row["check"]
            verdict = (f"{'ok' if c['ok'] else 'FAIL'} spikes {'=' if c['spikes_identical'] else '!='} "
                       f"grad {c['max_grad_diff']:.1e}"
                       + (f" graph {c['graph_weight_diff']:.0e}" if "graph_weight_diff" in c else ""))
            say(f"{neuron:9} {backprop:8} {verdict:44} {row['step_loop_samples_per_s']:10.1f} "
                f"{row['fast_samples_per_s']:10.1f} {row['ratio']:8.2f}x "
                f"{row['step_loop_peak_mib']:9.0f}/{row['fast_peak_mib']:.0f}", flush=True)
    reset_peak_rss()
    out["idle_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    say("\nsamples/s: median over pairs; fast/step: median of the paired ratios; peak MiB: "
        + ("CUDA allocator peak" if device.type == "cuda" else
           f"peak RSS of the process during each run (idle: {out['idle_rss_mib']:.0f} MiB)"))
    if args.json:
        print(json.dumps(out, indent=2))
    return 0 if all(r["check"]["ok"] for r in out["results"]) else 1


if __name__ == "__main__":
    sys.exit(main())
