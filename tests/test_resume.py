"""Checkpoints and `run --resume`: a run killed with SIGKILL at a random step and resumed
ends exactly as the same run left alone, with every metric step logged once."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
import torch

from qcrd_bench.checkpoint import Checkpoints
from qcrd_bench.errors import QcrdError

# A QCRD smoke run: a judge with an optimizer, a snapshot ring, sampled negatives, dropout.
RUN = ["-m", "qcrd", "-t", "svamp", "--preset", "smoke", "--limit", "16", "--set", "train.steps=24",
       "--set", "train.checkpoint_every=3", "--set", "train.log_every=1", "--set", "train.eval_every=8",
       "--set", "train.threads=1", "--set", "eval.max_new_tokens=8", "--set", "train.deterministic=true"]
TIMING = ("train/examples_per_s", "time/run_seconds")


def cli(*args: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "qcrd_bench.cli", *args], cwd=cwd, env=os.environ.copy(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def histories(uri: str, run_id: str) -> dict[str, list[tuple[int, float]]]:
    client = mlflow.MlflowClient(tracking_uri=uri)
    run = client.get_run(run_id)
    return {key: sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))
            for key in run.data.metrics if key not in TIMING}


def only_run(uri: str):
    client = mlflow.MlflowClient(tracking_uri=uri)
    (run,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
    return run


@pytest.mark.slow
def test_run_killed_at_a_random_step_resumes_to_the_same_metrics(mirror, tmp_path):
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    whole.mkdir(), broken.mkdir()
    uri_whole, uri_broken = (f"sqlite:///{d / 'mlflow.db'}" for d in (whole, broken))
    reference = cli("run", *RUN, "--tracking-uri", uri_whole, cwd=whole)
    out = reference.communicate(timeout=600)[0]
    assert reference.returncode == 0, out

    # Kill the second life once a checkpoint exists, at a random moment after it.
    victim = cli("run", *RUN, "--tracking-uri", uri_broken, cwd=broken)
    deadline = time.time() + 300
    while not list((broken / "checkpoints").glob("*/checkpoint.pt")) and time.time() < deadline:
        assert victim.poll() is None, victim.communicate()[0]
        time.sleep(0.05)
    time.sleep(random.Random().uniform(0.0, 2.0))
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=60)
    killed = only_run(uri_broken)
    assert killed.info.status == "RUNNING"  # as a preempted job leaves it
    (checkpoint,) = (broken / "checkpoints").glob("*/checkpoint.pt")
    assert torch.load(checkpoint, weights_only=True)["step"] < 24

    resumed = cli("run", "--resume", killed.info.run_id, "--tracking-uri", uri_broken, cwd=broken)
    out = resumed.communicate(timeout=600)[0]
    assert resumed.returncode == 0, out

    finished = only_run(uri_broken)
    assert finished.info.status == "FINISHED"
    got, want = histories(uri_broken, killed.info.run_id), histories(uri_whole, only_run(uri_whole).info.run_id)
    assert got.keys() == want.keys()
    for key in want:
        steps = [step for step, _ in got[key]]
        assert len(steps) == len(set(steps)), f"{key}: a step logged twice: {steps}"
        assert got[key] == want[key], key
    assert not (broken / "checkpoints" / killed.info.run_id).exists()  # removed once finished


def test_resume_refuses_a_finished_run_and_other_options(mirror, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run = cli("run", "-m", "finetune", "-t", "svamp", "--preset", "smoke", "--limit", "8", "--set", "train.steps=2",
              "--set", "eval.max_new_tokens=4", "--tracking-uri", uri, cwd=tmp_path)
    assert run.wait(timeout=300) == 0
    run_id = only_run(uri).info.run_id
    finished = cli("run", "--resume", run_id, "--tracking-uri", uri, cwd=tmp_path)
    assert finished.wait(timeout=120) == 2
    assert "already finished" in finished.stdout.read()
    mixed = cli("run", "--resume", run_id, "--seed", "3", "--set", "train.lr=0.1", "--tracking-uri", uri, cwd=tmp_path)
    assert mixed.wait(timeout=120) == 2
    assert "drop --seed, --set train.lr=0.1" in mixed.stdout.read()
    unknown = cli("run", "--resume", "0" * 32, "--tracking-uri", uri, cwd=tmp_path)
    assert unknown.wait(timeout=120) == 2
    assert "no such run" in unknown.stdout.read()


@pytest.mark.slow
def test_resuming_a_run_still_training_is_refused_and_leaves_it_alone(mirror, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    first = cli("run", *[a.replace("train.steps=24", "train.steps=2000") for a in RUN], "--tracking-uri", uri,
                cwd=tmp_path)
    try:
        deadline = time.time() + 300
        while not list((tmp_path / "checkpoints").glob("*/checkpoint.pt")) and time.time() < deadline:
            assert first.poll() is None, first.communicate()[0]
            time.sleep(0.1)
        run_id = only_run(uri).info.run_id
        second = cli("run", "--resume", run_id, "--tracking-uri", uri, cwd=tmp_path)
        out = second.communicate(timeout=300)[0]
        assert second.returncode == 2 and "still training in another process" in out, out
        assert only_run(uri).info.status == "RUNNING"  # the live run's status is untouched
        assert first.poll() is None
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=120)
    assert only_run(uri).info.status == "KILLED"


def test_checkpoint_write_is_atomic_when_the_disk_fills(tmp_path, monkeypatch):
    checkpoints = Checkpoints(tmp_path / "run", every=1, run_id="r", config_hash="h")
    checkpoints.open()
    checkpoints.save({"step": 1, "weights": torch.ones(3)})

    def full_disk(obj, handle):
        handle.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(QcrdError, match="disk is full.*previous checkpoint.*intact"):
        checkpoints.save({"step": 2, "weights": torch.zeros(3)})
    monkeypatch.undo()
    assert checkpoints.load()["step"] == 1
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["lock", "checkpoint.pt"] or \
        sorted(p.name for p in (tmp_path / "run").iterdir()) == ["checkpoint.pt", "lock"]


def test_a_damaged_or_foreign_checkpoint_is_never_trained_on(tmp_path):
    checkpoints = Checkpoints(tmp_path / "run", every=1, run_id="r", config_hash="h")
    checkpoints.open()
    checkpoints.save({"step": 4})
    other = Checkpoints(tmp_path / "run", every=1, run_id="r", config_hash="another")
    with pytest.raises(QcrdError, match="config_hash is 'h'"):
        other.load()
    checkpoints.path.write_bytes(checkpoints.path.read_bytes()[:20])
    with pytest.raises(QcrdError, match="unreadable"):
        checkpoints.load()


def test_a_second_process_cannot_resume_a_run_still_training(tmp_path):
    first = Checkpoints(tmp_path / "run", every=1, run_id="r", config_hash="h")
    first.open()
    probe = subprocess.run([sys.executable, "-c", (
        "from pathlib import Path; from qcrd_bench.checkpoint import Checkpoints\n"
        f"Checkpoints(Path({str(tmp_path / 'run')!r}), 1, 'r', 'h').open()")], capture_output=True, text=True)
    assert probe.returncode != 0 and "still training in another process" in probe.stderr
    first.close()
    again = Checkpoints(tmp_path / "run", every=1, run_id="r", config_hash="h")
    again.open()  # the lock is free once its holder is gone
    again.close()


def test_an_unwritable_checkpoint_folder_fails_before_training(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(QcrdError, match=f"checkpoint directory {blocker / 'run'}: not writable"):
        Checkpoints(blocker / "run", every=1, run_id="r", config_hash="h").open()
