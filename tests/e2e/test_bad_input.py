"""Bad input, every subcommand: exit 2, one line on stderr naming the problem, nothing written.

One table, one real subprocess per row. Each row runs in its own folder holding a
copy of a finished study database (and is the command's working folder, so that
relative defaults land there too); the folder's listing and every file's sha256
and mtime are the same after the command as before it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
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

    def study(self, **sections) -> str:
        """A study config on the existing study database with ``sections`` merged in."""
        data = merged(STUDY, sections)
        data["study"].setdefault("storage", self.url)
        return str(self.file("study.yaml", yaml.safe_dump(data)))

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
      "training.tbptt_window: got 9; must be <= model.num_steps (3)"),
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
PARAMS = [pytest.param(case, id=case.id, marks=[ROOT_SKIP] if case.needs_chmod else []) for case in CASES]


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
