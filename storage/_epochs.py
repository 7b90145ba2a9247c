"""Per-epoch metrics in their own table beside Optuna's, because an Optuna step holds one float."""

from __future__ import annotations

import functools
import json
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa

from objectives import EpochMetrics

from . import _engines

TABLE_NAME = "snn_epoch_metrics"
#: the longest study name a storage keeps: Optuna's ``studies.study_name`` is a String(512), and so is ours
MAX_STUDY_NAME = 512

# Our own MetaData, so creating this table never touches (or even looks at) Optuna's.
_metadata = sa.MetaData()
_table = sa.Table(
    TABLE_NAME,
    _metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("study_name", sa.String(MAX_STUDY_NAME), nullable=False),
    sa.Column("trial_number", sa.Integer, nullable=False),
    sa.Column("trial_id", sa.Integer, nullable=False),
    sa.Column("epoch", sa.Integer, nullable=False),
    sa.Column("train_loss", sa.Float),
    sa.Column("train_acc", sa.Float),
    sa.Column("val_acc", sa.Float),
    # JSON text (a list of floats, one per spiking layer): the layer count varies between trials
    sa.Column("spike_rates", sa.Text, nullable=False),
    sa.Column("seconds", sa.Float),
    sa.Column("train_samples_per_s", sa.Float),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    # JSON text: what the epoch's weights cost on the validation set (objectives.CostMetrics.to_dict())
    sa.Column("val_costs", sa.Text),
    sa.Index(f"ix_{TABLE_NAME}_study_trial_epoch", "study_name", "trial_number", "epoch"),
)
#: columns added since the table was first made: ``ensure_table`` adds them to an older database's table
_ADDED_COLUMNS = ("val_costs",)


class EpochLog:
    """The per-epoch metrics of every trial, in table ``snn_epoch_metrics`` of the study database.

    ``EpochLog(url)`` accepts the same URLs as :func:`storage.open_storage` and raises the
    same :class:`objectives.ConfigError`; ``create=False`` only opens an existing database, ``read_only=True``
    reads one that may be on read-only media.
    Engines are shared per URL within a process, so making one per trial is cheap.
    """

    def __init__(self, url: str, *, create: bool = True, read_only: bool = False):
        create = create and not read_only
        target = _engines.parse(url, create=create, read_only=read_only)
        self._has_table = TABLE_NAME in _engines.check_connection(target, create=create)
        self._engine = _engines.engine(target)
        #: the table is there with every column (checked once, by ``ensure_table``)
        self._ready = False

    def record(self, study_name: str, trial_number: int, trial_id: int | None, metrics: EpochMetrics) -> None:
        """Append one epoch of one trial; transient "database is locked" or server errors are retried."""
        row = {
            "study_name": study_name,
            "trial_number": trial_number,
            "trial_id": trial_id,
            "epoch": metrics.epoch,
            "train_loss": metrics.train_loss,
            "train_acc": metrics.train_acc,
            "val_acc": metrics.val_acc,
            "spike_rates": json.dumps([float(r) for r in metrics.spike_rates]),
            "seconds": metrics.seconds,
            "train_samples_per_s": metrics.train_samples_per_s,
            "created_at": datetime.now(timezone.utc),
            "val_costs": None if metrics.val_costs is None else json.dumps(dict(metrics.val_costs)),
        }

        def insert() -> None:
            with self._engine.begin() as conn:
                conn.execute(_table.insert(), row)

        self.ensure_table()
        _engines.with_retries(insert)

    def ensure_table(self) -> None:
        """Create the metrics table if it is missing, and add the columns an older version's table lacks
        (the study runner does this before its workers start)."""
        if self._ready:
            return
        if not self._has_table:
            try:
                _engines.with_retries(lambda: _create(self._engine))
            except (sa.exc.IntegrityError, sa.exc.ProgrammingError):
                # workers starting together: another created it between our check and our CREATE
                # (PostgreSQL reports a duplicate type; checkfirst cannot see an uncommitted table)
                pass
            self._has_table = True
        with self._engine.connect() as conn:
            missing = [c for c in _ADDED_COLUMNS if c not in _column_names(conn)]
        for name in missing:
            try:
                _engines.with_retries(functools.partial(_add_column, self._engine, name))
            except (sa.exc.OperationalError, sa.exc.ProgrammingError):
                with self._engine.connect() as conn:
                    if name not in _column_names(conn):  # not another worker's doing: a real error
                        raise
        self._ready = True

    def read(self, study_name: str) -> list[dict[str, Any]]:
        """Every recorded epoch of ``study_name``, ordered by trial number then epoch; ``spike_rates`` as a list,
        ``val_costs`` as a dict (``None`` where the epoch has none: an older version's table, read as it is)."""
        with self._engine.connect() as conn:
            if not sa.inspect(conn).has_table(TABLE_NAME):
                return []
            present = _column_names(conn)
            query = (
                sa.select(*(c for c in _table.columns if c.name in present))
                .where(_table.c.study_name == study_name)
                .order_by(_table.c.trial_number, _table.c.epoch, _table.c.id)
            )
            rows = [dict(r._mapping) for r in conn.execute(query)]
        for row in rows:
            row["spike_rates"] = json.loads(row["spike_rates"])
            costs = row.get("val_costs")
            row["val_costs"] = json.loads(costs) if costs else None
        return rows

    def close(self) -> None:
        """Close this process's pooled connections to the database (the next use reconnects)."""
        self._engine.dispose()


def _create(engine) -> None:
    with engine.begin() as conn:
        _table.create(conn, checkfirst=True)


def _column_names(conn) -> set[str]:
    return {c["name"] for c in sa.inspect(conn).get_columns(TABLE_NAME)}


def _add_column(engine, name: str) -> None:
    column = _table.c[name]
    kind = column.type.compile(dialect=engine.dialect)
    with engine.begin() as conn:
        conn.execute(sa.text(f"ALTER TABLE {TABLE_NAME} ADD COLUMN {name} {kind}"))
