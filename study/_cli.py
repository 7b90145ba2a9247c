"""The ``snn-study`` command line: one table of subcommands, handlers that return an exit code.

Exit codes: 0 success, 1 a run that failed (diverged, crashed), 2 bad input
(one line naming the field, the value and what is allowed; nothing written),
130 interrupted.
"""

from __future__ import annotations

import argparse
import errno
import json
import signal
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(Exception):
    """Bad input found by a handler: printed as one line with the subcommand's name, exit 2."""


def parse_set(items: list[str]) -> dict[str, Any]:
    """``["model.neuron=alpha", "training.lr=0.001"]`` -> ``{"model.neuron": "alpha", "training.lr": 0.001}``.

    Values are read as YAML scalars or lists, so numbers, booleans, ``null`` and
    ``[12, 64]`` arrive typed.
    """
    out = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key or any(not part for part in key.split(".")):
            raise UsageError(f"--set {item!r}: expected section.field=value, e.g. --set model.neuron=alpha")
        try:
            out[key] = yaml.safe_load(raw) if raw else ""
        except yaml.YAMLError:
            raise UsageError(f"--set {item!r}: the value is not valid YAML") from None
    return out


def read_yaml(path: str, what: str = "--config") -> dict[str, Any]:
    """A YAML mapping from ``path`` (safe loader); a missing, unreadable or malformed file is a usage error."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise UsageError(f"{what} {path}: cannot read it ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise UsageError(f"{what} {path}: not valid YAML{where}") from None
    if data is None:
        return {}
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
    lines.append("  and 1/2 at model.surrogate_width (its half-width at half maximum); raw takes model.surrogate_args")
    lines.append("surrogate parameters (model.surrogate_args; raw-scale defaults; [w]: set by the width when")
    lines.append("  normalized):")
    for name, spec in SURROGATE_SPECS.items():
        args = ", ".join(f"{k}={v:g}" + (" [w]" if k in spec.width_params else "") for k, v in spec.params.items())
        width = "" if spec.width is not None else "  (no width: the same under either scale)"
        lines.append(f"  {name:<28} {args or 'none'}{width}")
    return "\n".join(lines)


# ---- train -------------------------------------------------------------------------------


def _train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE", help="run config (YAML); every field defaults to the seed's value")
    p.add_argument("--set", metavar="KEY=VALUE", action="append", default=[],
                   help="override a field, e.g. model.surrogate=atan")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object with the results on the last line of stdout")
    p.add_argument("--quiet", action="store_true", help="no per-epoch lines")


def _cmd_train(args: argparse.Namespace) -> int:
    from objectives import TrainingDiverged, TrialConfig, apply_overrides, layer_names, load, resolve_device, train

    raw = read_yaml(args.config) if args.config else {}
    cfg = TrialConfig.from_dict(apply_overrides(raw, parse_set(args.set))).resolved()
    device = resolve_device(cfg.training.device)
    data = load(cfg.dataset, device)  # before any output: a missing dataset is one error line
    log = _Log(quiet=args.quiet)
    log.line(
        f"training {cfg.model.neuron}/{cfg.model.surrogate}/{cfg.training.backprop} on {cfg.dataset.name} "
        f"({cfg.training.epochs} epochs max, patience {cfg.training.early_stopping_patience})"
    )

    def on_epoch(m):
        rates = " ".join(f"{r:.3f}" for r in m.spike_rates)
        log.line(
            f"epoch {m.epoch:>3}/{cfg.training.epochs}  loss {m.train_loss:.4f}  train {m.train_acc:6.2%}  "
            f"val {m.val_acc:6.2%}  spikes [{rates}]  {m.seconds:6.1f}s  {m.train_samples_per_s:6.0f} img/s"
        )

    try:
        result = train(cfg, data, on_epoch=on_epoch, on_batch=log.progress)
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
    }
    log.line(
        f"best val {result.val_acc:.2%} (epoch {result.best_epoch})  test {result.test_acc:.2%}  "
        f"{result.epochs} epochs in {result.seconds:.0f}s"
    )
    if args.json:
        print(json.dumps(summary))
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

    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", metavar="FILE", help="study config (YAML)")
    source.add_argument("--preset", metavar="NAME", help="a built-in study config: quick, mnist-grid, mnist-tpe")
    p.add_argument("--storage", metavar="URL", help=f"SQLAlchemy URL (default: the config's, else {DEFAULT_URL})")
    p.add_argument("--study-name", metavar="NAME", help="study name (default: the config's)")
    p.add_argument("--n-trials", type=int, metavar="N", help="finished trials to reach")
    p.add_argument("--workers", type=int, metavar="N", help="worker processes on this machine")
    p.add_argument("--devices", metavar="LIST", help="spread the workers over devices, e.g. cuda:0,cuda:1")
    p.add_argument("--set", metavar="KEY=VALUE", action="append", default=[],
                   help="override a field, e.g. study.sampler=random, search.neuron=[leaky,alpha], training.epochs=3")
    p.add_argument("--quiet", action="store_true", help="log lines only: no progress bar, no per-epoch lines")


def _study_config(args: argparse.Namespace):
    from objectives import apply_overrides

    from ._config import StudyConfig, load_preset

    raw = read_yaml(args.config) if args.config else load_preset(args.preset)
    overrides = parse_set(args.set)
    for flag, path in (("storage", "study.storage"), ("study_name", "study.name"), ("n_trials", "study.n_trials"),
                       ("workers", "study.workers")):
        value = getattr(args, flag)
        if value is not None:
            overrides[path] = value
    if args.devices:
        overrides["study.devices"] = [d.strip() for d in args.devices.split(",") if d.strip()]
    # search keys may contain dots (search.model.beta): only the first dot splits off the section
    search = {k.split(".", 1)[1]: v for k, v in overrides.items() if k.startswith("search.")}
    raw = apply_overrides(raw, {k: v for k, v in overrides.items() if not k.startswith("search.")})
    if search:
        raw["search"] = {**(raw.get("search") or {}), **search}
    return StudyConfig.from_dict(raw)


def _cmd_run(args: argparse.Namespace) -> int:
    import optuna

    from storage import open_storage

    from ._runner import run

    _interruptible()
    cfg = _study_config(args)
    _check_datasets(cfg)
    # a bad or unreachable storage is a usage error before anything starts
    open_storage(cfg.study.storage, heartbeat_interval=None)
    # our own per-trial lines say how each trial ended; Optuna would repeat them with tracebacks
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    excluded = cfg.search.excluded()
    if excluded:
        # first, one line: the combinations no trial runs, and why (the run config refuses them)
        print("snn-study run: leaving out the combinations that cannot learn by construction: "
              + "; ".join(f"{which} ({why})" for which, why in excluded), file=sys.stderr)
    studies = cfg.studies()
    total = sum(cfg.target(s) for _, s in studies)
    print(f"study {cfg.study.name!r}: {len(studies)} stud{'y' if len(studies) == 1 else 'ies'}, {total} trials, "
          f"sampler {cfg.study.sampler}, pruner {cfg.study.pruner.name}, {cfg.study.workers} worker(s), "
          f"storage {cfg.study.storage}", file=sys.stderr)
    code = run(cfg, quiet=args.quiet, debug=args.debug)
    if code == 0:
        storage = cfg.study.storage
        print(f"done. browse the trials:  snn-study dashboard --storage {storage}\n"
              f"      export the best:    snn-study best --study {cfg.study.name} --storage {storage} --out best/")
    return code


def _check_datasets(cfg) -> None:
    """Read every dataset the study can use once, before the storage is touched: a dataset
    missing offline is a usage error that writes nothing."""
    from objectives import load

    from ._space import FIELDS

    names = cfg.search.choices(FIELDS["dataset"])
    for name in names:
        load(cfg.search.base.replace(**{"dataset.name": name}).dataset)


def _worker_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--spec", required=True, help=argparse.SUPPRESS)
    p.add_argument("--index", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--device", default=None, help=argparse.SUPPRESS)
    p.add_argument("--quiet", action="store_true", help=argparse.SUPPRESS)


def _interruptible() -> None:
    """Ctrl-C (SIGINT) raises KeyboardInterrupt, which fails the running trial cleanly.

    A shell starts background commands with SIGINT ignored, and Python keeps an
    ignored SIGINT ignored: ``kill -INT`` would then do nothing to a study
    started with ``&``.
    """
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _cmd_worker(args: argparse.Namespace) -> int:
    import optuna

    _interruptible()
    from ._runner import worker_main

    # our own per-trial lines say how each trial ended; Optuna would repeat them with tracebacks
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    return worker_main(args.spec, args.index, args.device, args.quiet, args.debug)


# ---- best / list / dashboard ---------------------------------------------------------------


def _storage_arg(p: argparse.ArgumentParser) -> None:
    from storage import DEFAULT_URL

    p.add_argument("--storage", metavar="URL", default=DEFAULT_URL, help=f"SQLAlchemy URL (default {DEFAULT_URL})")


def _best_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--study", required=True, metavar="NAME",
                   help="study name (with its per-combination studies NAME::...)")
    _storage_arg(p)
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the YAML files")
    p.add_argument("--by", default="neuron,surrogate,backprop", metavar="FIELDS",
                   help="group by these fields (default neuron,surrogate,backprop)")


def _cmd_best(args: argparse.Namespace) -> int:
    from objectives import ConfigError
    from storage import open_storage

    from ._best import export, parse_by

    by = parse_by(args.by)
    storage = open_storage(args.storage, create=False, heartbeat_interval=None)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ConfigError("--out", str(out), "is a file; give a folder")
    written = export(storage, args.study, out, by)
    for path in written:
        print(path)
    return EXIT_OK


def _list_args(p: argparse.ArgumentParser) -> None:
    _storage_arg(p)


def _cmd_list(args: argparse.Namespace) -> int:
    from storage import list_studies

    rows = list_studies(args.storage)
    if not rows:
        print(f"no studies in {args.storage}")
        return EXIT_OK
    states = ("complete", "pruned", "fail", "running", "waiting")
    width = max(len(r["name"]) for r in rows)
    print(f"{'study':<{width}}  " + "  ".join(f"{s:>8}" for s in states) + "      best")
    for r in rows:
        best = f"{r['best_value']:.4f}" if r["best_value"] is not None else "-"
        print(f"{r['name']:<{width}}  " + "  ".join(f"{r[s]:>8}" for s in states) + f"  {best:>8}")
    return EXIT_OK


def _artifacts_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--artifacts", metavar="DIR", help="folder of the weights artifacts (default: the study's)")


def _dashboard_args(p: argparse.ArgumentParser) -> None:
    _storage_arg(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    _artifacts_arg(p)


def _cmd_dashboard(args: argparse.Namespace) -> int:
    import socket

    import optuna
    import optuna_dashboard

    from objectives import ConfigError
    from storage import open_storage

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
    print(f"optuna-dashboard on http://{args.host}:{args.port}/ (artifacts: {artifacts}{missing}); Ctrl-C stops it",
          file=sys.stderr, flush=True)
    optuna_dashboard.run_server(storage, host=args.host, port=args.port,
                                artifact_store=optuna.artifacts.FileSystemArtifactStore(artifacts))
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
                   help="per-neuron also writes the seed's <neuron>/BP_results/<surrogate>.csv and "
                        "<neuron>/SG_results/<backprop>.csv")
    _artifacts_arg(p)
    p.add_argument("--no-dashboard", action="store_true",
                   help="do not save the note and key figures into the study for optuna-dashboard "
                        "(then the database is only read)")


def _cmd_report(args: argparse.Namespace) -> int:
    import optuna

    from reports import export, print_report

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    report = export(args.storage, args.study, args.out, formats=args.format, layout=args.layout,
                    dashboard=not args.no_dashboard, artifacts=args.artifacts)
    print_report(report)
    return EXIT_OK


# ---- the table ---------------------------------------------------------------------------

COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {
    "run": ("run (or resume) a study over neuron x surrogate x backprop", _run_args, _cmd_run),
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
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (help_text, configure, handler) in COMMANDS.items():
        listed: dict[str, Any] = {"help": help_text} if help_text != argparse.SUPPRESS else {}  # _worker: unlisted
        p = sub.add_parser(
            name,
            **listed,
            description=help_text,
            epilog=_registry_help() if name in ("train", "run") else None,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
        configure(p)
        p.set_defaults(handler=handler, subparser=p)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``snn-study`` console script; returns the exit code."""
    from objectives import ConfigError

    parser = build_parser()
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
    except KeyboardInterrupt:
        print(f"\nsnn-study {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
