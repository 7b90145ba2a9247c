"""The per-epoch table's validation costs: stored with each epoch, and a table made before them still read and
written (the column is added by a writer, never by a reader)."""

from __future__ import annotations

from datetime import datetime, timezone

import sqlalchemy as sa

import storage
from objectives import EpochMetrics

COSTS = {"synops": 1234.5, "spikes_per_sample": 42.0, "layer_spikes_per_sample": [30.0, 10.0, 2.0],
         "accuracy_by_step": [0.5, 0.75], "decision_step": 2}

#: the table as the first version made it, before ``val_costs``
_OLD = sa.MetaData()
OLD_TABLE = sa.Table(
    "snn_epoch_metrics", _OLD,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("study_name", sa.String(512), nullable=False),
    sa.Column("trial_number", sa.Integer, nullable=False),
    sa.Column("trial_id", sa.Integer, nullable=False),
    sa.Column("epoch", sa.Integer, nullable=False),
    sa.Column("train_loss", sa.Float), sa.Column("train_acc", sa.Float), sa.Column("val_acc", sa.Float),
    sa.Column("spike_rates", sa.Text, nullable=False),
    sa.Column("seconds", sa.Float), sa.Column("train_samples_per_s", sa.Float),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)


def epoch(n: int, costs=None) -> EpochMetrics:
    return EpochMetrics(epoch=n, train_loss=1.0, train_acc=0.5, val_acc=0.75, spike_rates=(0.25,), seconds=1.0,
                        train_samples_per_s=100.0, val_costs=costs)


def engine(url: str) -> sa.Engine:
    """The engine the project opens for ``url`` (the driver it installs for PostgreSQL)."""
    return storage.EpochLog(url)._engine


def columns(url: str) -> list[str]:
    with engine(url).connect() as conn:
        return [c["name"] for c in sa.inspect(conn).get_columns("snn_epoch_metrics")]


def test_each_epochs_validation_costs_round_trip(storage_url):
    log = storage.EpochLog(storage_url)
    log.record("s", 0, 1, epoch(1, COSTS))
    log.record("s", 0, 1, epoch(2))
    first, second = storage.EpochLog(storage_url).read("s")
    assert first["val_costs"] == COSTS
    assert second["val_costs"] is None


def test_a_table_of_an_older_version_is_read_as_it_is_and_gains_the_column_when_written(storage_url):
    with engine(storage_url).begin() as conn:
        OLD_TABLE.create(conn)
        conn.execute(OLD_TABLE.insert(), {"study_name": "s", "trial_number": 0, "trial_id": 1, "epoch": 1,
                                          "val_acc": 0.6, "spike_rates": "[0.1]",
                                          "created_at": datetime.now(timezone.utc)})

    (old,) = storage.EpochLog(storage_url, create=False).read("s")
    assert old["val_acc"] == 0.6 and old["val_costs"] is None
    assert "val_costs" not in columns(storage_url)  # a reader writes nothing

    storage.EpochLog(storage_url).record("s", 0, 1, epoch(2, COSTS))
    assert columns(storage_url)[-1] == "val_costs"
    rows = storage.EpochLog(storage_url).read("s")
    assert [r["val_costs"] for r in rows] == [None, COSTS]
