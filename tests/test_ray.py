"""`ablate --executor ray` on a local Ray instance (2 CPUs): children as Ray tasks, a
crashed child retried, the same parent and aggregates as a local sweep."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from conftest import runs_in
from qcrd_bench.cli import main

pytest.importorskip("ray")

FAST = ["--task", "svamp", "--preset", "smoke", "--limit", "8", "--set", "train.steps=2",
        "--set", "eval.max_new_tokens=4"]

# Kills its process (as the OOM killer or a lost node would) the first time a seed-1 run starts.
CRASH_ONCE = '''
import os
from pathlib import Path
from qcrd_bench.hookspecs import hookimpl

@hookimpl
def qcrd_run_start(config, run_id):
    marker = Path(os.environ["CRASH_MARKER"])
    if config["seed"] == 1 and not marker.exists():
        marker.write_text(run_id)
        os._exit(137)
'''


@pytest.mark.slow
def test_ray_sweep_retries_a_crashed_child(mirror, tracking_uri, tmp_path, monkeypatch):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "crash_once.py").write_text(CRASH_ONCE)
    marker = tmp_path / "crashed"
    monkeypatch.setenv("CRASH_MARKER", str(marker))
    result = CliRunner().invoke(main, ["ablate", "-m", "dss", "--seeds", "0,1", *FAST, "--executor", "ray",
                                       "--plugins-dir", str(plugins), "--tracking-uri", tracking_uri])
    assert result.exit_code == 0, result.output
    assert "ray: 2 children, 1 CPU(s) each" in result.output and "2 ran, 0 already finished" in result.output
    runs = runs_in(tracking_uri)
    (parent,) = [r for r in runs if r.data.tags.get("qcrd.kind") == "ablate"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    finished = [r for r in children if r.info.status == "FINISHED"]
    assert sorted(r.data.tags["qcrd.seed"] for r in finished) == ["0", "1"]
    # The attempt that died is settled FAILED by its retry, never left RUNNING.
    (dead,) = [r for r in children if r.info.run_id == marker.read_text()]
    assert dead.info.status == "FAILED"
    assert parent.info.status == "FINISHED" and parent.data.metrics["dss/svamp/test/accuracy_n"] == 2


def test_ray_refuses_a_cluster_that_cannot_reach_a_sqlite_store(mirror, tracking_uri):
    result = CliRunner().invoke(main, ["ablate", "-m", "dss", "--seeds", "0", *FAST, "--executor", "ray",
                                       "--ray-address", "ray://head:10001", "--tracking-uri", tracking_uri])
    assert result.exit_code == 2 and "cannot reach the SQLite store" in result.output
    assert runs_in(tracking_uri) == []
