"""A user's study names never collide with the names of another study's per-combination studies (issue 11, 12).

Self-contained (the CLI as a subprocess, no helper of this repository), so that it also runs on
older trees: on one whose per-combination studies were named ``<study>/...``, ``best`` and
``report`` of study ``exp`` took the user's study ``exp/mine`` for one of exp's.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "study", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})


def run_study(tmp: Path, name: str, neuron: str) -> None:
    """A one-trial grid study ``name`` (one combination: ``neuron``/atan/bptt) in ``tmp/study.db``."""
    config = {
        "study": {"name": name, "sampler": "grid", "storage": f"sqlite:///{tmp / 'study.db'}",
                  "pruner": {"name": "none"}},
        "dataset": {"name": "synthetic", "val_size": 100, "train_subset": 200},
        "model": {"channels": [2, 4], "num_steps": 3},
        "training": {"epochs": 1, "batch_size": 64, "device": "cpu"},
        "search": {"neuron": [neuron], "surrogate": ["atan"], "backprop": ["bptt"]},
    }
    path = tmp / f"{neuron}.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = cli("run", "--config", str(path), "--quiet")
    assert proc.returncode == 0, proc.stderr


def test_best_and_report_of_a_study_leave_out_a_user_study_whose_name_starts_with_it(tmp_path):
    run_study(tmp_path, "exp", "leaky")
    run_study(tmp_path, "exp/mine", "synaptic")  # the user's own study, named like a per-combination one once was
    url = f"sqlite:///{tmp_path / 'study.db'}"

    best = cli("best", "--study", "exp", "--storage", url, "--out", str(tmp_path / "best"))
    assert best.returncode == 0, best.stderr
    assert sorted(p.name for p in (tmp_path / "best").iterdir()) == ["best.yaml", "leaky-atan-bptt.yaml"]
    for path in (tmp_path / "best").iterdir():
        assert "best of study 'exp':" in path.read_text(), path.read_text()

    report = cli("report", "--study", "exp", "--storage", url, "--out", str(tmp_path / "report"), "--no-dashboard")
    assert report.returncode == 0, report.stderr
    with (tmp_path / "report" / "trials.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["study"], r["neuron"]) for r in rows] == [("exp", "leaky")]

    mine = cli("best", "--study", "exp/mine", "--storage", url, "--out", str(tmp_path / "mine"))
    assert mine.returncode == 0, mine.stderr
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["best.yaml", "synaptic-atan-bptt.yaml"]
