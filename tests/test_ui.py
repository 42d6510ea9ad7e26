"""`qcrd-bench ui` serves the tracking store on 127.0.0.1: fetch the experiments through
the REST API, then stop it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import mlflow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ui_serves_the_store_on_localhost(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.MlflowClient(uri).create_experiment("qcrd-bench/svamp")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "qcrd_bench.cli", "ui", "--tracking-uri", uri, "--port", str(port)],
                            cwd=tmp_path, env=os.environ.copy(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        body = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                request = urllib.request.Request(f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search",
                                                 data=json.dumps({"max_results": 10}).encode(),
                                                 headers={"Content-Type": "application/json"})
                body = json.loads(urllib.request.urlopen(request, timeout=5).read())
                break
            except OSError:
                time.sleep(0.5)
        assert body is not None, proc.stdout.read1().decode() if proc.poll() is not None else "no answer"
        assert "qcrd-bench/svamp" in [e["name"] for e in body["experiments"]]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    first_line, second_line = proc.stdout.read().decode().splitlines()[:2]
    assert first_line.startswith(f"MLflow UI for {uri} at http://127.0.0.1:{port}")
    # No run yet: the experiment's runs table, without qcrd-bench's view.
    assert second_line == f"runs: http://127.0.0.1:{port}/#/experiments/1/runs?workflowType=machine_learning"


def test_ui_refuses_a_missing_store(tmp_path):
    from click.testing import CliRunner

    from qcrd_bench.cli import main

    result = CliRunner().invoke(main, ["ui", "--tracking-uri", f"sqlite:///{tmp_path / 'none.db'}"])
    assert result.exit_code == 2 and "does not exist" in result.output
    assert not (tmp_path / "none.db").exists()


def test_ui_refuses_a_port_in_use_in_one_line(tmp_path):
    from click.testing import CliRunner

    from qcrd_bench.cli import main

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.MlflowClient(uri).search_experiments()  # creates the store
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(main, ["ui", "--tracking-uri", uri, "--port", str(port)])
    assert result.exit_code == 2
    assert result.output == (f"error: --port {port}: 127.0.0.1:{port} is already in use (another `qcrd-bench ui` or "
                             f"server?); stop it or pick another port, e.g. --port {port + 1}\n")


def test_the_link_goes_to_the_newest_runs_with_qcrd_bench_columns(tmp_path):
    """The experiment of the newest run; qcrd-bench's view (its columns) where the runs are
    qcrd-bench's, written on the experiment if an older version left none."""
    from qcrd_bench.tracking import VIEW_TAG, newest_runs_link

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri)
    base = "http://127.0.0.1:5001"
    assert newest_runs_link(uri, base) == f"{base}/"  # an empty store: the home page
    ours, other = client.create_experiment("qcrd-bench/svamp"), client.create_experiment("notebooks")
    client.create_run(other, tags={"note": "not ours"}, start_time=1000)
    assert newest_runs_link(uri, base) == f"{base}/#/experiments/{other}/runs?workflowType=machine_learning"
    assert VIEW_TAG not in client.get_experiment(other).tags
    client.create_run(ours, tags={"qcrd.variant": "dss"}, start_time=2000)
    assert newest_runs_link(uri, base) == (f"{base}/#/experiments/{ours}/runs?workflowType=machine_learning"
                                           f"&viewStateShareKey=qcrd-bench")
    view = json.loads(client.get_experiment(ours).tags[VIEW_TAG])
    assert "metrics.`test/accuracy`" in view["selectedColumns"] and "tags.`qcrd.seed`" in view["selectedColumns"]
