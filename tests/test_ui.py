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
    first_line = proc.stdout.read().decode().splitlines()[0]
    assert first_line.startswith(f"MLflow UI for {uri} at http://127.0.0.1:{port}")


def test_ui_refuses_a_missing_store(tmp_path):
    from click.testing import CliRunner

    from qcrd_bench.cli import main

    result = CliRunner().invoke(main, ["ui", "--tracking-uri", f"sqlite:///{tmp_path / 'none.db'}"])
    assert result.exit_code == 2 and "does not exist" in result.output
    assert not (tmp_path / "none.db").exists()
