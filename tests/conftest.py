"""Shared fixtures.  Tests never reach the network: the hub is offline and data
comes from the local mirror (QCRD_BENCH_DATA_DIR, default ../shared/data)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# Resolved: the README runs the tests with a relative QCRD_BENCH_DATA_DIR=../shared/data.
MIRROR = Path(os.environ.get("QCRD_BENCH_DATA_DIR") or Path(__file__).parents[2] / "shared" / "data").resolve()


@pytest.fixture
def mirror(monkeypatch) -> Path:
    if not (MIRROR / "svamp" / "dss" / "svamp_train.json").exists():
        pytest.skip(f"no data mirror at {MIRROR}")
    monkeypatch.setenv("QCRD_BENCH_DATA_DIR", str(MIRROR))
    return MIRROR


@pytest.fixture
def catalog():
    """A fresh plugin manager and registries for each test."""
    from qcrd_bench.plugins import load_catalog

    return load_catalog()


@pytest.fixture
def tracking_uri(tmp_path, monkeypatch) -> str:
    monkeypatch.chdir(tmp_path)
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def runs_in(uri: str):
    """Every run in every experiment of a tracking store.  Under the store's lock, as the
    suite's own processes take it: a test polling a store that a subprocess is creating
    would otherwise race MLflow's schema migration ("duplicate column name")."""
    import mlflow

    from qcrd_bench.tracking import store_lock

    with store_lock(uri):  # MlflowClient creates a new store's tables as it is made
        client = mlflow.MlflowClient(tracking_uri=uri)
        ids = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(ids) if ids else []


def wait_until_answers(url: str, timeout_s: float, alive=lambda: True, why=lambda: "") -> None:
    """Poll ``url``/health until it answers; fail with ``why()`` once ``alive()`` is false or
    the time is up (a test's server that did not come up, or did not come back)."""
    import time
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=2).read()
            return
        except OSError:
            assert alive() and time.monotonic() < deadline, why() or f"{url} did not answer"
            time.sleep(0.5)
