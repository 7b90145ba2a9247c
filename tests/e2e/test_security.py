"""Security properties: a loopback-only dashboard by default, safe YAML, weights-only unpickling, no shell.

The dashboard and CLI checks run real processes; the source checks read the
package sources (not the tests) with ``ast`` or line by line.
"""

from __future__ import annotations

import ast
import os
import select
import socket
import subprocess
import time
from pathlib import Path

import optuna
import pytest
import yaml
from support import REPO, SNN_STUDY, env, free_port

PACKAGES = ("study", "objectives", "storage", "reports", "benchmarks")
LOOPBACK_HEX = "0100007F"  # 127.0.0.1 as /proc/net/tcp writes it


def sources() -> list[Path]:
    files = [p for pkg in PACKAGES for p in sorted((REPO / pkg).rglob("*.py"))]
    assert len(files) > 20, "the source tree was not found"
    return files


def listeners(port: int) -> list[str]:
    """Local addresses (hex, as the kernel writes them) of every TCP socket listening on ``port``."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            local, state = row.split()[1], row.split()[3]
            address, port_hex = local.rsplit(":", 1)
            if state == "0A" and int(port_hex, 16) == port:  # 0A: LISTEN
                found.append(address)
    return found


def other_address() -> str | None:
    """This machine's address on its default route, if it has one besides loopback (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))
        except OSError:
            return None
        address = s.getsockname()[0]
    return None if address.startswith("127.") or address == "0.0.0.0" else address


@pytest.fixture
def study_db(tmp_path) -> Path:
    """An Optuna database with one empty study (enough for the dashboard)."""
    db = tmp_path / "study.db"
    optuna.create_study(study_name="s", storage=f"sqlite:///{db}", direction="maximize")
    return db


def test_the_dashboard_listens_on_loopback_only_unless_host_says_otherwise(study_db):
    port = free_port()
    proc = subprocess.Popen([*SNN_STUDY, "dashboard", "--storage", f"sqlite:///{study_db}", "--port", str(port)],
                            cwd=study_db.parent, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    try:
        banner = ""
        deadline = time.time() + 60
        while not listeners(port) and time.time() < deadline and proc.poll() is None:
            if not banner and select.select([proc.stderr], [], [], 0.2)[0]:
                banner = proc.stderr.readline()
            time.sleep(0.2)
        if not banner:
            banner = proc.stderr.readline()
        assert proc.poll() is None, f"the dashboard exited: {banner}"
        assert f"http://127.0.0.1:{port}/" in banner
        assert listeners(port) == [LOOPBACK_HEX], f"listening on {listeners(port)}, not 127.0.0.1 only"
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
        other = other_address()
        if other is not None:
            with pytest.raises(OSError):
                socket.create_connection((other, port), timeout=2).close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_the_dashboard_help_and_parser_default_to_loopback():
    from study._cli import build_parser

    proc = subprocess.run([*SNN_STUDY, "dashboard", "--help"], cwd=REPO, env=env(), capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0
    assert "default 127.0.0.1" in " ".join(proc.stdout.split())
    args = build_parser().parse_args(["dashboard"])
    assert args.host == "127.0.0.1"


EVIL_TAG = '!!python/object/apply:os.system ["touch {sentinel}"]'


@pytest.mark.parametrize("where", ["run --config", "train --config", "train --set"])
def test_configs_are_read_with_a_safe_yaml_loader(tmp_path, where):
    sentinel = tmp_path / "pwned"
    payload = EVIL_TAG.format(sentinel=sentinel)
    command, flag = where.split()
    if flag == "--config":
        config = tmp_path / "evil.yaml"
        config.write_text(f"model:\n  neuron: {payload}\n" if command == "train"
                          else f"study:\n  name: {payload}\nsearch:\n  neuron: [leaky]\n")
        args = [command, flag, str(config)]
    else:
        args = [command, flag, f"model.neuron={payload}"]
    proc = subprocess.run([*SNN_STUDY, *args], cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.splitlines()) == 1 and "Traceback" not in proc.stderr
    assert not sentinel.exists(), "the YAML tag ran a shell command"


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node


def _name(func: ast.expr) -> str:
    parts = []
    while isinstance(func, ast.Attribute):
        parts.append(func.attr)
        func = func.value
    if isinstance(func, ast.Name):
        parts.append(func.id)
    return ".".join(reversed(parts))


def test_every_torch_load_passes_weights_only_true():
    offenders, seen = [], 0
    for path in sources():
        tree = ast.parse(path.read_text(), str(path))
        # `from torch import load` would hide a call as plain load(...)
        aliases = {a.asname or a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module == "torch"
                   for a in n.names if a.name == "load"}
        for call in _calls(tree):
            name = _name(call.func)
            if name == "torch.load" or name in aliases:
                seen += 1
                weights_only = next((k.value for k in call.keywords if k.arg == "weights_only"), None)
                if not (isinstance(weights_only, ast.Constant) and weights_only.value is True):
                    offenders.append(f"{path.relative_to(REPO)}:{call.lineno}")
    assert not offenders, f"torch.load without weights_only=True: {offenders}"
    assert seen >= 1, "the reports load stored weights somewhere; no torch.load found"


def test_no_shell_is_built_and_no_unsafe_yaml_loader_is_used():
    forbidden = ("os.system", "os.popen", "yaml.load", "yaml.unsafe_load", "yaml.full_load", "eval", "exec")
    offenders = []
    for path in sources():
        tree = ast.parse(path.read_text(), str(path))
        for call in _calls(tree):
            name = _name(call.func)
            if name in forbidden:
                offenders.append(f"{path.relative_to(REPO)}:{call.lineno} {name}(...)")
            for k in call.keywords:
                if k.arg == "shell" and not (isinstance(k.value, ast.Constant) and k.value.value is False):
                    offenders.append(f"{path.relative_to(REPO)}:{call.lineno} shell=...")
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if "shell=True" in line or "os.system" in line:  # also in strings handed to another process
                offenders.append(f"{path.relative_to(REPO)}:{number} {line.strip()}")
    assert not offenders, offenders


class _Payload:
    """Unpickling this runs a shell command: what a tampered weights file would hold."""

    def __init__(self, sentinel: Path):
        self.sentinel = sentinel

    def __reduce__(self):
        return (os.system, (f"touch {self.sentinel}",))


@pytest.fixture(scope="module")
def finished_study(tmp_path_factory) -> Path:
    """A finished one-trial study on synthetic data, its weights saved as an artifact beside the database."""
    folder = tmp_path_factory.mktemp("weights")
    config = {
        "study": {"name": "w", "sampler": "grid", "storage": f"sqlite:///{folder / 'study.db'}",
                  "pruner": {"name": "none"}},
        "dataset": {"name": "synthetic", "val_size": 100, "train_subset": 200},
        "model": {"channels": [2, 4], "num_steps": 3},
        "training": {"epochs": 1, "batch_size": 64, "device": "cpu"},
        "search": {"neuron": ["leaky"]},
    }
    (folder / "study.yaml").write_text(yaml.safe_dump(config))
    proc = subprocess.run([*SNN_STUDY, "run", "--config", str(folder / "study.yaml"), "--quiet"], cwd=folder, env=env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return folder / "study.db"


def _tamper(db: Path, sentinel: Path) -> None:
    import torch

    study = optuna.load_study(study_name="w", storage=f"sqlite:///{db}")
    artifact = db.parent / "artifacts" / study.best_trial.user_attrs["weights_artifact"]
    assert artifact.is_file()
    torch.save({"conv1.weight": _Payload(sentinel)}, artifact)  # a real torch zip whose data.pkl runs a command


def test_a_tampered_weights_file_is_refused_by_the_report_loader(finished_study, tmp_path):
    from reports import load_study_data, trace_records, trial_rows

    sentinel = tmp_path / "pwned-by-loader"
    _tamper(finished_study, sentinel)
    data = load_study_data(f"sqlite:///{finished_study}", "w")
    rows, _ = trial_rows(data)
    try:
        record, why = trace_records(data, rows)
    except Exception as exc:  # refusing by raising is a refusal too; the command line must still say it in one line
        record, why = None, f"{type(exc).__name__}: {exc}"
    assert not sentinel.exists(), "loading the weights ran the pickled command"
    assert record is None and why


def test_report_on_a_tampered_weights_file_runs_nothing_and_says_why(finished_study, tmp_path):
    sentinel = tmp_path / "pwned-by-report"
    _tamper(finished_study, sentinel)
    proc = subprocess.run([*SNN_STUDY, "report", "--study", "w", "--storage", f"sqlite:///{finished_study}",
                           "--out", str(tmp_path / "report"), "--no-dashboard"],
                          cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=300)
    assert not sentinel.exists(), "the report ran the pickled command"
    assert "Traceback" not in proc.stderr, proc.stderr
    # the report is still written; the membrane and raster figures are skipped with a reason
    assert proc.returncode == 0, proc.stderr
    assert "skipped Membrane potential of the best model" in proc.stderr
