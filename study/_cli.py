# PYTHON_ARGCOMPLETE_OK: argcomplete's global completion completes a console script whose module says this
"""The ``snn-study`` command line: one table of subcommands, handlers that return an exit code.

Exit codes: 0 success, 1 a run that failed (diverged, crashed), 2 bad input
(one line naming the field, the value and what is allowed; nothing written),
130 interrupted (Ctrl-C), 143 stopped by SIGTERM.
"""

from __future__ import annotations

import argparse
import errno
import os
import re
import shlex
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ._yaml import YamlProblem, load, read

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(Exception):
    """Bad input found by a handler: printed as one line with the subcommand's name, exit 2."""


def parse_set(items: list[str]) -> dict[str, Any]:
    """``["model.neuron=alpha", "training.lr=0.001"]`` -> ``{"model.neuron": "alpha", "training.lr": 0.001}``.

    Values are read as YAML scalars or lists (:mod:`study._yaml`: YAML 1.2 numbers, bounded), so numbers,
    booleans, ``null`` and ``[12, 64]`` arrive typed.
    """
    from objectives import short_repr

    out = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key or any(not part for part in key.split(".")):
            raise UsageError(f"--set {short_repr(item)}: expected section.field=value, e.g. --set model.neuron=alpha")
        try:
            out[key] = load(raw) if raw else ""
        except YamlProblem as exc:
            raise UsageError(f"--set {short_repr(item)}: {exc}") from None
    return out


def read_yaml(path: str, what: str = "--config") -> dict[str, Any]:
    """A YAML mapping from ``path`` (:mod:`study._yaml`); a missing, unreadable, empty or malformed file, or one
    that is not UTF-8, is a usage error. An empty file is refused: ``{}`` asks for every default explicitly."""
    try:
        data = load(read(path))
    except OSError as exc:
        raise UsageError(f"{what} {path}: cannot read it ({exc.strerror})") from None
    except YamlProblem as exc:
        raise UsageError(f"{what} {path}: {exc}") from None
    if data is None:
        raise UsageError(f"{what} {path}: the file is empty; write {{}} in it to take every default, "
                         f"or leave out {what}")
    if not isinstance(data, dict):
        raise UsageError(f"{what} {path}: expected a mapping of sections, got {type(data).__name__}")
    return data


def _registry_help() -> str:
    from objectives import (
        BACKPROP_HELP,
        DATASET_NAMES,
        ENCODING_SPECS,
        GAINS,
        LOSS_SPECS,
        NEURON_SPECS,
        OPTIMIZER_NAMES,
        STEP_EVERY,
        SURROGATE_SCALES,
        SURROGATE_SPECS,
    )

    lines = ["registry keys:"]
    for field, registry in (
        ("model.neuron", NEURON_SPECS),
        ("model.surrogate", SURROGATE_SPECS),
        ("model.surrogate_scale", SURROGATE_SCALES),
        ("model.gain", GAINS),
        ("model.encoding", ENCODING_SPECS),
        ("training.backprop", BACKPROP_HELP),
        ("training.step_every", STEP_EVERY),
        ("training.loss", LOSS_SPECS),
        ("training.optimizer", OPTIMIZER_NAMES),
        ("dataset.name", DATASET_NAMES),
    ):
        lines.append(f"  {field:<22} {', '.join(registry)}")
    lines.append("backprop methods (training.backprop):")
    for name, what in BACKPROP_HELP.items():
        lines.append(f"  {name:<6} {what}")
    lines.append("model.gain: matched divides the input current by the neuron's DC gain (a constant input I settles")
    lines.append("  every neuron's membrane at I); raw is snntorch's arithmetic")
    lines.append("model.surrogate_scale: normalized gives every surrogate with a width derivative 1 at the threshold")
    lines.append("  and area 2 model.surrogate_width under it (a box's of that half-width); raw takes")
    lines.append("  model.surrogate_args")
    lines.append("surrogate parameters (model.surrogate_args; raw-scale defaults; [w]: set by the width when")
    lines.append("  normalized):")
    for name, spec in SURROGATE_SPECS.items():
        args = ", ".join(f"{k}={v:g}" + (" [w]" if k in spec.width_params else "") for k, v in spec.params.items())
        width = "" if spec.width is not None else "  (no width: the same under either scale)"
        lines.append(f"  {name:<28} {args or 'none'}{width}")
    return "\n".join(lines)


# ---- train -------------------------------------------------------------------------------


def _train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE", help="run config (YAML); a field left out takes its default (the "
                   "original code's network at the fair defaults)")
    p.add_argument("--set", metavar="KEY=VALUE", action="append", default=[],
                   help="override a field, e.g. model.surrogate=atan")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object with the results on the last line of stdout")
    p.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    p.add_argument("--save", metavar="PATH",
                   help="write the best-validation weights to PATH (a torch state dict for objectives.build_model, "
                        "as best --weights writes) and the run config beside it (PATH with the suffix .yaml)")


def _cmd_train(args: argparse.Namespace) -> int:
    from objectives import TrialConfig, apply_overrides

    from ._best import save_paths, save_run
    from ._limits import check_devices, device_shown, json_line
    from ._objectives import cost_line

    raw = read_yaml(args.config) if args.config else {}
    given = TrialConfig.from_dict(apply_overrides(raw, parse_set(args.set)))
    cfg = given.resolved()
    save = save_paths(args.save) if args.save is not None else None  # before training: a bad path wastes no run
    # torch only now: a config refused above is refused in the time Python takes to start
    from objectives import TrainingDiverged, layer_names, load, resolve_device, train

    check_devices([("training.device", cfg.training.device)])
    device = resolve_device(cfg.training.device)
    data = load(cfg.dataset, device)  # before any output: a missing dataset is one error line
    log = _Log(quiet=args.quiet)
    log.line(
        f"training {cfg.model.neuron}/{cfg.model.surrogate}/{cfg.training.backprop} on {cfg.dataset.name}, "
        f"device {device_shown(cfg.training.device)} ({cfg.training.epochs} epochs max, "
        f"patience {cfg.training.early_stopping_patience})"
    )

    def on_epoch(m):
        rates = " ".join(f"{r:.3f}" for r in m.spike_rates)
        log.line(
            f"epoch {m.epoch:>3}/{cfg.training.epochs}  loss {m.train_loss:.4f}  train {m.train_acc:6.2%}  "
            f"val {m.val_acc:6.2%}  spikes [{rates}]  {m.seconds:6.1f}s  {m.train_samples_per_s:6.0f} img/s"
        )

    try:
        result = train(cfg, data, on_epoch=on_epoch, on_batch=log.progress, keep_weights=save is not None)
    except TrainingDiverged as exc:
        print(f"snn-study train: {exc}", file=sys.stderr)
        return EXIT_FAILED
    summary = {
        "val_acc": result.val_acc,
        "test_acc": result.test_acc,
        "best_epoch": result.best_epoch,
        "epochs": result.epochs,
        "stopped_early": result.stopped_early,
        "seconds": round(result.seconds, 3),
        "train_samples_per_s": round(result.train_samples_per_s, 1),
        "spike_rates": dict(zip(layer_names(len(result.spike_rates)), result.spike_rates)),
        "n_params": result.n_params,
        "device": str(device),
        "config": cfg.to_dict(),
        "costs": result.costs.to_dict(),
        "val_costs": result.val_costs.to_dict(),
    }
    # the result on stdout, with --quiet too (`snn-study train ... > result.txt` keeps it); the progress on stderr
    print(f"best val {result.val_acc:.2%} (epoch {result.best_epoch})  test {result.test_acc:.2%}  "
          f"{result.epochs} epochs in {result.seconds:.0f}s")
    print(cost_line(result.costs))
    if save is not None and result.state_dict is not None:
        title = (f"# snn-study train: validation accuracy {result.val_acc:.4f} (epoch {result.best_epoch}), "
                 f"test accuracy {result.test_acc:.4f}\n")
        written = save_run(save, cfg, given.dataset.root, result.state_dict, title)
        print(f"saved {written[0]} and its config {written[1]}")
    if args.json:
        print(json_line(summary))
    return EXIT_OK


class _Log:
    """Progress lines on stderr; an in-place batch counter only where stderr is a terminal."""

    def __init__(self, quiet: bool = False):
        self.quiet = quiet
        self.tty = sys.stderr.isatty()

    def line(self, text: str) -> None:
        if not self.quiet:
            print(("\r\033[K" if self.tty else "") + text, file=sys.stderr, flush=True)

    def progress(self, done: int, total: int) -> None:
        if self.tty and not self.quiet and (done == total or done % 5 == 0):
            print(f"\r\033[K  batch {done}/{total}", end="", file=sys.stderr, flush=True)


# ---- run / _worker --------------------------------------------------------------------------


def _run_args(p: argparse.ArgumentParser) -> None:
    from storage import DEFAULT_URL

    from ._launch import LAUNCHER_NAMES

    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", metavar="FILE", help="study config (YAML)")
    _offer_presets(source.add_argument("--preset", metavar="NAME",
                                       help="a built-in study config: quick, mnist-grid, mnist-tpe"))
    p.add_argument("--storage", metavar="URL", help=f"SQLAlchemy URL (default: the config's, else {DEFAULT_URL})")
    p.add_argument("--study-name", metavar="NAME", help="study name (default: the config's)")
    p.add_argument("--n-trials", type=int, metavar="N", help="finished trials to reach")
    p.add_argument("--workers", type=int, metavar="N", help="worker processes on this machine")
    p.add_argument("--devices", metavar="LIST", help="spread the workers over devices, e.g. cuda:0,cuda:1")
    p.add_argument("--set", metavar="KEY=VALUE", action="append", default=[],
                   help="override a field, e.g. study.sampler=random, search.neuron=[leaky,alpha], training.epochs=3")
    p.add_argument("--quiet", action="store_true", help="log lines only: no progress bar, no per-epoch lines")
    p.add_argument("--launcher", choices=LAUNCHER_NAMES,
                   help="where the workers run: local processes (default), or one Slurm job array (launcher section)")
    p.add_argument("--wait", action="store_true", help="with a launcher: follow the study until the job ends and "
                   "exit with its status (0: the study is complete)")


def _study_config(args: argparse.Namespace, compare: bool = False):
    """The study config of ``--config`` or ``--preset`` with the flags' overrides; ``compare``: with a ``compare``
    section (its defaults where the config has none)."""
    from ._api import study_config
    from ._config import load_preset

    raw = read_yaml(args.config) if args.config else load_preset(args.preset)
    if compare and raw.get("compare") is None:
        raw = {**raw, "compare": {}}
    overrides = parse_set(args.set)
    for flag, path in (("storage", "study.storage"), ("study_name", "study.name"), ("n_trials", "study.n_trials"),
                       ("workers", "study.workers"), ("launcher", "launcher.name")):
        value = getattr(args, flag)
        if value is not None:
            overrides[path] = value
    if args.devices:
        overrides["study.devices"] = [d.strip() for d in args.devices.split(",") if d.strip()]
    return study_config(raw, overrides)


def results_table(url: str, name: str) -> str:
    """What a finished ``run`` prints: each combination's trials by state, its best validation accuracy and the
    test accuracy of that trial, best first (a combination with no complete trial last)."""
    from reports import load_study_data, summary_rows, trial_rows

    rows = summary_rows(trial_rows(load_study_data(url, name))[0])
    rows.sort(key=lambda r: (r["best_val_acc"] is None, -(r["best_val_acc"] or 0.0)))
    labels = [" / ".join(str(r[k]) for k in ("neuron", "surrogate", "backprop")) for r in rows]
    width = max([len("combination"), *map(len, labels)])

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{value:.2%}"

    lines = [f"{'combination':<{width}}  complete  pruned  failed  best val  its test"]
    lines += [f"{label:<{width}}  {r['finished']:>8}  {r['pruned']:>6}  {r['failed']:>6}  {pct(r['best_val_acc']):>8}"
              f"  {pct(r['best_test_acc']):>8}" for label, r in zip(labels, rows)]
    return "\n".join(lines)


def _cmd_run(args: argparse.Namespace) -> int:
    from storage import shown_url

    from ._api import start

    _interruptible()
    cfg = _study_config(args)
    code = start(cfg, quiet=args.quiet, debug=args.debug, wait=args.wait)
    if code == 0 and cfg.launcher.name == "local":
        print(results_table(cfg.study.storage, cfg.study.name))
        storage, name = shlex.quote(shown_url(cfg.study.storage)), shlex.quote(cfg.study.name)
        print(f"done. browse the trials:  snn-study dashboard --storage {storage}\n"
              f"      the report:         snn-study report --study {name} --storage {storage} --out report/\n"
              f"      export the best:    snn-study best --study {name} --storage {storage} --out best/")
    return code


def _worker_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--parent", type=int, required=True, help=argparse.SUPPRESS)  # the study config comes on stdin
    p.add_argument("--index", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--device", default=None, help=argparse.SUPPRESS)
    p.add_argument("--quiet", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--stage", default=None, help=argparse.SUPPRESS)


def _interruptible() -> None:
    """Ctrl-C and SIGTERM fail the running trial cleanly (``_spawn.handle_stop_signals``)."""
    from ._spawn import handle_stop_signals

    handle_stop_signals()


def _cmd_worker(args: argparse.Namespace) -> int:
    import optuna

    _interruptible()
    from ._runner import worker_main

    # our own per-trial lines say how each trial ended; Optuna would repeat them with tracebacks
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    return worker_main(args.parent, args.index, args.device, args.quiet, args.debug, args.stage)


# ---- best / list / dashboard ---------------------------------------------------------------


def _storage_arg(p: argparse.ArgumentParser) -> None:
    from storage import DEFAULT_URL

    p.add_argument("--storage", metavar="URL", default=DEFAULT_URL, help=f"SQLAlchemy URL (default {DEFAULT_URL})")


def _best_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--study", required=True, metavar="NAME",
                   help="study name (with its per-combination studies NAME::...)")
    _storage_arg(p)
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the YAML files")
    p.add_argument("--by", metavar="FIELDS",
                   help="group by these fields (default neuron,surrogate,backprop); a study of several objectives "
                        "exports its Pareto set instead: pareto-<rank>-<each objective's value>.yaml")
    p.add_argument("--weights", action="store_true",
                   help="also write each trial's trained weights beside its config (<name>.pt, a torch state dict; "
                        "in Python: storage.load_trial)")
    _artifacts_arg(p)


def _cmd_best(args: argparse.Namespace) -> int:
    from objectives import ConfigError
    from reports import ranking_lines
    from storage import open_storage, study_names

    from ._best import Weights, export, parse_by
    from ._compare import comparison_names, comparison_result
    from ._pareto import export_pareto, several_objectives

    by = parse_by(args.by or "neuron,surrogate,backprop")
    storage = open_storage(args.storage, read_only=True, heartbeat_interval=None)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ConfigError("--out", str(out), "is a file; give a folder")
    weights = Weights(args.storage, args.artifacts, copy=args.weights)
    comparison = None
    if several_objectives(storage, args.study):
        if args.by is not None:
            raise ConfigError("--by", args.by, "groups the best trials of a study of one objective; a study of "
                              "several objectives exports its Pareto set: leave --by out")
        exported = export_pareto(storage, args.study, out, weights)
    else:
        is_comparison = args.study in comparison_names(study_names(storage, args.study))
        comparison = comparison_result(args.storage, args.study) if is_comparison else None
        exported = export(storage, args.study, out, weights, by, comparison)
    for path in exported.written:
        print(path)
    for line in exported.skipped:
        print(f"snn-study best: skipped {line}", file=sys.stderr)
    if comparison is not None:
        print("\n".join(ranking_lines(comparison)))
    return EXIT_OK


def _list_args(p: argparse.ArgumentParser) -> None:
    _storage_arg(p)
    p.add_argument("--format", default="table", choices=["table", "json"],
                   help="table (default), or json: one list of the studies, each with its trial counts by state, "
                        "best value (null for a study of several objectives) and pareto_size (null for one)")


def _cmd_list(args: argparse.Namespace) -> int:
    from objectives import parse_study_name
    from storage import list_studies, shown_url

    from ._limits import json_line
    from ._slurm import launch_lines

    rows = list_studies(args.storage)
    for r in rows:
        r["pareto_size"] = None
        if len(r["directions"]) > 1:
            from ._pareto import pareto_size  # the reports package, only where there is a Pareto set to count

            r["pareto_size"] = pareto_size(args.storage, r["name"])
    if args.format == "json":
        print(json_line([{**r, "datetime_start": r["datetime_start"] and r["datetime_start"].isoformat()}
                         for r in rows]))
        return EXIT_OK
    if not rows:
        print(f"no studies in {shown_url(args.storage)}")
        return EXIT_OK
    states = ("complete", "pruned", "fail", "interrupted", "running", "waiting")
    width = max(len(r["name"]) for r in rows)
    print(f"{'study':<{width}}  " + "  ".join(f"{s:>8}" for s in states) + "      best")
    for r in rows:
        best = f"{r['best_value']:.4f}" if r["best_value"] is not None else "-"
        if r["pareto_size"] is not None:  # no single best: the size of its Pareto set
            best = f"{r['pareto_size']} pareto"
        elif r["directions"] != ["MAXIMIZE"]:  # another tool's study: its best is not an accuracy
            best += " (" + ",".join(d.lower()[:3] for d in r["directions"]) + ")"
        print(f"{r['name']:<{width}}  " + "  ".join(f"{r[s]:>{max(8, len(s))}}" for s in states) + f"  {best:>8}")
    names = [r["name"] for r in rows]
    comparisons: list[str] = []
    if any((cell := parse_study_name(n)) is not None and cell.stage for n in names):
        from ._compare import comparison_lines  # the statistics, only for a storage that holds a comparison

        comparisons = comparison_lines(args.storage, names)
    for line in [*launch_lines(args.storage), *comparisons]:
        print(line)
    return EXIT_OK


def _artifacts_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--artifacts", metavar="DIR", help="folder of the weights artifacts (default: the study's)")


def _dashboard_args(p: argparse.ArgumentParser) -> None:
    _storage_arg(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    _artifacts_arg(p)
    p.add_argument("--writable", action="store_true",
                   help="let the dashboard change the storage (notes, tell, delete a study and its artifacts). "
                        "It has no login: any local process could then delete a study. Default: read-only")


def _cmd_dashboard(args: argparse.Namespace) -> int:
    import socket

    import optuna

    from objectives import ConfigError
    from storage import open_storage

    from ._serve import serve

    storage = open_storage(args.storage, create=False, heartbeat_interval=None)
    if not 1 <= args.port <= 65535:
        raise ConfigError("--port", args.port, "a port is 1 to 65535")
    with socket.socket() as probe:
        try:
            probe.bind((args.host, args.port))
        except OSError as exc:
            in_use = exc.errno == errno.EADDRINUSE
            flag, value = ("--port", args.port) if in_use else ("--host", args.host)
            raise ConfigError(flag, value, f"cannot listen on {args.host}:{args.port} ({exc.strerror}); "
                              f"choose another with {flag}") from None
    artifacts = _dashboard_artifacts(args, storage)
    missing = "" if artifacts.is_dir() else ", missing: no weights to download"
    mode = "writable: any local process can delete a study" if args.writable else "read-only"
    print(f"optuna-dashboard on http://{args.host}:{args.port}/ (artifacts: {artifacts}{missing}), {mode}; "
          "Ctrl-C stops it", file=sys.stderr, flush=True)
    serve(storage, args.host, args.port, optuna.artifacts.FileSystemArtifactStore(artifacts), writable=args.writable)
    return EXIT_OK


def _dashboard_artifacts(args: argparse.Namespace, storage) -> Path:
    """``--artifacts``, else the folder the storage's studies saved their weights in (``study.artifacts``), else
    the storage's default; the dashboard only reads, so nothing is created."""
    from objectives import ConfigError, saved_artifacts
    from storage import artifact_dir

    if args.artifacts is not None:
        if not Path(args.artifacts).is_dir():
            why = "no such folder; give the folder the weights were saved in"
            raise ConfigError("--artifacts", args.artifacts, why)
        return Path(args.artifacts)
    named = {folder for s in storage.get_all_studies() if (folder := saved_artifacts(s.user_attrs)) is not None}
    if len(named) > 1:
        print(f"snn-study dashboard: the studies save weights in {len(named)} folders ({', '.join(sorted(named))}); "
              "showing the default's, pass --artifacts DIR for another", file=sys.stderr)
    return artifact_dir(args.storage, named.pop() if len(named) == 1 else None)


def _report_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--study", required=True, metavar="NAME",
                   help="study name (with its per-combination studies NAME::...)")
    _storage_arg(p)
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the report (created)")
    p.add_argument("--format", default="html", metavar="FORMATS",
                   help="html (default), png, or html,png. PNG needs kaleido: without it, png alone exits 2 and "
                        "html,png writes the HTML with a warning")
    p.add_argument("--layout", default="flat", choices=["flat", "per-neuron"],
                   help="per-neuron also writes the original code's <neuron>/BP_results/<surrogate>.csv and "
                        "<neuron>/SG_results/<backprop>.csv")
    _artifacts_arg(p)
    p.add_argument("--no-dashboard", action="store_true",
                   help="do not save the note and key figures into the study for optuna-dashboard "
                        "(then the database is only read)")
    p.add_argument("--force", action="store_true",
                   help="replace files in --out that no report wrote (refused without it)")
    p.add_argument("--open", action="store_true",
                   help="open index.html in this machine's web browser ($BROWSER, else the system's) when written")


def _cmd_report(args: argparse.Namespace) -> int:
    import optuna

    from reports import export, format_comparison, print_report

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    report = export(args.storage, args.study, args.out, formats=args.format, layout=args.layout,
                    dashboard=not args.no_dashboard, artifacts=args.artifacts, force=args.force)
    if report.comparison is not None:
        print(format_comparison(report.comparison))
    print_report(report)
    index = report.out / "index.html"
    if args.open and "index.html" in report.files:
        import webbrowser

        if not webbrowser.open(index.resolve().as_uri()):  # a server, or a session with no display
            print(f"snn-study report: no web browser here to open it; open {index} where there is one",
                  file=sys.stderr)
    return EXIT_OK


# ---- compare -------------------------------------------------------------------------------


def _compare_args(p: argparse.ArgumentParser) -> None:
    from storage import DEFAULT_URL

    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", metavar="FILE", help="study config (YAML) with a compare section (or its defaults)")
    _offer_presets(source.add_argument("--preset", metavar="NAME",
                                       help="a built-in comparison: compare-quick, mnist-compare"))
    source.add_argument("--study", metavar="NAME", help="with --report: an existing comparison, read without running")
    p.add_argument("--report", action="store_true",
                   help="print the ranking of the comparison --study names (and write it with --out)")
    p.add_argument("--out", metavar="DIR", help="also write the report there: comparison.csv, comparison.json, "
                                                "index.html with the forest plot, and the study's tables")
    p.add_argument("--storage", metavar="URL", help=f"SQLAlchemy URL (default: the config's, else {DEFAULT_URL})")
    p.add_argument("--study-name", metavar="NAME", help="comparison name (default: the config's study.name)")
    p.add_argument("--workers", type=int, metavar="N", help="worker processes on this machine (both stages)")
    p.add_argument("--devices", metavar="LIST", help="spread the workers over devices, e.g. cuda:0,cuda:1")
    p.add_argument("--set", metavar="KEY=VALUE", action="append", default=[],
                   help="override a field, e.g. compare.seeds=3, compare.trials_per_cell=4, training.epochs=3")
    p.add_argument("--quiet", action="store_true", help="log lines only: no progress bar, no per-epoch lines")
    p.add_argument("--no-dashboard", action="store_true", help="with --out: no note or figures into the studies")
    p.set_defaults(n_trials=None, launcher=None)


def _compare_help() -> str:
    from ._stages import DEFAULT_SEEDS, METRICS, CompareSettings

    d = CompareSettings()
    return "\n".join([
        "the compare section of a study config (every field optional):",
        "  compare:",
        f"    trials_per_cell: {d.trials_per_cell:<5} # stage tune: trials every cell gets from study.sampler, pruned "
        "only within the cell",
        f"    seeds: {DEFAULT_SEEDS:<15} # stage replicate: a count n (training.seed+1 .. +n) or a list, the same in "
        "every cell",
        f"    alpha: {d.alpha:<15} # level of the paired t-tests (Holm-corrected) and 1 - confidence of the intervals",
        f"    metric: {d.metric:<14} # what is ranked: {', '.join(METRICS)} of each replicate",
        "stage tune: <name>::tune::<neuron>/<surrogate>/<backprop>, stage replicate: <name>::replicate::<cell>.",
        "The same command again resumes; --study NAME --report prints the ranking of a comparison.",
        "",
        _registry_help(),
    ])


def _cmd_compare(args: argparse.Namespace) -> int:
    import optuna

    from objectives import ConfigError
    from reports import export, format_comparison, print_report
    from storage import DEFAULT_URL, open_storage, shown_url

    from ._api import check_datasets
    from ._compare import compare, comparison_result
    from ._limits import check_machine

    if args.study is not None or args.report:
        if args.study is None or not args.report:
            raise UsageError("--study NAME --report go together: they print an existing comparison without running")
        url, name = args.storage or DEFAULT_URL, args.study
    else:
        _interruptible()
        cfg = _study_config(args, compare=True)
        if cfg.launcher.name != "local":  # its stages run one after the other, each waiting for the last
            raise ConfigError("launcher.name", cfg.launcher.name,
                              "snn-study compare runs its workers on this machine; allowed: local")
        check_machine(cfg)
        check_datasets(cfg)
        open_storage(cfg.study.storage, heartbeat_interval=None)  # a bad or unreachable storage: exit 2 first
        optuna.logging.set_verbosity(optuna.logging.ERROR)
        code = compare(cfg, quiet=args.quiet, debug=args.debug)
        if code != 0:
            return code
        url, name = cfg.study.storage, cfg.study.name
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    print(format_comparison(comparison_result(url, name)))
    if args.out is not None:
        print_report(export(url, name, args.out, dashboard=not args.no_dashboard))
    else:
        shown = shlex.quote(shown_url(url))
        print(f"the report (forest plot, CSV, JSON): snn-study compare --study {shlex.quote(name)} --report "
              f"--storage {shown} --out DIR", file=sys.stderr)
    return EXIT_OK


# ---- the table ---------------------------------------------------------------------------

COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {
    "run": ("run (or resume) a study over neuron x surrogate x backprop", _run_args, _cmd_run),
    "compare": ("compare every neuron x surrogate x backprop with equal tuning and repeated seeds (or resume)",
                _compare_args, _cmd_compare),
    "train": ("train one configuration (no study)", _train_args, _cmd_train),
    "best": ("export the best configuration of each group as a run config", _best_args, _cmd_best),
    "list": ("list the studies in a storage", _list_args, _cmd_list),
    "dashboard": ("browse a storage's studies in optuna-dashboard", _dashboard_args, _cmd_dashboard),
    "report": ("write a study's CSV tables, Plotly figures and index.html", _report_args, _cmd_report),
    "_worker": (argparse.SUPPRESS, _worker_args, _cmd_worker),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="snn-study", description="Hyperparameter-optimization studies for convolutional spiking neural networks."
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument("--version", action="version", version=f"snn-study {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (help_text, configure, handler) in COMMANDS.items():
        listed: dict[str, Any] = {"help": help_text} if help_text != argparse.SUPPRESS else {}  # _worker: unlisted
        p = sub.add_parser(
            name,
            **listed,
            description=help_text,
            epilog=_compare_help() if name == "compare" else _registry_help() if name in ("train", "run") else None,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
        configure(p)
        p.set_defaults(handler=handler, subparser=p)
    sub.choices = _Offered(sub.choices, hidden={n for n, (h, _, _) in COMMANDS.items() if h == argparse.SUPPRESS})
    return parser


class _Offered(dict):
    """The subcommands for argparse: every one is accepted, but an unlisted one (``_worker``) is never offered
    in a usage error's "choose from" list (argparse lists what iterating this dict gives) nor by shell completion
    (argcomplete lists its keys)."""

    def __init__(self, commands: dict[str, Any], hidden: set[str]):
        super().__init__(commands)
        self.hidden = hidden

    def __iter__(self):
        return (name for name in super().__iter__() if name not in self.hidden)

    def keys(self):
        return list(self)


def _offer_presets(action: argparse.Action) -> None:
    """Shell completion (argcomplete, which reads an action's ``completer``) offers the presets' names."""

    def presets(**_: Any) -> tuple[str, ...]:
        from ._config import PRESETS

        return PRESETS

    action.completer = presets  # type: ignore[attr-defined]


def _version() -> str:
    """The installed distribution's version (its package metadata)."""
    from importlib import metadata

    try:
        return metadata.version("snn-study")
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed: pip install -e .)"


#: a Hydra-style override (``training.epochs=3``, ``+model.beta=0.9``): what ``--set`` takes
_OVERRIDE = re.compile(r"^[+~]{0,2}[A-Za-z_][\w-]*(\.[\w-]+)+=")


def _stray_override(argv: list[str]) -> tuple[str, str] | None:
    """``(command, token)`` for the first ``section.field=value`` written without ``--set`` before it, for a
    command that takes ``--set``; ``None`` when there is none."""
    command = next((a for a in argv if a in COMMANDS), None)
    if command is None or command not in ("run", "train", "compare"):
        return None
    for before, token in zip(["", *argv], argv):
        if _OVERRIDE.match(token) and before != "--set":
            return command, token
    return None


def _complete(parser: argparse.ArgumentParser) -> None:
    """Answer a shell's completion request and exit, where argcomplete is installed (it is optional: ``eval
    "$(register-python-argcomplete snn-study)"`` turns completion on)."""
    try:
        import argcomplete
    except ImportError:
        return
    argcomplete.autocomplete(parser)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``snn-study`` console script; returns the exit code."""
    from objectives import ConfigError

    argv = sys.argv[1:] if argv is None else argv
    stray = _stray_override(argv)
    if stray is not None:  # argparse would say only "unrecognized arguments"
        command, token = stray
        print(f"snn-study {command}: error: {token}: overrides are given with --set, as in --set "
              f"{shlex.quote(token.lstrip('+~'))}", file=sys.stderr)
        return EXIT_USAGE
    parser = build_parser()
    if "_ARGCOMPLETE" in os.environ:  # a shell asks for completions: only then is argcomplete imported (start-up)
        _complete(parser)
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return args.handler(args)
    except (UsageError, ConfigError) as exc:
        if args.debug:
            traceback.print_exc()
        print(f"snn-study {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as exc:
        from ._spawn import exit_code

        print(f"\nsnn-study {args.command}: interrupted", file=sys.stderr)
        return exit_code(exc)
