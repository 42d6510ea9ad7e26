"""Data-parallel training: a smoke run under `accelerate launch` with 2 CPU processes (gloo)
ends as one FINISHED run whose losses match the same run in one process.

The student is t5-tiny without dropout and with eager attention (a plugin written by the
test).  Dropout masks are drawn per process for tensors of the shard's shape, so with
dropout the two runs differ by design (about 2% on train/loss here); and with CPU sdpa
attention an example's gradient changes by up to ~1% with the padding of its batch (in one
process too), so two half-batches padded to their own widths do not add up to the whole.
Neither is the gradient sync under test.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
import torch

from qcrd_bench.distributed import combine, local_part, overlay, shard
from qcrd_bench.training import batches

SMOKE = ["-t", "svamp", "--preset", "smoke", "--limit", "16", "--student", "t5-tiny-nodropout",
         "--set", "train.steps=10", "--set", "train.log_every=1", "--set", "train.eval_every=5",
         "--set", "train.threads=1", "--set", "eval.max_new_tokens=8", "--json"]
FINAL = ("test/accuracy", "final/test_accuracy", "best/val_accuracy", "eval/parse_rate", "test/accuracy_flexible")

PLUGIN = '''
import torch
from qcrd_bench.components import StudentBuilder
from qcrd_bench.hookspecs import hookimpl


class NoDropoutT5(StudentBuilder):
    name = "t5-tiny-nodropout"
    description = "t5-tiny without dropout (test_distributed)"
    defaults = {"vocab_size": 2048}

    def build(self, params, train_texts, seed):
        from qcrd_bench.students import t5_from_config

        student = t5_from_config("t5-tiny", train_texts, seed=seed, vocab_size=params["vocab_size"])
        # Eager attention: with CPU sdpa, an example's gradient depends (up to ~1%) on how
        # far its batch pads the input, so the halves of a batch would not add up to the whole.
        student.model.set_attn_implementation("eager")
        student.model.config.dropout_rate = 0.0
        for module in student.model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
            elif isinstance(getattr(module, "dropout", None), float):  # attention dropout (sdpa's dropout_p)
                module.dropout = 0.0
        return student


@hookimpl
def register_students(register):
    register(NoDropoutT5())
'''


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run(folder: Path, method: str, processes: int, plugins: Path) -> tuple[dict, str]:
    """One smoke run in its own store; (summary printed on stdout, store URI)."""
    folder.mkdir()
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    cli = ["-m", "qcrd_bench.cli", "run", "-m", method, *SMOKE, "--plugins-dir", str(plugins), "--tracking-uri", uri]
    if processes == 1:
        command = [sys.executable, *cli]
    else:  # `--multi_gpu` is accelerate's multi-process launcher; ACCELERATE_USE_CPU keeps it on the CPU (gloo)
        command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes",
                   str(processes), "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                   "--main_process_port", str(free_port()), *cli]
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout), uri  # one summary: only the main process prints


def only_run(uri: str):
    client = mlflow.MlflowClient(tracking_uri=uri)
    (stored,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
    return stored


def history(uri: str, run_id: str, key: str) -> list[tuple[int, float]]:
    client = mlflow.MlflowClient(tracking_uri=uri)
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def compare(one: str, two: str, key: str, rtol: float, steps: int | None = None) -> float:
    """Assert that ``key`` is logged at the same steps in both stores and agrees within
    ``rtol`` (only the first ``steps`` steps with ``steps``); return the largest difference."""
    a, b = history(one, only_run(one).info.run_id, key), history(two, only_run(two).info.run_id, key)
    assert [s for s, _ in a] == [s for s, _ in b] and a, key
    worst = 0.0
    for (step, x), (_, y) in list(zip(a, b))[:steps]:
        worst = max(worst, abs(x - y) / max(abs(x), 1e-12))
        assert abs(x - y) <= rtol * abs(x), f"{key} at step {step}: {x} (1 process) vs {y} (2 processes)"
    return worst


@pytest.fixture
def plugins(tmp_path) -> Path:
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "nodropout.py").write_text(PLUGIN)
    return folder


def check_tracked_once(summary: dict, uri: str, single_uri: str) -> None:
    stored = only_run(uri)  # exactly one run: only the main process opens one
    assert stored.info.status == "FINISHED" and stored.info.run_id == summary["run_id"]
    assert stored.data.tags["qcrd.processes"] == "2" and only_run(single_uri).data.tags["qcrd.processes"] == "1"
    assert stored.data.tags["qcrd.config_hash"] == only_run(single_uri).data.tags["qcrd.config_hash"]
    for key in FINAL:
        assert key in stored.data.metrics and key in summary, key
    assert [s for s, _ in history(uri, stored.info.run_id, "val/accuracy")] == [5, 10]


@pytest.mark.slow
def test_two_processes_match_one(mirror, tmp_path, plugins):
    """DSS: every train/loss step of the 2-process run is within rel 1e-5 of the 1-process run.

    Both see the same global batches of 8 (each process takes 4) and start from the same
    weights; the difference is float32 rounding: each process pads its half to its own
    width, so matrix shapes and summation order differ, and the gradient is the average of
    two half-batch means instead of one mean over 8.  Measured: at most 1.1e-7 relative
    over the 10 steps (train/loss, loss_pred, loss_explain); validation and test metrics equal."""
    single, single_uri = run(tmp_path / "one", "dss", 1, plugins)
    double, uri = run(tmp_path / "two", "dss", 2, plugins)
    check_tracked_once(double, uri, single_uri)
    for key in ("train/loss", "train/loss_pred", "train/loss_explain"):
        compare(single_uri, uri, key, rtol=1e-5)
    assert [s for s, _ in history(uri, double["run_id"], "train/loss")] == list(range(1, 11))
    assert history(uri, double["run_id"], "train/lr") == history(single_uri, single["run_id"], "train/lr")


@pytest.mark.slow
def test_qcrd_judge_and_self_play_in_two_processes(mirror, tmp_path, plugins):
    """QCRD (judge pre-trained and updated online, teacher + self-play negatives) under
    2 processes finishes, with losses within rel 5e-2 of one process (measured: at most
    5.7e-3 on train/loss over 10 steps).  They cannot agree as closely as DSS: each process
    samples the self-play negatives of its own examples, so they are other draws than one
    process's; and L_cl and L_D average over the examples that have positives (and
    negatives), which the split weights by each process's share of examples instead.

    Tight where nothing is sampled: the judge's pre-training (every process runs it
    identically) and step 1's L_pred (same weights, same batch) agree within 1e-5.  That the
    processes' students and judges stay identical is checked by the run itself at its end
    (it fails otherwise)."""
    single, single_uri = run(tmp_path / "one", "qcrd", 1, plugins)
    double, uri = run(tmp_path / "two", "qcrd", 2, plugins)
    check_tracked_once(double, uri, single_uri)
    for key in ("disc_pretrain/loss", "disc_pretrain/accuracy"):
        compare(single_uri, uri, key, rtol=1e-5)
    compare(single_uri, uri, "train/loss_pred", rtol=1e-5, steps=1)
    compare(single_uri, uri, "train/loss", rtol=5e-2)
    assert "train/loss_d" in only_run(uri).data.metrics and "train/score_neg" in only_run(uri).data.metrics


def test_global_batches_do_not_depend_on_the_process_count():
    """Each global batch of `batches` is split among the processes without loss or
    overlap; the loss factors make the averaged gradient the mean over the whole batch."""
    stream = batches(10, 4, torch.Generator().manual_seed(0))
    epoch = [next(stream) for _ in range(3)]  # 4 + 4 + 2
    assert sorted(i for b in epoch for i in b) == list(range(10))
    for world in (1, 2, 3):
        for chunk in epoch:
            parts = [shard(chunk, rank, world) for rank in range(world)]
            real = [p for p, factor in parts if factor > 0]
            assert sorted(i for p in real for i in p) == sorted(chunk)
            # The averaged gradient is sum(factor · grad of the share's mean) / world: each share
            # weighs its count of examples, and the weights add up to 1.
            assert all(factor / world == pytest.approx(len(p) / len(chunk)) for p, factor in parts if factor)
            assert sum(factor for _, factor in parts) / world == pytest.approx(1.0)
    # Fewer examples than processes: the empty share trains on a stand-in with factor 0.
    assert shard([7, 8], 2, 3) == ([7], 0.0)
    assert shard([7, 8], 0, 3) == ([7], 1.5)
    assert shard(epoch[0], 0, 1) == (epoch[0], 1.0)


def test_logged_values_are_means_over_the_batch_examples():
    values, examples = combine([({"loss": 2.0}, 3), ({"loss": 4.0}, 1), ({"loss": 100.0}, 0)])
    assert examples == 4 and values == {"loss": pytest.approx(2.5)}


def test_each_process_keeps_its_own_tensor_free_state_on_resume():
    main = {"ring": [[0, {"w": torch.ones(2)}]], "cache": {"a": "main's"}, "iteration": 3,
            "module": {"w": torch.zeros(1)}}
    mine = local_part({"ring": [[0, {"w": torch.full((2,), 5.0)}]], "cache": {"b": "mine"}, "iteration": 3,
                   "module": {"w": torch.ones(1)}})
    merged = overlay(main, mine)
    assert merged["cache"] == {"b": "mine"} and merged["iteration"] == 3
    assert merged["ring"][0][1]["w"] is main["ring"][0][1]["w"] and merged["module"]["w"] is main["module"]["w"]
