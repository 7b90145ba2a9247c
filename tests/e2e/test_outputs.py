"""What `best` and `report` leave behind when a write fails, a process is killed or the media is read-only (issue 11).

Real processes: a write that fails part-way is a per-file size limit (``RLIMIT_FSIZE``: the
kernel refuses the write past it, as a full disk does), a kill is SIGKILL at the moment the
database shows the report's first write, read-only media is a read-only bind mount in a
private mount namespace (as root) or a folder without write permission (as anyone else).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import sqlite3
import subprocess
import time
from collections import defaultdict
from pathlib import Path

import pytest
import yaml
from support import GRID, REPO, SNN_STUDY, TINY, built_study, cli, copy_study, env

from reports import DASHBOARD_FIGURES

NOTE_START = "## snn-study report"
NOTE_END = "*(end of the snn-study report; text below this line is kept when the report is written again)*"


def plain_copy(tmp_path_factory, dst: Path) -> str:
    """A copy of the test database in rollback-journal mode (reading it writes no ``-shm`` file), and its URL."""
    url = copy_study(built_study(tmp_path_factory), dst)
    with sqlite3.connect(dst / "study.db") as conn:
        conn.execute("PRAGMA journal_mode=DELETE")
    conn.close()
    return url


def limited(limit: int, *args: str) -> subprocess.CompletedProcess:
    """``snn-study ARGS`` with every file it writes limited to ``limit`` bytes (what a full disk does to a write)."""
    def preexec() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return subprocess.run([*SNN_STUDY, *args], cwd=REPO, env=env(), capture_output=True, text=True, timeout=300,
                          preexec_fn=preexec)


def test_best_writes_all_its_files_or_none_when_a_write_fails(tmp_path, tmp_path_factory):
    url = plain_copy(tmp_path_factory, tmp_path / "db")
    out = tmp_path / "best"
    proc = limited(300, "best", "--study", GRID, "--storage", url, "--out", str(out))
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "writing the files failed (File too large); nothing was written" in \
        proc.stderr, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == []  # no half-written YAML, no temporary file left
    again = cli("best", "--study", GRID, "--storage", url, "--out", str(out))
    assert again.returncode == 0, again.stderr
    assert (out / "best.yaml").is_file() and not list(out.glob(".*"))


def test_a_report_whose_write_fails_leaves_each_file_whole_or_absent(tmp_path, tmp_path_factory):
    url = plain_copy(tmp_path_factory, tmp_path / "db")
    whole = cli("report", "--study", GRID, "--storage", url, "--out", str(tmp_path / "whole"), "--no-dashboard")
    assert whole.returncode == 0, whole.stderr
    sizes = sorted((p.stat().st_size, p.name) for p in (tmp_path / "whole").glob("*.csv"))
    limit = sizes[-1][0] - 1  # the largest table cannot be written whole
    out = tmp_path / "cut"
    proc = limited(limit, "report", "--study", GRID, "--storage", url, "--out", str(out), "--no-dashboard")
    assert proc.returncode == 2 and "writing the report failed (File too large)" in proc.stderr, proc.stderr
    for path in out.rglob("*"):
        assert not path.name.startswith(".snn-tmp-"), f"a temporary file was left: {path}"
        if path.suffix == ".csv":
            assert path.read_bytes() == (tmp_path / "whole" / path.relative_to(out)).read_bytes(), path.name
        elif path.suffix == ".html":
            assert path.read_text().rstrip().endswith("</html>"), path.name
    assert not (out / sizes[-1][1]).exists()


def dashboard_attrs(db: Path) -> dict[str, str]:
    """The study system attributes optuna-dashboard reads, as stored (JSON values decoded)."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT key, value_json FROM study_system_attributes WHERE key LIKE 'dashboard:%'")
        return {k: json.loads(v) for k, v in rows}


def what_the_dashboard_serves(attrs: dict[str, str]) -> tuple[dict[str, object], str]:
    """Each saved figure parsed as optuna-dashboard reassembles it (chunks 0..n-1 joined), and the note's body."""
    chunks: dict[str, dict[int, str]] = defaultdict(dict)
    for key, value in attrs.items():
        if key.startswith("dashboard:plot_data:"):
            graph, index = key[len("dashboard:plot_data:"):].rsplit(":", 1)
            chunks[graph][int(index)] = value
    figures = {g: json.loads("".join(parts[i] for i in range(len(parts)))) for g, parts in chunks.items()}
    note = attrs.get("dashboard:note_str:0") is not None
    body = "".join(attrs[f"dashboard:note_str:{i}"] for i in range(sum(k.startswith("dashboard:note_str:")
                                                                       for k in attrs))) if note else ""
    return figures, body


def test_a_report_killed_while_saving_for_the_dashboard_leaves_what_the_dashboard_reads_valid(tmp_path,
                                                                                            tmp_path_factory):
    """optuna-dashboard stores a figure as chunks of its JSON, one attribute each: the report writes them all in
    one transaction, so a kill at the first sign of it leaves the old report or the new one, whole."""
    url = copy_study(built_study(tmp_path_factory), tmp_path / "db")
    db = tmp_path / "db" / "study.db"
    for attempt in range(2):  # the first report, then one over it
        before = dashboard_attrs(db)
        proc = subprocess.Popen([*SNN_STUDY, "report", "--study", GRID, "--storage", url,
                                 "--out", str(tmp_path / f"out{attempt}")], cwd=REPO, env=env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 240
            while proc.poll() is None and time.monotonic() < deadline:
                if dashboard_attrs(db) != before:
                    proc.send_signal(signal.SIGKILL)
                    break
                time.sleep(0.002)
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode in (0, -signal.SIGKILL), proc.stderr.read()
        figures, note = what_the_dashboard_serves(dashboard_attrs(db))
        assert set(figures) in (set(), {gid for gid, _ in DASHBOARD_FIGURES.values()})
        for figure in figures.values():
            assert "data" in figure and "layout" in figure
        assert note == "" or (note.startswith(NOTE_START) and NOTE_END in note)
    assert figures and note, "no report reached the dashboard"


def test_a_report_replaces_its_own_files_and_the_users_only_with_force(tmp_path, tmp_path_factory):
    url = copy_study(built_study(tmp_path_factory), tmp_path / "db")
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine\n")
    for _ in range(2):  # a report folder takes the next report of the study
        proc = cli("report", "--study", GRID, "--storage", url, "--out", str(out), "--no-dashboard")
        assert proc.returncode == 0, proc.stderr
    assert (out / "notes.txt").read_text() == "mine\n"
    theirs = tmp_path / "theirs"
    (theirs / "figures").mkdir(parents=True)
    (theirs / "figures" / "heatmap.html").write_text("my heatmap\n")
    refused = cli("report", "--study", GRID, "--storage", url, "--out", str(theirs), "--no-dashboard")
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
    assert "holds figures/heatmap.html, not written by a report" in refused.stderr
    assert sorted(str(p.relative_to(theirs)) for p in theirs.rglob("*")) == ["figures", "figures/heatmap.html"]
    forced = cli("report", "--study", GRID, "--storage", url, "--out", str(theirs), "--no-dashboard", "--force")
    assert forced.returncode == 0, forced.stderr
    assert (theirs / "figures" / "heatmap.html").read_text() != "my heatmap\n"


def can_mount() -> bool:
    """Whether this process may make a read-only bind mount in a private mount namespace (root, unshare)."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                            "mount --bind / /mnt && mount -o remount,ro,bind /mnt"], capture_output=True)
    return probe.returncode == 0


def on_read_only_media(folder: Path, *args: str) -> subprocess.CompletedProcess:
    """``snn-study ARGS`` with ``folder`` read-only to it: a read-only bind mount (root), else permissions."""
    command = [*SNN_STUDY, *args]
    if os.geteuid() == 0:
        script = f'mount --bind "{folder}" "{folder}" && mount -o remount,ro,bind "{folder}" && exec "$@"'
        command = ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", *command]
    else:
        for path in folder.iterdir():
            path.chmod(0o444)
        folder.chmod(0o555)
    try:
        return subprocess.run(command, cwd=REPO, env=env(), capture_output=True, text=True, timeout=300)
    finally:
        if os.geteuid() != 0:
            folder.chmod(0o755)


@pytest.mark.skipif(os.geteuid() == 0 and not can_mount(), reason="root without mount: cannot make read-only media")
def test_a_study_on_read_only_media_is_read_by_list_best_and_report(tmp_path, tmp_path_factory):
    media = tmp_path / "media"
    url = copy_study(built_study(tmp_path_factory), media, artifacts=False)  # in WAL mode, as a study leaves it
    listing = on_read_only_media(media, "list", "--storage", url)
    assert listing.returncode == 0 and GRID in listing.stdout, listing.stderr
    best = on_read_only_media(media, "best", "--study", GRID, "--storage", url, "--out", str(tmp_path / "best"))
    assert best.returncode == 0 and (tmp_path / "best" / "best.yaml").exists(), best.stderr
    report = on_read_only_media(media, "report", "--study", GRID, "--storage", url, "--out", str(tmp_path / "r"),
                                "--no-dashboard")
    assert report.returncode == 0 and (tmp_path / "r" / "trials.csv").exists(), report.stderr
    # writing into it is refused before anything is written, naming the way that works
    dashboard = on_read_only_media(media, "report", "--study", GRID, "--storage", url, "--out", str(tmp_path / "d"))
    assert dashboard.returncode == 2 and dashboard.stderr.count("\n") == 1, dashboard.stderr
    assert "cannot be written" in dashboard.stderr and "report --no-dashboard" in dashboard.stderr
    assert not (tmp_path / "d").exists()
    assert sorted(p.name for p in media.iterdir()) == ["study.db"]


@pytest.mark.skipif(os.geteuid() == 0 and not can_mount(), reason="root without mount: cannot make read-only media")
def test_train_save_on_read_only_media_is_refused_before_it_trains(tmp_path):
    """`train --save` into a folder that cannot be written: one line, exit 2, before a minute is spent training."""
    media = tmp_path / "media"
    media.mkdir()
    (media / "run.yaml").write_text(yaml.safe_dump(TINY))
    proc = on_read_only_media(media, "train", "--config", str(media / "run.yaml"), "--save", str(media / "m.pt"))
    assert proc.returncode == 2 and proc.stdout == "", proc.stderr
    assert proc.stderr == (f"snn-study train: error: --save: got '{media}/m.pt'; cannot write in '{media}' "
                           "(Read-only file system); choose a writable folder\n")
    assert sorted(p.name for p in media.iterdir()) == ["run.yaml"]
