"""Several processes on one SQLite store and one generation cache at once."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import runs_in, wait_until_answers
from fake_openai import FakeOpenAI
from qcrd_bench.errors import ConfigError
from qcrd_bench.prompting import GenerationCache
from qcrd_bench.rationales import read_set


def test_runs_started_together_on_a_new_store_all_land(mirror, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"  # does not exist yet: the schema is created by the racers
    procs = [subprocess.Popen([sys.executable, "-m", "qcrd_bench.cli", "run", "-m", "finetune", "-t", "svamp",
                               "--preset", "smoke", "--limit", "8", "--seed", str(seed), "--set", "train.steps=3",
                               "--set", "train.log_every=1", "--set", "train.threads=1",
                               "--set", "eval.max_new_tokens=4", "--tracking-uri", uri],
                              cwd=tmp_path, env=os.environ.copy(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
             for seed in range(3)]
    outputs = [p.communicate(timeout=600)[0].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outputs
    runs = runs_in(uri)
    assert sorted(r.data.tags["qcrd.seed"] for r in runs) == ["0", "1", "2"]
    assert all(r.info.status == "FINISHED" and "train/loss" in r.data.metrics for r in runs)


def test_two_teach_processes_share_one_cache(mirror, tmp_path, monkeypatch):
    """Concurrent writers neither duplicate nor corrupt the cache, and both sets are whole."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    cache = tmp_path / "shared.sqlite"
    with FakeOpenAI() as server:
        procs = [subprocess.Popen([sys.executable, "-m", "qcrd_bench.cli", "teach", "-t", "svamp", "--teacher",
                                   "openai", "--limit", "6", "--samples", "3", "--set", "teacher.model=fake",
                                   "--set", f"teacher.base_url={server.url}", "--set", f"teacher.cache={cache}",
                                   "--set", "teacher.concurrency=2", "-o", str(tmp_path / f"set{i}.jsonl"),
                                   "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"],
                                  cwd=tmp_path, env=os.environ.copy(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
                 for i in range(2)]
        outputs = [p.communicate(timeout=300)[0].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    first, second = (read_set(tmp_path / f"set{i}.jsonl")[1] for i in range(2))
    assert first == second and len(first) == 6 and all(len(r["samples"]) == 3 for r in first)
    import sqlite3

    with sqlite3.connect(cache) as db:
        assert db.execute("SELECT COUNT(*), COUNT(DISTINCT key || ':' || idx) FROM samples").fetchone() == (18, 18)


def _open_cache_at(args: tuple[str, float]) -> str:
    path, start = args
    while time.time() < start:  # all processes open the new file at the same instant
        pass
    try:
        GenerationCache(Path(path)).close()
        return "ok"
    except ConfigError as exc:
        return str(exc)


def test_processes_opening_a_new_cache_at_once_all_succeed(tmp_path):
    """SQLite refuses, without waiting, a second process switching a new file to WAL."""
    # Default SIGTERM in the workers: Pool.__exit__ stops them with it, and a handler left in this
    # process by an earlier in-process command would let a worker survive and the join hang.
    with multiprocessing.get_context("fork").Pool(4, initializer=signal.signal,
                                                  initargs=(signal.SIGTERM, signal.SIG_DFL)) as pool:
        for round_ in range(25):
            start = time.time() + 0.05
            results = pool.map(_open_cache_at, [(str(tmp_path / f"cache{round_}.sqlite"), start)] * 4)
            assert results == ["ok"] * 4, results


def test_a_sweeps_store_server_that_stops_is_started_again(tmp_path):
    """A sweep's workers write through a local server; killed mid-sweep (as `pkill -f "mlflow
    server"` does), it comes back on the same port, so the workers' retried requests land."""
    import urllib.request

    import mlflow

    from qcrd_bench import tracking

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.MlflowClient(uri).search_experiments()  # creates the store
    said: list[str] = []
    with tracking.local_server(uri, said.append) as url:
        first = urllib.request.urlopen(f"{url}/health", timeout=5).status
        pid = next(p for p in _children() if b"mlflow" in _cmdline(p))
        os.killpg(pid, signal.SIGKILL)
        wait_until_answers(url, 90, why=lambda: "the server did not come back")
        client = mlflow.MlflowClient(url)
        client.create_run(client.create_experiment("after"))
    assert first == 200 and len(said) == 1 and "stopped" in said[0] and "starting it again" in said[0]
    assert [e.name for e in mlflow.MlflowClient(uri).search_experiments() if e.name == "after"] == ["after"]
    assert not [p for p in _children() if b"mlflow" in _cmdline(p)], "the restarted server outlived the block"


def _children() -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(os.getpid())], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def test_a_server_that_keeps_stopping_is_given_up_after_five_restarts(monkeypatch):
    import threading

    from qcrd_bench import tracking

    class Stopped:
        pid = -1

        def poll(self):
            return 1

    started = []
    monkeypatch.setattr(tracking, "_start_server", lambda *args: started.append(1) or Stopped())
    monkeypatch.setattr(tracking, "_stop_server", lambda process: None)
    said: list[str] = []
    server = tracking.Server("http://127.0.0.1:1", Stopped())
    tracking.keep_alive(server, [], {}, None, threading.Event(), said.append, poll_s=0.0)
    assert len(started) == 5 and len(said) == 6
    assert "after 5 restarts; not starting it again" in said[-1]
