"""One smoke run per new task (the issue's "done when"), each a FINISHED MLflow run with
both extractors' accuracies and, for dss, the teacher's accuracy on the rows used."""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

from qcrd_bench.cli import main
from conftest import runs_in

@pytest.fixture(scope="module")
def empty_store(tmp_path_factory):
    """An MLflow store with its tables made once: creating them costs seconds per test."""
    import mlflow

    path = tmp_path_factory.mktemp("store") / "mlflow.db"
    mlflow.MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def store(tracking_uri, empty_store) -> str:
    shutil.copy(empty_store, tracking_uri.removeprefix("sqlite:///"))
    return tracking_uri


# One torch thread: with two on a busy 2-core machine, OpenMP barriers make each step ~100x slower.
SMOKE = ["--preset", "smoke", "--limit", "64", "--set", "train.steps=4", "--set", "train.eval_every=4",
         "--set", "train.threads=1", "--json"]


@pytest.mark.parametrize("method,task,extra", [
    ("dss", "cqa", []),
    ("dss", "anli1", ["--set", "task.train_split=valid"]),
    ("dss", "esnli", ["--set", "task.train_split=valid"]),
    ("finetune", "gsm8k", []),  # no published rationale source for GSM8K yet
    ("finetune", "asdiv", []),
], ids=lambda v: v if isinstance(v, str) else "")
def test_smoke_run(method, task, extra, mirror, store):
    import mlflow

    args = ["run", "-m", method, "-t", task, *SMOKE, *extra, "--tracking-uri", store]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    [run] = runs_in(store)
    assert run.info.status == "FINISHED" and run.data.tags["qcrd.task"] == task
    metrics = run.data.metrics
    for key in ("test/accuracy", "test/accuracy_flexible", "final/test_accuracy_flexible", "eval/parse_rate"):
        assert 0 <= metrics[key] <= 1, key
    assert metrics["test/accuracy_flexible"] >= metrics["test/accuracy"] == summary["test/accuracy"]
    assert metrics["data/train_size"] == 64
    if method == "dss":
        assert metrics["data/teacher_accuracy"] > 0.4 and metrics["data/rationale_coverage"] == 1.0
    local = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, tracking_uri=store)
    notes = json.load(open(f"{local}/data.json"))["notes"]
    assert notes["validation"] and ("train_split" in notes) == bool(extra)
    table = json.load(open(f"{local}/predictions/test.json"))
    assert table["columns"][-2:] == ["parsed_answer_flexible", "correct_flexible"] and len(table["data"]) == 64


def test_missing_train_split_leaves_no_run(mirror, store):
    result = CliRunner().invoke(main, ["run", "-m", "dss", "-t", "esnli", *SMOKE, "--tracking-uri", store])
    assert result.exit_code == 2
    assert "esnli/dss/esnli_train.json" in result.output and "--set task.train_split=valid" in result.output
    assert runs_in(store) == []
