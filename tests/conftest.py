"""Shared fixtures: a tiny synthetic config that trains in about a second on a CPU."""

from __future__ import annotations

import contextlib
import copy
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import torch
from snntorch._neurons.neurons import SpikingNeuron

REPO = Path(__file__).resolve().parents[1]
SNN_STUDY = [sys.executable, "-m", "study"]

# Tiny tensors gain nothing from threads, and two processes spinning two threads each on two
# cores (a worker test, a background study) slow each other a hundredfold.
torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")

TINY = {
    "dataset": {"name": "synthetic", "val_size": 200},
    "model": {"channels": [4, 8], "num_steps": 5},
    "training": {"epochs": 2, "batch_size": 64, "device": "cpu"},
}


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


def env() -> dict[str, str]:
    """The environment for a CLI subprocess: one thread per process on a shared 2-core machine."""
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def dashboard_server(url: str, log: Path, *args: str):
    """``snn-study dashboard --storage url`` (stdout and stderr into ``log``) once it answers: its base URL.
    Stopped on leaving."""
    port = free_port()
    with log.open("w") as out:
        proc = subprocess.Popen([*SNN_STUDY, "dashboard", "--storage", url, "--port", str(port), *args], cwd=REPO,
                                stdout=out, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.time() + 90
            while True:
                try:
                    urllib.request.urlopen(f"{base}/api/studies", timeout=10).close()
                    break
                except OSError:
                    if proc.poll() is not None or time.time() > deadline:
                        raise AssertionError(f"the dashboard did not start: {log.read_text()}") from None
                    time.sleep(0.5)
            yield base
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=15)


def mnist_root() -> Path | None:
    """The folder holding MNIST/raw with all four files, if this machine has it."""
    for candidate in (os.environ.get("SNN_STUDY_DATA"), REPO.parent / "shared" / "data"):
        if candidate and all(
            (Path(candidate) / "MNIST" / "raw" / f).exists()
            for f in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
        ):
            return Path(candidate)
    return None


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
