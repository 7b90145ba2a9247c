"""Bad input, every subcommand: exit 2, one line on stderr naming the problem, nothing written.

One table, one real subprocess per row. Each row runs in its own folder holding a
copy of a finished study database (and is the command's working folder, so that
relative defaults land there too); the folder's listing and every file's sha256
and mtime are the same after the command as before it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import yaml
from support import SNN_STUDY


def chmod_binds() -> bool:
    """Whether a folder without write permission stops this process (not so for root, as CI runs)."""
    with tempfile.TemporaryDirectory() as d:
        locked = Path(d, "locked")
        locked.mkdir(0o500)
        try:
            (locked / "probe").touch()
        except PermissionError:
            return True
        finally:
            locked.chmod(0o700)
        return False


CHMOD_BINDS = chmod_binds()
#: nothing listens on port 1 of this machine: "connection refused" at once
UNREACHABLE_PG = "postgresql://u:p@127.0.0.1:1/db"

STUDY = {
    "study": {"name": "g", "sampler": "grid", "pruner": {"name": "none"}},
    "dataset": {"name": "synthetic", "val_size": 100, "train_subset": 200},
    "model": {"channels": [2, 4], "num_steps": 3},
    "training": {"epochs": 1, "batch_size": 64, "device": "cpu"},
    "search": {"neuron": ["leaky"], "surrogate": ["atan"]},
}
RUN = {
    "dataset": {"name": "synthetic", "val_size": 100, "train_subset": 200},
    "model": {"channels": [2, 4], "num_steps": 3},
    "training": {"epochs": 1, "batch_size": 64, "device": "cpu"},
}


def env() -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if k != "SNN_STUDY_DATA"}  # the dataset rows must not find MNIST
    out["OMP_NUM_THREADS"] = "1"
    return out


def merged(base: dict, extra: dict) -> dict:
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in base.items()}
    for section, fields in extra.items():
        if isinstance(fields, dict) and isinstance(out.get(section), dict):
            out[section].update(fields)
        else:
            out[section] = fields
    return out


class Ctx:
    """One row's folder: ``study.db`` (a copy of a finished study ``g``), and helpers that write inputs."""

    def __init__(self, root: Path, template: Path):
        self.root = root
        self.db = root / "study.db"
        shutil.copy2(template, self.db)
        self.url = f"sqlite:///{self.db}"
        #: a database that is not there, in a folder that is not there: neither may appear
        self.missing = root / "nowhere" / "study.db"
        self.missing_url = f"sqlite:///{self.missing}"
        self.sockets: list[socket.socket] = []

    def file(self, name: str, content: str | bytes) -> Path:
        path = self.root / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        return path

    def garbage(self) -> Path:
        return self.file("garbage.db", bytes(range(256)) * 16)

    def text(self) -> Path:
        return self.file("notes.db", "these are my notes, not a database\n")

    def damaged(self) -> Path:
        """A copy of the study database with one page of its trials table overwritten (a bad disk sector)."""
        path = self.root / "damaged.db"
        shutil.copy2(self.db, path)
        with sqlite3.connect(path) as conn:
            page_size = conn.execute("PRAGMA page_size").fetchone()[0]
            page = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'trials'").fetchone()[0]
        conn.close()
        with path.open("r+b") as f:
            f.seek((page - 1) * page_size)
            f.write(b"\xff" * page_size)
        return path

    def bad_config(self) -> Path:
        """A copy of the study database whose one trial holds a run config that no longer validates."""
        path = self.root / "old.db"
        shutil.copy2(self.db, path)
        with sqlite3.connect(path) as conn:  # a trial's config is one attribute per section (TrialRecord)
            where = "WHERE key = 'config.training'"
            (value,) = conn.execute(f"SELECT value_json FROM trial_user_attributes {where}").fetchone()
            training = json.loads(value)
            training["lr"] = -1
            conn.execute(f"UPDATE trial_user_attributes SET value_json = ? {where}", (json.dumps(training),))
        conn.close()
        return path

    def users_report_folder(self) -> Path:
        """A folder holding the user's own summary.csv, where a report would write its own."""
        path = self.root / "mine"
        path.mkdir()
        (path / "summary.csv").write_text("my,own,numbers\n1,2,3\n")
        return path

    def study(self, **sections) -> str:
        """A study config on the existing study database with ``sections`` merged in."""
        return str(self.file("study.yaml", self.study_text(**sections)))

    def study_text(self, **sections) -> str:
        data = merged(STUDY, sections)
        data["study"].setdefault("storage", self.url)
        return yaml.safe_dump(data)

    def run_config(self, **sections) -> str:
        return str(self.file("run.yaml", yaml.safe_dump(merged(RUN, sections))))

    def empty_dir(self, name: str = "data") -> Path:
        path = self.root / name
        path.mkdir()
        return path

    def read_only_dir(self) -> Path:
        path = self.root / "locked"
        path.mkdir()
        path.chmod(0o500)
        return path

    def busy_port(self) -> int:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen()
        self.sockets.append(s)
        return s.getsockname()[1]

    def close(self) -> None:
        for s in self.sockets:
            s.close()
        locked = self.root / "locked"
        if locked.exists():
            locked.chmod(0o700)  # so pytest can remove the folder


@dataclass(frozen=True)
class Case:
    id: str
    #: the subcommand and its arguments, built in the row's folder
    argv: Callable[[Ctx], list[str]]
    #: what the one error line must contain (each formatted with {root}, {db}, {missing})
    expect: str | tuple[str, ...]
    #: a row that needs chmod to stop this process (so not as root)
    needs_chmod: bool = False
    #: a row about a machine without CUDA
    needs_no_cuda: bool = False


def run(c: Ctx, *extra: str, **sections) -> list[str]:
    """``run`` on a study config (the existing study ``g``, ``sections`` merged in)."""
    return ["run", "--config", c.study(**sections), *extra]


def train(c: Ctx, **sections) -> list[str]:
    return ["train", "--config", c.run_config(**sections)]


def best(c: Ctx, *extra: str, study: str = "g", storage: str | None = None, out: str | None = None) -> list[str]:
    return ["best", "--study", study, "--storage", storage or c.url, "--out", out or str(c.root / "best"), *extra]


def report(c: Ctx, *extra: str, study: str = "g", storage: str | None = None, out: str | None = None) -> list[str]:
    return ["report", "--study", study, "--storage", storage or c.url, "--out", out or str(c.root / "report"), *extra]


def sqlite(path: Path) -> str:
    return f"sqlite:///{path}"


C = Case
CASES: list[Case] = [
    # ---- run: the study config ----------------------------------------------------------------
    C("run-unknown-section", lambda c: run(c, colour="red"),
      "colour: got 'red'; unknown section; allowed: study"),
    C("run-unknown-neuron", lambda c: run(c, "--set", "search.neuron=[leaky, izhikevich]"),
      "got 'izhikevich'; allowed: alpha, leaky"),
    C("run-unknown-search-key", lambda c: run(c, "--set", "search.wingspan=[1, 2]"),
      "search.wingspan: got 'wingspan'; unknown search key; allowed:"),
    C("run-wrong-type-workers", lambda c: run(c, study={"workers": "two"}),
      "study.workers: got 'two'; expected an integer"),
    C("run-array-size-zero", lambda c: run(c, study={"array_size": 0}),
      "study.array_size: got 0; must be from 1 to 64, or null"),
    C("run-low-above-high", lambda c: run(c, "--set", "search.lr={low: 0.1, high: 0.01}"),
      "search.lr: got {{'low': 0.1, 'high': 0.01}}; low (0.1) must be <= high (0.01)"),
    C("run-zero-epochs", lambda c: run(c, training={"epochs": 0}),
      "training.epochs: got 0; must be >= 1"),
    C("run-alpha-not-above-beta",
      # 4 time steps: with 3 the alpha neuron's delay through the 3 spiking layers is refused first
      lambda c: run(c, "--set", "search.neuron=[alpha]", "--set", "search.alpha={low: 0.1, high: 0.3}",
                    "--set", "search.beta=0.5", "--set", "model.num_steps=4"),
      "search.alpha: got 0.3; the alpha neuron needs alpha > beta"),
    C("run-tbptt-window-above-steps",
      lambda c: run(c, "--set", "search.backprop=[tbptt]", "--set", "search.tbptt_window=9"),
      "search.tbptt_window: got 9; must be <= the fewest time steps searched (3)"),
    C("run-every-combination-impossible",
      lambda c: run(c, "--set", "search.neuron=[alpha]", "--set", "search.backprop=[rtrl]", "--set",
                    "model.num_steps=4"),
      "search: got 'neuron=alpha, surrogate=atan, backprop=rtrl'; every combination of the search is impossible"),
    C("run-width-under-the-raw-scale",
      lambda c: run(c, "--set", "model.surrogate_scale=raw", "--set", "search.surrogate_width={low: 0.1, high: 1}"),
      "search.surrogate_width: got 1.0; only with model.surrogate_scale normalized"),
    C("run-unknown-step-every", lambda c: run(c, training={"step_every": "epoch"}),
      "training.step_every: got 'epoch'; allowed: batch, window"),
    C("run-malformed-yaml", lambda c: ["run", "--config", str(c.file("bad.yaml", "study:\n  name: [g\n"))],
      "--config {root}/bad.yaml: not valid YAML at line"),
    C("run-yaml-list", lambda c: ["run", "--config", str(c.file("list.yaml", "- study\n- search\n"))],
      "--config {root}/list.yaml: expected a mapping of sections, got list"),
    # ---- run: the storage and the data --------------------------------------------------------
    C("run-unknown-dialect", lambda c: run(c, "--storage", "foo://host/db"),
      "study.storage: got 'foo://host/db'; unknown database kind 'foo'"),
    C("run-unreachable-postgres", lambda c: run(c, "--storage", UNREACHABLE_PG),
      "study.storage: got 'postgresql://u:***@127.0.0.1:1/db'; cannot reach the database server"),
    C("run-garbage-storage", lambda c: run(c, "--storage", sqlite(c.garbage())),
      "{root}/garbage.db is not an SQLite database"),
    C("run-storage-under-a-file", lambda c: run(c, "--storage", sqlite(c.text() / "study.db")),
      "study.storage: got 'sqlite:///{root}/notes.db/study.db'"),
    C("run-missing-dataset-offline",
      lambda c: run(c, study={"storage": sqlite(c.root / "new.db")},
                    dataset={"name": "mnist", "root": str(c.empty_dir()), "download": False}),
      "dataset.root: got '{root}/data'; mnist is not in {root}/data/MNIST/raw and download is off"),
    # ---- train --------------------------------------------------------------------------------
    C("train-unknown-field", lambda c: train(c, model={"colour": "red"}),
      "model.colour: got 'red'; unknown field; allowed:"),
    C("train-unknown-neuron", lambda c: ["train", "--set", "model.neuron=hodgkin"],
      "model.neuron: got 'hodgkin'; allowed: alpha, leaky, synaptic, lapicque"),
    C("train-wrong-type-epochs", lambda c: ["train", "--set", "training.epochs=2.5"],
      "training.epochs: got 2.5; expected an integer"),
    C("train-negative-batch-size", lambda c: ["train", "--set", "training.batch_size=-64"],
      "training.batch_size: got -64; must be >= 1"),
    C("train-negative-time-steps", lambda c: ["train", "--set", "model.num_steps=-3"],
      "model.num_steps: got -3; must be >= 1"),
    C("train-alpha-equals-beta", lambda c: train(c, model={"neuron": "alpha", "alpha": 0.5, "beta": 0.5}),
      "model.alpha: got 0.5; the alpha neuron needs alpha > beta (beta=0.5)"),
    C("train-tbptt-window-above-steps", lambda c: train(c, training={"backprop": "tbptt", "tbptt_window": 9}),
      "training.tbptt_window: got 9; must be <= model.num_steps (3)"),
    C("train-unknown-gain", lambda c: ["train", "--set", "model.gain=auto"],
      "model.gain: got 'auto'; allowed: matched, raw"),
    C("train-matched-gain-without-leak", lambda c: ["train", "--set", "model.beta=1.0"],
      "model.beta: got 1.0; model.gain matched needs beta < 1"),
    C("train-unknown-surrogate-scale", lambda c: ["train", "--set", "model.surrogate_scale=unit"],
      "model.surrogate_scale: got 'unit'; allowed: normalized, raw"),
    C("train-zero-surrogate-width", lambda c: ["train", "--set", "model.surrogate_width=0"],
      "model.surrogate_width: got 0.0; must be > 0"),
    C("train-shape-set-by-the-width", lambda c: train(c, model={"surrogate_args": {"slope": 3}}),
      "model.surrogate_args.slope: got 3.0; set by model.surrogate_width under model.surrogate_scale normalized"),
    C("train-unknown-step-every", lambda c: ["train", "--set", "training.step_every=epoch"],
      "training.step_every: got 'epoch'; allowed: batch, window"),
    C("train-alpha-with-rtrl", lambda c: train(c, model={"neuron": "alpha"}, training={"backprop": "rtrl"}),
      "training.backprop: got 'rtrl'; the alpha neuron answers an input 1 step later"),
    C("train-alpha-window-below-its-delay",
      lambda c: train(c, model={"neuron": "alpha", "num_steps": 6}, training={"backprop": "tbptt", "tbptt_window": 3}),
      "training.tbptt_window: got 3; the alpha neuron answers an input 1 step later, so the output answers the "
      "image 3 steps later through 3 spiking layers"),
    C("train-yaml-list", lambda c: ["train", "--config", str(c.file("list.yaml", "- model\n"))],
      "expected a mapping of sections, got list"),
    C("train-missing-dataset-offline",
      lambda c: ["train", "--set", f"dataset.root={c.empty_dir()}", "--set", "dataset.download=false"],
      "mnist is not in {root}/data/MNIST/raw and download is off"),
    C("train-save-in-a-missing-folder", lambda c: ["train", "--config", c.run_config(), "--save", f"{c.root}/no/m.pt"],
      "--save: got '{root}/no/m.pt'; no such folder '{root}/no'; create it first"),
    C("train-save-under-a-file", lambda c: ["train", "--config", c.run_config(), "--save", f"{c.text()}/m.pt"],
      "--save: got '{root}/notes.db/m.pt'; no such folder '{root}/notes.db'"),
    C("train-save-read-only", lambda c: ["train", "--config", c.run_config(), "--save", f"{c.read_only_dir()}/m.pt"],
      "--save: got '{root}/locked/m.pt'; cannot write in '{root}/locked'", needs_chmod=True),
    C("train-save-a-folder", lambda c: ["train", "--config", c.run_config(), "--save", str(c.empty_dir())],
      "--save: got '{root}/data'; is a folder; give the weights' file, e.g. model.pt"),
    C("train-save-a-yaml", lambda c: ["train", "--config", c.run_config(), "--save", f"{c.root}/m.yaml"],
      "--save: got '{root}/m.yaml'; names the config's file; give the weights' file, e.g. m.pt"),
    # ---- best ---------------------------------------------------------------------------------
    C("best-no-such-study", lambda c: best(c, study="nope"),
      "--study: got 'nope'; no such study in the storage; studies there: g"),
    C("best-missing-database", lambda c: best(c, storage=c.missing_url),
      "no study database at {missing}"),
    C("best-garbage-storage", lambda c: best(c, storage=sqlite(c.garbage())),
      "{root}/garbage.db is not an SQLite database"),
    C("best-unknown-by", lambda c: best(c, "--by", "colour"),
      "--by: got 'colour'; allowed: neuron, surrogate, backprop"),
    C("best-out-under-a-file", lambda c: best(c, out=f"{c.text()}/sub"),
      "--out: got '{root}/notes.db/sub'"),
    C("best-out-read-only", lambda c: best(c, out=f"{c.read_only_dir()}/sub"),
      "--out: got '{root}/locked/sub'", needs_chmod=True),
    # ---- list ---------------------------------------------------------------------------------
    C("list-missing-database", lambda c: ["list", "--storage", c.missing_url],
      "no study database at {missing}"),
    C("list-text-file-storage", lambda c: ["list", "--storage", sqlite(c.text())],
      "{root}/notes.db is not an SQLite database"),
    C("list-unknown-dialect", lambda c: ["list", "--storage", "oracle+nodriver://h/db"],
      "study.storage: got 'oracle+nodriver://h/db'"),
    C("list-unreachable-postgres", lambda c: ["list", "--storage", UNREACHABLE_PG],
      "cannot reach the database server"),
    # ---- dashboard ----------------------------------------------------------------------------
    C("dashboard-missing-database", lambda c: ["dashboard", "--storage", c.missing_url, "--port", "0"],
      "no study database at {missing}"),
    C("dashboard-garbage-storage", lambda c: ["dashboard", "--storage", sqlite(c.garbage())],
      "{root}/garbage.db is not an SQLite database"),
    C("dashboard-port-in-use", lambda c: ["dashboard", "--storage", c.url, "--port", str(c.busy_port())],
      "cannot listen on 127.0.0.1:"),
    C("dashboard-port-out-of-range", lambda c: ["dashboard", "--storage", c.url, "--port", "70000"],
      ("--port", "70000")),
    C("dashboard-artifacts-missing", lambda c: ["dashboard", "--storage", c.url, "--artifacts", f"{c.root}/nowhere"],
      "--artifacts: got '{root}/nowhere'; no such folder"),
    # ---- report -------------------------------------------------------------------------------
    C("report-no-such-study", lambda c: report(c, study="nope"),
      "--study: got 'nope'; no such study in the storage"),
    C("report-missing-database", lambda c: report(c, storage=c.missing_url),
      "no study database at {missing}"),
    C("report-garbage-storage", lambda c: report(c, storage=sqlite(c.garbage())),
      "{root}/garbage.db is not an SQLite database"),
    C("report-unknown-format", lambda c: report(c, "--format", "pdf"),
      "--format: got 'pdf'; allowed: html, png"),
    C("report-out-is-a-file", lambda c: report(c, out=str(c.text())),
      "--out: got '{root}/notes.db'; is a file"),
    C("report-out-under-a-file", lambda c: report(c, out=f"{c.text()}/sub"),
      "--out: got '{root}/notes.db/sub'; cannot write there"),
]
DUPLICATE_LR = "search:\n  lr: 0.1\n  lr: 0.2"
# ---- numbers a library refuses: caught when the config is read, before any study or trial is written (issue 11, 14)
CASES += [
    C("run-seed-below-numpy", lambda c: run(c, "--set", "study.seed=-1"),
      "study.seed: got -1; must be within [0, 4294966295] with 1 worker(s)"),
    C("run-seed-past-numpy-with-workers", lambda c: run(c, "--set", "study.seed=4294966000", "--workers", "2"),
      "study.seed: got 4294966000; must be within [0, 4294965295] with 2 worker(s)"),
    C("train-seed-past-torch", lambda c: ["train", "--set", "training.seed=18446744073709551616"],
      "training.seed: got 18446744073709551616; must be within [0, 18446744073709551615]"),
    C("train-seed-negative", lambda c: train(c, training={"seed": -5}),
      "training.seed: got -5; must be within [0,"),
    C("run-min-resource-zero", lambda c: run(c, study={"pruner": {"name": "successive_halving", "min_resource": 0}}),
      "study.pruner.min_resource: got 0; must be >= 1"),
    C("run-percentile-boolean", lambda c: run(c, study={"pruner": {"name": "percentile", "percentile": True}}),
      "study.pruner.percentile: got True; expected a number"),
    C("run-kernel-shrinks-image", lambda c: run(c, model={"kernel_size": 20}),
      "model.channels: got [2, 4]; 2 conv blocks of kernel 20 shrink a 28x28 image to nothing"),
    C("run-searched-kernel-shrinks-image", lambda c: run(c, "--set", "search.kernel_size=[3, 13]"),
      "search.kernel_size -> model.channels: got [2, 4]; 2 conv blocks of kernel 13"),
    C("train-channels-past-memory", lambda c: ["train", "--set", "model.channels=[100000000000]"],
      "model.channels: got 100000000000; must be <= 65536"),
    C("train-steps-past-memory", lambda c: ["train", "--set", "model.num_steps=100000000000000"],
      "model.num_steps: got 100000000000000; must be <= 100000"),
    C("run-heartbeat-past-a-day", lambda c: run(c, study={"heartbeat_interval": 10**20, "grace_period": 10**21}),
      "study.heartbeat_interval: got 100000000000000000000; must be <= 86400 seconds"),
    C("run-grid-past-its-cap",
      lambda c: run(c, *[a for k in ("seed", "epochs", "batch_size", "val_size", "test_subset")
                         for a in ("--set", f"search.{k}=[{', '.join(str(v) for v in range(1, 8))}]")]),
      "search: got '16807 combinations'; the grid sampler queues one trial per combination, at most 10000"),
    C("run-study-name-past-storage", lambda c: run(c, study={"name": "n" * 600}),
      "study.name: got 'nnnn"),
    C("run-study-name-control-character", lambda c: run(c, study={"name": "a\x00b"}),
      "study.name: got 'a\\x00b'; expected a name on one line, without control characters"),
    # ---- NaN and infinity: no float field and no range takes one -------------------------------------------
    C("train-threshold-nan", lambda c: ["train", "--set", "model.threshold=.nan"],
      "model.threshold: got nan; expected a finite number"),
    C("train-lr-infinite", lambda c: ["train", "--set", "training.lr=.inf"],
      "training.lr: got inf; expected a finite number"),
    C("train-lr-overflows-to-infinity", lambda c: ["train", "--set", "training.lr=1e400"],
      "training.lr: got inf; expected a finite number"),
    C("train-beta-nan", lambda c: train(c, model={"beta": float("nan")}),
      "model.beta: got nan; expected a finite number"),
    C("train-surrogate-arg-infinite", lambda c: ["train", "--set", "model.surrogate_args={slope: .inf}"],
      "model.surrogate_args: got {{'slope': inf}}; expected a mapping of names to numbers, each finite"),
    C("run-range-low-nan", lambda c: run(c, "--set", "search.lr={low: .nan, high: 0.1}"),
      "search.lr.low: got nan; expected a finite number"),
    C("run-range-high-infinite", lambda c: run(c, "--set", "search.lr={low: 0.001, high: .inf}"),
      "search.lr.high: got inf; expected a finite number"),
    C("run-range-step-nan", lambda c: run(c, "--set", "search.lr={low: 0.001, high: 0.1, step: .nan}"),
      "search.lr.step: got nan; expected a finite number"),
    C("run-fixed-surrogate-arg-nan", lambda c: run(c, "--set", "search.slope=.nan"),
      "search.slope: got nan; expected a finite number"),
    C("run-choice-nan", lambda c: run(c, "--set", "search.lr=[0.01, .nan]"),
      "search.lr -> training.lr: got nan; expected a finite number"),
    C("run-percentile-nan", lambda c: run(c, "--set", "study.pruner={name: percentile, percentile: .nan}"),
      "study.pruner.percentile: got nan; expected a finite number"),
    # ---- a range's options of the wrong type --------------------------------------------------------------
    C("run-range-step-boolean", lambda c: run(c, "--set", "search.lr={low: 0.001, high: 0.1, step: true}"),
      "search.lr.step: got True; expected a number"),
    C("run-range-low-text", lambda c: run(c, "--set", "search.lr={low: small, high: 0.1}"),
      "search.lr.low: got 'small'; expected a number"),
    C("run-range-log-text", lambda c: run(c, "--set", "search.lr={low: 0.001, high: 0.1, log: sure}"),
      "search.lr.log: got 'sure'; expected true or false"),
    C("run-range-fractional-step-of-integer",
      lambda c: run(c, "--set", "search.backprop=[tbptt]", "--set", "search.tbptt_window={low: 1, high: 3, step: 0.5}"),
      "search.tbptt_window.step: got 0.5; training.tbptt_window is a whole number"),
    C("run-range-fractional-bound-of-integer", lambda c: run(c, "--set", "search.epochs={low: 1.5, high: 3}"),
      "search.epochs.low: got 1.5; training.epochs is a whole number"),
    C("run-range-unknown-option", lambda c: run(c, "--set", "search.lr={low: 0.001, high: 0.1, scale: log}"),
      "search.lr.scale: got 'log'; allowed: low, high, log, step"),
    # ---- files that are not UTF-8, not a config, or nothing --------------------------------------------------
    C("run-config-latin-1", lambda c: ["run", "--config", str(c.file("latin.yaml", b"study:\n  name: caf\xe9\n"))],
      "--config {root}/latin.yaml: not UTF-8 text (byte 0xe9 at offset 18)"),
    C("train-config-binary", lambda c: ["train", "--config", str(c.file("weights.pt", bytes(range(256)) * 4))],
      "--config {root}/weights.pt: not UTF-8 text (byte 0x80 at offset 128)"),
    C("train-config-endless", lambda c: ["train", "--config", "/dev/zero"],
      "--config /dev/zero: more than 1048576 bytes; a config needs far fewer"),
    C("train-config-empty", lambda c: ["train", "--config", str(c.file("empty.yaml", "# nothing yet\n"))],
      "--config {root}/empty.yaml: the file is empty; write {{}} in it to take every default, or leave out --config"),
    C("run-config-empty", lambda c: ["run", "--config", str(c.file("empty.yaml", ""))],
      "--config {root}/empty.yaml: the file is empty"),
    C("run-config-duplicate-key",
      lambda c: ["run", "--config", str(c.file("dup.yaml", c.study_text().replace("search:", DUPLICATE_LR, 1)))],
      "--config {root}/dup.yaml: duplicate key 'lr' at line"),
    C("train-config-duplicate-section",
      lambda c: ["train", "--config", str(c.file("dup.yaml", "model: {beta: 0.5}\nmodel: {beta: 0.9}\n"))],
      "--config {root}/dup.yaml: duplicate key 'model' at line 2; give each key once"),
    C("train-set-recursive-alias", lambda c: ["train", "--set", "model.channels=&a [*a]"],
      "an alias at line 1 makes a value contain itself"),
    C("train-set-too-deep", lambda c: ["train", "--set", "model.channels=" + "[" * 40 + "]" * 40],
      "nested deeper than a config can need (32 levels at most)"),
    C("train-set-thousands-of-digits", lambda c: ["train", "--set", "training.epochs=" + "9" * 5000],
      "holds a number of thousands of digits"),
    C("run-python-tag", lambda c: run(c, "--set", "study.name=!!python/object/apply:os.system [touch pwned]"),
      "could not determine a constructor for the tag"),
    # ---- the database and the device ------------------------------------------------------------------------
    C("list-damaged-page", lambda c: ["list", "--storage", sqlite(c.damaged())],
      ("{root}/damaged.db is damaged (SQLite:", "restore it from a backup")),
    C("best-damaged-page", lambda c: best(c, storage=sqlite(c.damaged())),
      "{root}/damaged.db is damaged (SQLite:"),
    C("report-damaged-page", lambda c: report(c, storage=sqlite(c.damaged())),
      "{root}/damaged.db is damaged (SQLite:"),
    C("run-damaged-page", lambda c: run(c, "--storage", sqlite(c.damaged())),
      "{root}/damaged.db is damaged (SQLite:"),
    C("train-device-not-here", lambda c: ["train", "--set", "training.device=cuda:99"],
      "training.device: got 'cuda:99'; this machine has"),
    C("run-device-not-here", lambda c: run(c, training={"device": "cuda:99"}),
      "training.device: got 'cuda:99'; this machine has"),
    C("run-devices-not-here", lambda c: run(c, "--devices", "cpu,cuda:99"),
      "study.devices: got 'cuda:99'; this machine has"),
    C("train-device-not-a-number", lambda c: ["train", "--set", "training.device=cuda:first"],
      "training.device: got 'cuda:first'; allowed: auto, cpu, cuda, cuda:N"),
    C("train-cuda-without-cuda", lambda c: ["train", "--set", "training.device=cuda"],
      "training.device: got 'cuda'; this machine has no CUDA device", needs_no_cuda=True),
    # ---- best and report: validate everything, replace no file of the user's ------------------------------
    C("best-by-nothing", lambda c: best(c, "--by", ","),
      "--by: got ','; name at least one of neuron, surrogate, backprop"),
    C("best-trial-config-invalid", lambda c: best(c, storage=sqlite(c.bad_config())),
      "--study: got 'g'; the run config of trial 0 is not valid (training.lr: got -1"),
    C("report-over-users-file", lambda c: report(c, out=str(c.users_report_folder())),
      "--out: got '{root}/mine'; holds summary.csv, not written by a report; choose a new or empty folder, "
      "or pass --force"),
]
N_CASES = len(CASES)
assert N_CASES >= 30, f"the bad-input table must have at least 30 rows, has {N_CASES}"
assert len({c.id for c in CASES}) == N_CASES, "row ids must be unique"
assert {c.id.split("-")[0] for c in CASES} == {"run", "train", "best", "list", "dashboard", "report"}, \
    "every subcommand has rows"


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """A finished one-trial study ``g`` (what best, report and list read)."""
    folder = tmp_path_factory.mktemp("template")
    data = merged(STUDY, {"study": {"storage": f"sqlite:///{folder / 'study.db'}"}})
    config = folder / "study.yaml"
    config.write_text(yaml.safe_dump(data))
    proc = subprocess.run([*SNN_STUDY, "run", "--config", str(config), "--quiet"], cwd=folder, env=env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return folder / "study.db"


def snapshot(root: Path) -> dict[str, tuple]:
    """Every entry under ``root``: folders by name, files by size, sha256 and mtime."""
    out: dict[str, tuple] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_dir():
            out[rel] = ("dir", path.stat().st_mode & 0o777)
        else:
            st = path.stat()
            out[rel] = ("file", st.st_size, st.st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest())
    return out


def snn_study(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*SNN_STUDY, *args], cwd=cwd, env=env(), capture_output=True, text=True, timeout=120)


@pytest.fixture
def ctx(tmp_path, template):
    c = Ctx(tmp_path.resolve(), template)
    yield c
    c.close()


ROOT_SKIP = pytest.mark.skipif(not CHMOD_BINDS,
                               reason="chmod does not stop root; the row with --out under a regular file covers it")
CUDA_SKIP = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
PARAMS = [pytest.param(case, id=case.id, marks=[ROOT_SKIP] * case.needs_chmod + [CUDA_SKIP] * case.needs_no_cuda)
          for case in CASES]


@pytest.mark.parametrize("case", PARAMS)
def test_bad_input_exits_2_with_one_line_and_changes_nothing(case, ctx):
    args = case.argv(ctx)
    before = snapshot(ctx.root)
    proc = snn_study(args, ctx.root)
    after = snapshot(ctx.root)

    command = args[0]
    assert proc.returncode == 2, f"exit {proc.returncode}\n{proc.stderr}"
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{proc.stderr}"
    line = lines[0]
    assert line.startswith(f"snn-study {command}: error: "), line
    for part in (case.expect,) if isinstance(case.expect, str) else case.expect:
        expected = part.format(root=ctx.root, db=ctx.db, missing=ctx.missing)
        assert expected in line, f"{expected!r} not in {line!r}"
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""
    assert after == before, "the command changed files: " + ", ".join(
        sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k)))


def test_debug_adds_the_traceback_and_still_changes_nothing(ctx):
    args = best(ctx, study="nope")
    before = snapshot(ctx.root)
    proc = snn_study(["--debug", *args], ctx.root)
    assert proc.returncode == 2
    assert "Traceback (most recent call last)" in proc.stderr
    assert proc.stderr.splitlines()[-1].startswith("snn-study best: error: --study: got 'nope'")
    assert snapshot(ctx.root) == before


def test_a_postgresql_role_without_create_exits_2_with_one_line_and_creates_nothing(postgres_url, tmp_path):
    """PostgreSQL 15 lets only a database's owner create tables in ``public``: a study there, as another role, is
    refused before Optuna's first CREATE TABLE, naming the role and the grant (issue 11, 14)."""
    import uuid

    import sqlalchemy as sa

    role = f"snn_reader_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(sa.engine.make_url(postgres_url).set(drivername="postgresql+psycopg2"),
                             isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        # a password: CI's server lets only the postgres role in without one (.ci/run)
        conn.execute(sa.text(f'CREATE ROLE "{role}" LOGIN PASSWORD \'reader-pw\''))
        conn.execute(sa.text("REVOKE CREATE ON SCHEMA public FROM PUBLIC"))  # what PostgreSQL 15 does by default
    try:
        url = sa.engine.make_url(postgres_url).set(username=role, password="reader-pw").render_as_string(
            hide_password=False)
        config = tmp_path / "study.yaml"
        config.write_text(yaml.safe_dump(merged(STUDY, {"study": {"storage": url}})))
        proc = snn_study(["run", "--config", str(config)], tmp_path)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert f"role '{role}' may not create tables in schema 'public'" in proc.stderr
        assert f"GRANT CREATE ON SCHEMA public TO {role}" in proc.stderr
        with admin.connect() as conn:
            assert sa.inspect(conn).get_table_names() == []
        assert sorted(p.name for p in tmp_path.iterdir()) == ["study.yaml"]
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP ROLE IF EXISTS "{role}"'))
        admin.dispose()
