"""The "for teams" setup: an MLflow server over PostgreSQL with an artifact root, and
runs, sweeps and reports through it.  PostgreSQL comes from the `pgserver` wheel."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
from click.testing import CliRunner
from conftest import wait_until_answers

from qcrd_bench.cli import main

pgserver = pytest.importorskip("pgserver")
pytest.importorskip("psycopg")

FAST = ["--task", "svamp", "--preset", "smoke", "--limit", "8", "--set", "train.steps=2",
        "--set", "train.threads=1", "--set", "eval.max_new_tokens=4"]


@pytest.fixture
def team_server(tmp_path):
    """PostgreSQL on a Unix socket, and `mlflow server` over it on 127.0.0.1."""
    postgres = pgserver.get_server(str(tmp_path / "pg"), cleanup_mode="stop")
    postgres.psql("CREATE DATABASE mlflow;")
    backend = postgres.get_uri("mlflow")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = open(tmp_path / "server.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend,
                               "--artifacts-destination", str(tmp_path / "artifacts"), "--host", "127.0.0.1",
                               "--port", str(port), "--workers", "1"],
                              env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
                              stdout=log, stderr=log, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    wait_until_answers(url, 180, alive=lambda: server.poll() is None, why=(tmp_path / "server.log").read_text)
    try:
        yield url, tmp_path / "artifacts"
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=60)
        log.close()
        postgres.cleanup()


@pytest.mark.slow
def test_runs_sweeps_and_reports_through_a_postgres_backed_server(mirror, team_server, tmp_path, monkeypatch):
    url, artifacts = team_server
    monkeypatch.chdir(tmp_path)
    sweep = CliRunner().invoke(main, ["ablate", "-m", "dss,finetune", "--seeds", "0", *FAST, "--workers", "2",
                                      "--tracking-uri", url])
    assert sweep.exit_code == 0, sweep.output
    assert "2 ran, 0 already finished" in sweep.output
    parent_id = sweep.output.split("parent run ")[1].split()[0]

    report = CliRunner().invoke(main, ["report", "--run", parent_id, "--include-smoke", "--out", str(tmp_path / "rep"),
                                       "--tracking-uri", url])
    assert report.exit_code == 0, report.output
    table = (tmp_path / "rep" / "README.md").read_text()
    assert "dss" in table and "finetune" in table
    assert "The runs come from `qcrd-bench ablate` (variants dss,finetune, tasks svamp, seeds 0" in table
    # Artifacts went to the server's artifact root, not to the client's working directory.
    assert list(artifacts.rglob("config.json")) and not (tmp_path / "mlruns").exists()
