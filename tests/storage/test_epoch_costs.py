"""The per-epoch table's validation costs: stored with each epoch, and a table made before them still read and
written (the column is added by a writer, never by a reader)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import storage
from objectives import EpochMetrics

COSTS = {"synops": 1234.5, "spikes_per_sample": 42.0, "layer_spikes_per_sample": [30.0, 10.0, 2.0],
         "accuracy_by_step": [0.5, 0.75], "decision_step": 2}

#: the table as the first version made it, before ``val_costs``
OLD_TABLE = """CREATE TABLE snn_epoch_metrics (
    id INTEGER NOT NULL PRIMARY KEY, study_name VARCHAR(512) NOT NULL, trial_number INTEGER NOT NULL,
    trial_id INTEGER NOT NULL, epoch INTEGER NOT NULL, train_loss FLOAT, train_acc FLOAT, val_acc FLOAT,
    spike_rates TEXT NOT NULL, seconds FLOAT, train_samples_per_s FLOAT, created_at DATETIME NOT NULL)"""


def epoch(n: int, costs=None) -> EpochMetrics:
    return EpochMetrics(epoch=n, train_loss=1.0, train_acc=0.5, val_acc=0.75, spike_rates=(0.25,), seconds=1.0,
                        train_samples_per_s=100.0, val_costs=costs)


def columns(path: Path) -> list[str]:
    with sqlite3.connect(path) as conn:
        return [row[1] for row in conn.execute("PRAGMA table_info(snn_epoch_metrics)")]


def test_each_epochs_validation_costs_round_trip(storage_url):
    log = storage.EpochLog(storage_url)
    log.record("s", 0, 1, epoch(1, COSTS))
    log.record("s", 0, 1, epoch(2))
    first, second = storage.EpochLog(storage_url).read("s")
    assert first["val_costs"] == COSTS
    assert second["val_costs"] is None


def test_a_table_of_an_older_version_is_read_as_it_is_and_gains_the_column_when_written(tmp_path):
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.execute(OLD_TABLE)
        conn.execute("INSERT INTO snn_epoch_metrics VALUES (1, 's', 0, 1, 1, 1.0, 0.5, 0.6, '[0.1]', 1.0, 9.0, "
                     "'2026-01-01 00:00:00')")
    url = f"sqlite:///{path}"

    (old,) = storage.EpochLog(url, create=False).read("s")
    assert old["val_acc"] == 0.6 and old["val_costs"] is None
    assert "val_costs" not in columns(path)  # a reader writes nothing

    storage.EpochLog(url).record("s", 0, 1, epoch(2, COSTS))
    assert columns(path)[-1] == "val_costs"
    rows = storage.EpochLog(url).read("s")
    assert [r["val_costs"] for r in rows] == [None, COSTS]
