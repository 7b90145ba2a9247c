"""Tiny inputs stay tiny: a config of a few hundred bytes is refused or read within a measured memory and time bound
(issue 11, 8).

Each command runs under a small measuring parent (``MEASURE``): its peak resident memory is the
``ru_maxrss`` of that parent's only child, and an address-space limit keeps a regression from
taking the machine's memory with it (it then fails instead of swapping).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml
from support import REPO, env

#: what the command line needs anyway (torch, Optuna, SQLAlchemy imported: about 1 GB resident here)
PEAK_BOUND_MB = 1500
SECONDS_BOUND = 90
#: virtual memory the command may map (torch maps far more than it touches); past it the child fails
ADDRESS_SPACE_GB = 6

MEASURE = f"""
import json, resource, subprocess, sys, time
limit = {ADDRESS_SPACE_GB} << 30
start = time.monotonic()
proc = subprocess.run(sys.argv[1:], capture_output=True, text=True,
                      preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (limit, limit)))
print(json.dumps({{"rc": proc.returncode, "stderr": proc.stderr, "seconds": time.monotonic() - start,
                   "peak_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}}))
"""

#: a list of nine lists, each nine of the one before: 9**9 (387 million) strings once the aliases are expanded,
#: in about 400 bytes. An error line that shows the value, or a check that walks it, would expand it.
BOMB = "[" + ", ".join(
    f"&{chr(97 + i)} [{', '.join([f'*{chr(96 + i)}' if i else 'lol'] * 9)}]" for i in range(9)
) + "]"


def measured(*args: str, cwd=REPO) -> dict:
    """``snn-study ARGS`` run under :data:`MEASURE`: exit code, stderr, seconds and peak resident MB."""
    proc = subprocess.run([sys.executable, "-c", MEASURE, sys.executable, "-m", "study", *args], cwd=cwd, env=env(),
                          capture_output=True, text=True, timeout=SECONDS_BOUND * 4)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def assert_bounded(result: dict, expect: str) -> None:
    lines = result["stderr"].splitlines()
    assert result["peak_mb"] < PEAK_BOUND_MB, f"peak resident memory {result['peak_mb']:.0f} MB: {lines[-1:]}"
    assert result["seconds"] < SECONDS_BOUND, f"{result['seconds']:.0f} s: {lines[-1:]}"
    assert result["rc"] == 2 and len(lines) == 1 and expect in lines[0], result["stderr"][-2000:]


def test_the_bomb_is_the_size_the_issue_names():
    assert len(BOMB) < 600
    assert len(yaml.safe_load(BOMB)[-1]) == 9  # PyYAML shares the nodes: expanding them is what costs


@pytest.mark.parametrize("where", ["file", "set"])
def test_an_alias_bomb_is_refused_in_bounded_memory_and_time(tmp_path, where):
    if where == "file":
        path = tmp_path / "bomb.yaml"
        path.write_text(f"study: {{name: b, sampler: grid}}\nsearch:\n  neuron: {BOMB}\n")
        result = measured("run", "--config", str(path), cwd=tmp_path)
    else:
        result = measured("train", "--set", f"model.channels={BOMB}", cwd=tmp_path)
    assert_bounded(result, "more than 100000 values once its aliases are expanded")
    assert sorted(p.name for p in tmp_path.iterdir()) == (["bomb.yaml"] if where == "file" else [])


def test_a_tpe_study_of_many_choices_never_lists_its_grid(tmp_path):
    """8 categorical keys of 10 values: 10**8 combinations that a TPE sampler never needs listed. The config is
    valid, so the command goes on to the storage, which is unreachable: exit 2 once the config is read."""
    values = {"lr": [round(0.001 * (i + 1), 4) for i in range(10)],
              "beta": [round(0.05 * (i + 1), 2) for i in range(10)], "threshold": [i + 1 for i in range(10)],
              "seed": list(range(10)), "batch_size": list(range(1, 11)),
              "epochs": list(range(1, 11)), "val_size": list(range(10, 110, 10)), "test_subset": list(range(1, 11))}
    config = {"study": {"name": "t", "sampler": "tpe", "n_trials": 1, "storage": "postgresql://u:p@127.0.0.1:1/db"},
              "dataset": {"name": "synthetic", "val_size": 100}, "training": {"device": "cpu"},
              "search": values}
    path = tmp_path / "tpe.yaml"
    path.write_text(yaml.safe_dump(config, default_flow_style=None))
    assert len(path.read_bytes()) < 1000
    result = measured("run", "--config", str(path), cwd=tmp_path)
    assert_bounded(result, "cannot reach the database server")
