"""Shared fixtures: the tiny synthetic run config, snntorch's neuron list, storages (SQLite and PostgreSQL)."""

from __future__ import annotations

import copy
import os

import pytest
import torch
from snntorch._neurons.neurons import SpikingNeuron
from support import TINY

# Tiny tensors gain nothing from threads, and two processes spinning two threads each on two
# cores (a worker test, a background study) slow each other a hundredfold.
torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture
def tiny() -> dict:
    """A fresh copy of the tiny synthetic run config (dict form)."""
    return copy.deepcopy(TINY)


@pytest.fixture
def snntorch_instances():
    """Restore snntorch's global neuron list after a test that lets snntorch.backprop use it."""
    saved = list(SpikingNeuron.instances)
    yield
    SpikingNeuron.instances[:] = saved


@pytest.fixture
def postgres_url():
    """A fresh PostgreSQL database on the server named by $SNN_STUDY_TEST_PG (.ci/run starts one).

    Skipped where no server is configured, except in CI, where a missing server is a failure.
    """
    admin_url = os.environ.get("SNN_STUDY_TEST_PG")
    if not admin_url:
        if os.environ.get("CI"):
            pytest.fail("CI must provide PostgreSQL: .ci/run starts it and sets SNN_STUDY_TEST_PG")
        pytest.skip("no PostgreSQL server: set SNN_STUDY_TEST_PG=postgresql://user@host:port/db (.ci/run does)")
    import uuid

    import sqlalchemy as sa

    name = f"snn_test_{uuid.uuid4().hex[:12]}"
    parsed = sa.engine.make_url(admin_url)
    if parsed.drivername == "postgresql":  # SQLAlchemy 2.1 would pick psycopg 3; the [postgres] extra has psycopg2
        parsed = parsed.set(drivername="postgresql+psycopg2")
    # no pooled connection: dropping the database still works after a test restarted the server
    admin = sa.create_engine(parsed, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    yield url
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def storage_url(request, tmp_path) -> str:
    """A fresh, empty study storage of each kind the project supports (as Optuna's ``StorageSupplier``):
    a temporary SQLite file, and a new PostgreSQL database (skipped without a server, except in CI)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'study.db'}"
    return request.getfixturevalue("postgres_url")
