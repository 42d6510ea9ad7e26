"""One real run per built-in method on SVAMP with a tiny student, checked in MLflow."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from qcrd_bench.cli import main
from conftest import runs_in

ARGS = ["--task", "svamp", "--preset", "smoke", "--limit", "40", "--seed", "1",
        "--set", "train.steps=6", "--set", "train.eval_every=3", "--set", "train.log_every=2",
        "--set", "train.threads=1", "--json"]  # one thread: tiny matrices, and no oversubscription


@pytest.mark.parametrize("method", ["finetune", "dss"])
def test_run_is_tracked(method, mirror, tracking_uri):
    import mlflow

    result = CliRunner().invoke(main, ["run", "--method", method, *ARGS, "--tracking-uri", tracking_uri],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    [run] = runs_in(tracking_uri)
    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    assert run.info.status == "FINISHED" and run.info.run_id == summary["run_id"]
    assert client.get_experiment(run.info.experiment_id).name == "qcrd-bench/svamp"

    tags = run.data.tags
    assert tags["qcrd.method"] == method and tags["qcrd.task"] == "svamp" and tags["qcrd.seed"] == "1"
    assert tags["qcrd.variant"] == method and tags["qcrd.smoke"] == "true" and len(tags["qcrd.config_hash"]) == 10
    assert tags["qcrd.loss"] == ("0.5·L_pred + 0.5·L_explain" if method == "dss" else "L_pred")

    metrics = run.data.metrics
    for key in ("test/accuracy", "final/test_accuracy", "eval/parse_rate", "best/val_accuracy", "val/accuracy",
                "test/accuracy_flexible", "final/test_accuracy_flexible",
                "train/loss", "train/loss_pred", "data/train_size"):
        assert key in metrics, key
    assert 0 <= metrics["test/accuracy"] <= 1 and 0 <= metrics["eval/parse_rate"] <= 1
    assert metrics["test/accuracy"] == summary["test/accuracy"]
    assert metrics["data/train_size"] == 40 and metrics["data/test_size"] == 40
    validations = client.get_metric_history(run.info.run_id, "val/accuracy")
    assert [m.step for m in validations] == [3, 6]
    # How fast it learned: the mean of its validation accuracies, one per evaluation.
    assert metrics["val/mean_accuracy"] == pytest.approx(sum(m.value for m in validations) / 2)
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")] == [2, 4, 6]
    if method == "dss":
        assert "train/loss_explain" in metrics and 0.6 < metrics["data/teacher_accuracy"] < 0.9
        assert 0 < metrics["data/rationale_truncated"] < 1  # some PaLM rationales exceed the smoke preset's 64 tokens
    assert metrics["data/input_truncated"] == 0

    # What the UI shows: the result first in the run's description, the whole run in its Duration
    # (loading included, as time/run_seconds counts it), qcrd-bench's columns in the experiment's view.
    description = tags["mlflow.note.content"]
    assert description.startswith(f"**test/accuracy {100 * summary['test/accuracy']:.1f}%** at the best-validation step")
    assert "Note: a smoke run" in description and "qcrd-bench report --experiment qcrd-bench/svamp" in description
    assert "Curves: the Model metrics tab, sections `train` and `val`" in description
    assert abs((run.info.end_time - run.info.start_time) / 1000 - metrics["time/run_seconds"]) < 2
    view = json.loads(client.get_experiment(run.info.experiment_id).tags["mlflow.sharedViewState.qcrd-bench"])
    assert view["selectedColumns"][:3] == ["metrics.`test/accuracy`", "metrics.`best/val_accuracy`",
                                           "tags.`qcrd.method`"]
    assert tags["mlflow.source.name"] and tags["mlflow.runName"] == f"{method}-svamp-s1"  # as mlflow.start_run sets

    assert run.data.params["method"] == method and run.data.params["student.name"] == "t5-tiny"
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.json", "versions.json", "data.json", "predictions", "tokenizer"} <= artifacts
    local = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, tracking_uri=tracking_uri)
    config = json.load(open(f"{local}/config.json"))
    assert config["method"] == method and config["seed"] == 1
    table = json.load(open(f"{local}/predictions/test.json"))
    assert table["columns"] == ["id", "input", "gold", "prediction", "parsed_answer", "correct",
                                "parsed_answer_flexible", "correct_flexible"]
    assert len(table["data"]) == 40
    data = json.load(open(f"{local}/data.json"))
    assert len(data["files"]["svamp/dss/svamp_train.json"]) == 64
    versions = json.load(open(f"{local}/versions.json"))
    assert versions["packages"]["torch"] and any(p["name"] == "qcrd_plugins.methods" for p in versions["plugins"])


def test_same_seed_same_metrics(mirror, tracking_uri):
    """Determinism on CPU: the same seed and config give identical metrics and losses."""
    import mlflow

    args = ["run", "-m", "dss", *ARGS, "--tracking-uri", tracking_uri]
    first, second = (json.loads(CliRunner().invoke(main, args, catch_exceptions=False).stdout) for _ in range(2))
    for key in ("test/accuracy", "final/test_accuracy", "eval/parse_rate", "best/val_accuracy"):
        assert first[key] == second[key]
    client = mlflow.MlflowClient(tracking_uri)
    losses = [[m.value for m in client.get_metric_history(run_id, "train/loss")]
              for run_id in (first["run_id"], second["run_id"])]
    assert losses[0] == losses[1]


def test_length_grouped_batches_cover_each_epoch_once_and_pad_less():
    import torch

    from qcrd_bench.training import batches

    lengths = [((i * 37) % 50) + 1 for i in range(100)]
    stream = batches(100, 8, torch.Generator().manual_seed(0), lengths=lengths, group=4)
    epoch = [next(stream) for _ in range(13)]  # 100 examples in batches of 8: 12 full and 1 short
    assert sorted(i for b in epoch for i in b) == list(range(100))
    plain = batches(100, 8, torch.Generator().manual_seed(0))
    padding = lambda bs: sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in bs)
    assert padding(epoch) < padding([next(plain) for _ in range(13)]) / 2
    again = batches(100, 8, torch.Generator().manual_seed(0), lengths=lengths, group=4)
    assert [next(again) for _ in range(13)] == epoch  # seeded
