"""Training throughput: the project's fast engine against the snntorch tutorial's step loop.

For each neuron model and backprop method, in one process, on the same initial
weights and the same batches:

(a) the snntorch tutorial: ``nn.Sequential(Conv2d, MaxPool2d, snn.<Neuron>(init_hidden=True), ...)``
    called once per time step, with truncation as ``snntorch.backprop`` does it
    (``utils.reset(net)`` per batch, ``<Neuron>.detach_hidden()`` after every window);
(b) ``objectives.train_batch`` with the default run config (engine ``fast``).

It first checks that both compute the same thing on one batch (SGD: spikes
identical, losses and every window's gradients within 1e-5), then times
training over ``--repeats`` pairs of runs of ``--batches`` batches each,
alternating which goes first so that drift in the machine's speed cancels, and
prints the median samples/s of each and the median of the paired ratios
fast / step loop.

    python benchmarks/throughput.py                      # every neuron x backprop, CPU
    python benchmarks/throughput.py --neurons leaky --backprops bptt rtrl --repeats 3
    python benchmarks/throughput.py --device cuda --json

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

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import snntorch.functional as SF  # noqa: E402
from snntorch import utils as snn_utils  # noqa: E402
from snntorch._neurons.neurons import SpikingNeuron  # noqa: E402

from objectives import (  # noqa: E402
    BACKPROPS,
    NEURONS,
    OPTIMIZERS,
    DatasetConfig,
    TrialConfig,
    build_model,
    load,
    train_batch,
)
from objectives._data import MNIST_FILES  # noqa: E402
from objectives._neurons import untrack  # noqa: E402

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
        self.grads.append(
            [torch.zeros_like(p) if p.grad is None else p.grad.detach().clone() for g in self.param_groups for p in g["params"]]
        )
        return super().step(closure)


# ----------------------------------------------------------------------------- set-up


def config(neuron: str, backprop: str, device: str) -> TrialConfig:
    """The default run config for this neuron and backprop method (engine fast)."""
    return TrialConfig.from_dict(
        {"model": {"neuron": neuron}, "training": {"backprop": backprop, "device": device, "engine": "fast"}}
    )


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


def time_pairs(neuron, backprop, device, data, repeats: int, n_batches: int) -> dict:
    """Median training samples/s of each contender over ``repeats`` alternating pairs."""
    cfg = config(neuron, backprop, device.type)
    torch.manual_seed(0)
    model = build_model(cfg).to(device)
    net = step_loop_net(model).to(device)
    opt_fast = OPTIMIZERS[cfg.training.optimizer](model.parameters(), cfg.training.lr)
    opt_step = OPTIMIZERS[cfg.training.optimizer](net.parameters(), cfg.training.lr)
    window = BACKPROPS[backprop](cfg)
    criterion = SF.ce_rate_loss()
    num_steps = cfg.model.num_steps

    def run_fast(bs):
        for x, y in bs:
            train_batch(model, x, y, opt_fast, cfg)

    def run_step(bs):
        for x, y in bs:
            step_loop_batch(net, x, y, opt_step, num_steps, window, criterion)

    runs = {"step_loop": run_step, "fast": run_fast}
    rates: dict[str, list[float]] = {name: [] for name in runs}
    peak: dict[str, float] = {name: 0.0 for name in runs}
    try:
        for name, run in runs.items():  # warm-up: allocator, oneDNN primitives, CUDA kernels
            run(data[:1])
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
    p.add_argument("--neurons", nargs="+", default=list(NEURONS), choices=list(NEURONS))
    p.add_argument("--backprops", nargs="+", default=list(BACKPROPS), choices=list(BACKPROPS))
    p.add_argument("--repeats", type=int, default=5, help="timed pairs per combination (default 5)")
    p.add_argument("--batches", type=int, default=2, help="batches per timed run (default 2)")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    p.add_argument("--data", default=None, help="folder holding MNIST/raw (default $SNN_STUDY_DATA)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = p.parse_args(argv)
    for name in ("repeats", "batches"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be at least 1, but got {getattr(args, name)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        p.error(f"--device {args.device}: CUDA is not available here")
    warnings.filterwarnings("ignore", category=DeprecationWarning)

    batch_size = config("leaky", "bptt", device.type).training.batch_size
    data, source = batches(mnist_root(args.data), max(args.batches * args.repeats, 2), batch_size, device)
    out = {"machine": machine(device), "device": str(device), "data": source, "batch_size": batch_size,
           "repeats": args.repeats, "batches": args.batches, "results": []}
    say = (lambda *a, **k: None) if args.json else print
    say(f"# {out['machine']['cpu']}, nproc {out['machine']['nproc']}, torch {out['machine']['torch']} "
        f"({out['machine']['torch_threads']} threads), device {device}"
        + (f" ({out['machine']['gpu']})" if "gpu" in out["machine"] else ""))
    say(f"# data: {source}, batch {batch_size}, {args.repeats} pairs x {args.batches} batches\n")
    say(f"{'neuron':9} {'backprop':8} {'check':32} {'step loop':>10} {'fast':>10} {'fast/step':>9} "
        f"{'peak MiB step/fast':>19}")
    for neuron in args.neurons:
        for backprop in args.backprops:
            row = {"neuron": neuron, "backprop": backprop}
            row["check"] = check(neuron, backprop, device, data[0])
            row.update(time_pairs(neuron, backprop, device, data, args.repeats, args.batches))
            out["results"].append(row)
            c = row["check"]
            verdict = (f"{'ok' if c['ok'] else 'FAIL'} spikes {'=' if c['spikes_identical'] else '!='} "
                       f"grad {c['max_grad_diff']:.1e}")
            say(f"{neuron:9} {backprop:8} {verdict:32} {row['step_loop_samples_per_s']:10.1f} "
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
