"""`snn-study compare` as a user runs it: real worker processes training on tiny synthetic data, then the ranking
read back by `compare --report`, `list` and `best`."""

from __future__ import annotations

import json

import optuna
import yaml
from support import cli, env

import reports
from objectives import Combination, TrialRecord, cell_study_name

CELLS = [Combination("leaky", "atan", "bptt"), Combination("synaptic", "atan", "bptt")]


def compare_yaml(tmp_path):
    config = {
        "study": {"name": "tinycmp", "sampler": "random", "storage": f"sqlite:///{tmp_path / 'study.db'}",
                  "pruner": {"name": "median", "n_startup_trials": 1, "n_warmup_steps": 0}},
        "compare": {"trials_per_cell": 2, "seeds": 2},
        "dataset": {"name": "synthetic", "val_size": 200, "train_subset": 400},
        "model": {"channels": [4, 8], "num_steps": 5},
        "training": {"epochs": 2, "batch_size": 64, "device": "cpu"},
        "search": {"neuron": ["leaky", "synaptic"], "surrogate": ["atan"], "backprop": ["bptt"],
                   "lr": {"low": 0.002, "high": 0.05, "log": True}},
    }
    path = tmp_path / "compare.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_compare_with_two_workers_runs_both_stages_with_equal_effort_and_writes_the_ranking(tmp_path):
    out = tmp_path / "report"
    proc = cli("compare", "--config", str(compare_yaml(tmp_path)), "--workers", "2", "--quiet", "--out", str(out),
               timeout=900, env=env())
    assert proc.returncode == 0, proc.stderr
    assert "stage tune: 2 cells, 4 trials" in proc.stderr and "stage replicate: 2 cells, 4 trials" in proc.stderr
    assert "snn-study compare: warning: stage replicate runs 2 seeds per combination" in proc.stderr
    assert proc.stdout.startswith("Combinations: test_acc (%), mean and 95% t interval over seeds")
    assert "neuron: each level against the best" in proc.stdout and proc.stdout.strip().endswith("index.html")

    # two workers raced for every queue: each cell still has exactly its budget, and a replicate per seed
    url = f"sqlite:///{tmp_path / 'study.db'}"
    for cell in CELLS:
        for stage, count in (("tune", 2), ("replicate", 2)):
            name = cell_study_name("tinycmp", cell, stage)
            records = [TrialRecord.from_frozen_trial(name, t) for t in optuna.load_study(study_name=name,
                                                                                         storage=url).trials]
            assert len(records) == count and all(r.done and r.stage == stage for r in records), (name, records)
            if stage == "replicate":
                assert sorted(r.config["training"]["seed"] for r in records) == [1, 2]
                assert all(r.weights_artifact for r in records)  # the replicates' weights are artifacts

    rows = reports.read_csv(out / "comparison.csv")
    combos = [r for r in rows if r["kind"] == "combination"]
    assert len(combos) == 2 and all(r["n"] == 2 and r["seed_1"] is not None and r["seed_2"] is not None
                                    for r in combos)
    assert {r["level"] for r in rows if r["kind"] == "factor" and r["factor"] == "neuron"} == {"leaky", "synaptic"}
    result = json.loads((out / "comparison.json").read_text())
    assert [c["mean"] for c in result["cells"]] == [r["mean"] for r in combos]
    assert (out / "figures" / "forest.html").is_file()

    # the ranking, read back without running, and as list and best show it
    again = cli("compare", "--study", "tinycmp", "--report", "--storage", url)
    assert again.returncode == 0 and again.stdout.startswith("Combinations") and proc.stdout.startswith(again.stdout)
    reported = cli("report", "--study", "tinycmp", "--storage", url, "--out", str(tmp_path / "again"), "--no-dashboard")
    assert reported.returncode == 0 and reported.stdout.startswith(again.stdout)
    assert (tmp_path / "again" / "comparison.csv").read_text() == (out / "comparison.csv").read_text()
    listed = cli("list", "--storage", url)
    assert "comparison tinycmp: tune 4/4 trials done, replicate 4/4 trials done" in listed.stdout
    assert "highest mean test accuracy: " in listed.stdout and "  neuron: best " in listed.stdout
    best = cli("best", "--study", "tinycmp", "--storage", url, "--out", str(tmp_path / "best"))
    assert best.returncode == 0, best.stderr
    header = (tmp_path / "best" / "best.yaml").read_text().splitlines()[0]
    top = combos[0]
    assert header.startswith(f"# comparison 'tinycmp': mean test_acc {top['mean']:.4f} over 2 replicate seeds")
    assert "highest mean test accuracy" in best.stdout


def test_study_without_report_is_a_usage_error(tmp_path):
    proc = cli("compare", "--study", "tinycmp", "--storage", f"sqlite:///{tmp_path / 'none.db'}")
    assert proc.returncode == 2 and "--study NAME --report go together" in proc.stderr


def test_a_comparison_on_a_slurm_launcher_is_refused_before_anything_is_written(tmp_path):
    """Its stages run one after the other, each waiting for the last: on this machine only."""
    config = yaml.safe_load(compare_yaml(tmp_path).read_text())
    config["launcher"] = {"name": "slurm"}
    (tmp_path / "compare.yaml").write_text(yaml.safe_dump(config))
    proc = cli("compare", "--config", str(tmp_path / "compare.yaml"))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].endswith(
        "launcher.name: got 'slurm'; snn-study compare runs its workers on this machine; allowed: local")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["compare.yaml"]


def test_compare_reads_its_preset_and_flags(tmp_path):
    """The preset and the flags of `compare` reach its config: a bad --workers is refused by name, nothing runs."""
    proc = cli("compare", "--preset", "compare-quick", "--workers", "0", "--study-name", "x",
               "--storage", f"sqlite:///{tmp_path / 'study.db'}")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("snn-study compare: error: study.workers: got 0")
    assert list(tmp_path.iterdir()) == []
