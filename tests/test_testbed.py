"""The controlled testbed in a run: synth-arith's defaults, the ground-truth diagnostics a
run logs (qcrd_bench.truth), and suites that cross methods with teachers."""

from __future__ import annotations

import json

import mlflow
import pytest
from click.testing import CliRunner

from qcrd_bench.cli import main
from qcrd_bench.components import Example, Rationale
from qcrd_bench.truth import auroc, checker, rationale_metrics, teacher_truth
from conftest import runs_in

SMALL = ["--set", "task.train_size=60", "--set", "task.val_size=20", "--set", "task.test_size=30",
         "--student", "t5-tiny", "--set", "student.tokenizer=word", "--set", "train.threads=1",
         "--set", "train.steps=8", "--set", "train.eval_every=4", "--set", "train.iteration_steps=2",
         "--set", "train.log_every=2", "--set", "train.batch_size=8", "--set", "train.checkpoint_every=0",
         "--set", "eval.rationale_limit=20", "--set", "eval.samples_logged=5"]
GROUND_TRUTH = ("teacher/valid_frac", "filter/precision", "filter/recall", "negatives/teacher_invalid_frac",
                "train/neg_student_invalid_frac", "train/judge_auroc", "test/rationale_valid",
                "test/rationale_answer_accuracy")


def test_synth_arith_brings_its_teacher_and_preset(catalog):
    from qcrd_bench.config import resolve

    qcrd = resolve(catalog, "qcrd", "synth-arith")
    assert qcrd["preset"] == "synth-quick" and qcrd["teacher"]["name"] == "synthetic"
    # the quick preset is the calibrated `synth` one on fewer, smaller batches (ten iterations each)
    calibrated = resolve(catalog, "qcrd", "synth-arith", "synth")
    budget = ("steps", "batch_size", "iteration_steps")
    assert [qcrd["train"][k] for k in budget] == [1000, 32, 100]
    assert [calibrated["train"][k] for k in budget] == [1500, 64, 150]
    assert {k: v for k, v in qcrd["train"].items() if k not in budget} == {
        k: v for k, v in calibrated["train"].items() if k not in budget}
    assert calibrated["train"]["lr_schedule"] == "wsd"
    assert {k: v for k, v in qcrd.items() if k not in ("preset", "train")} == {
        k: v for k, v in calibrated.items() if k not in ("preset", "train")}
    assert qcrd["teacher"]["samples"] == 5 and qcrd["student"]["tokenizer"] == "word"
    assert calibrated["discriminator"]["encoder"] == "t5-tiny"  # a judge of its own, cheaper than the student
    assert resolve(catalog, "finetune", "synth-arith")["teacher"]["name"] == "none"
    assert resolve(catalog, "dss", "svamp")["teacher"]["name"] == "dss-palm"  # other tasks keep the method's
    explicit = resolve(catalog, "dss", "synth-arith", "smoke", cli_layer={"teacher.name": "none"})
    assert explicit["teacher"]["name"] == "none" and explicit["preset"] == "smoke"


def test_a_qcrd_run_logs_every_ground_truth_diagnostic(tracking_uri):
    result = CliRunner().invoke(main, ["run", "-m", "qcrd", "-t", "synth-arith", *SMALL, "--set",
                                       "teacher.p_dynamic=0.4", "--set", "discriminator.pretrain_steps=2",
                                       "--set", "negatives.lag=1", "--tracking-uri", tracking_uri, "--json"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    [run] = runs_in(tracking_uri)
    metrics = run.data.metrics
    assert not [k for k in GROUND_TRUTH if k not in metrics]
    assert run.data.params["train.lr_schedule"] == "wsd"  # the synth preset's, logged with the run
    # p_dynamic = 0.4: about 60% of the samples are right; the majority vote keeps mostly right ones.
    assert 0.4 < metrics["teacher/valid_frac"] < 0.8
    assert metrics["filter/precision"] > metrics["teacher/valid_frac"]
    assert metrics["negatives/teacher_invalid_frac"] > 0.8
    client = mlflow.MlflowClient(tracking_uri)
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train/judge_auroc")] == [2, 4, 6, 8]
    scored = mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/negatives/scored_samples.json")
    assert "truth" in scored["columns"]
    shown = mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/predictions/test_rationales.json")
    assert "truth" in shown["columns"] and len(shown["data"]) == 5


def test_one_seed_gives_dss_and_the_vote_only_variant_the_same_run(tracking_uri):
    """With a noise-free teacher of one phrasing every sample is the same text, and without negatives
    or a judge qcrd's loss is dss's (docs/method.md's sanity property): so the paired design holds only
    if the seed also gives both the same student, tokenizer included, though dss keeps one sample
    and qcrd-no-nk five."""
    histories = []
    for method in ("dss", "qcrd-no-nk"):
        result = CliRunner().invoke(main, ["run", "-m", method, "-t", "synth-arith", *SMALL, "--seed", "1",
                                           "--tracking-uri", tracking_uri, "--json"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        run_id = json.loads(result.stdout)["run_id"]
        client = mlflow.MlflowClient(tracking_uri)
        histories.append([(m.step, m.value) for m in client.get_metric_history(run_id, "train/loss")])
        assert client.get_run(run_id).data.metrics["data/n_pos"] == (1 if method == "dss" else 5)
    assert histories[0] == histories[1] and len(histories[0]) == 4


def test_a_cot_run_reads_its_rationale_from_the_label_output(tracking_uri):
    result = CliRunner().invoke(main, ["run", "-m", "cot", "-t", "synth-arith", *SMALL, "--tracking-uri",
                                       tracking_uri], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    [run] = runs_in(tracking_uri)
    assert {"test/rationale_valid", "test/rationale_answer_accuracy"} <= set(run.data.metrics)


def test_teacher_truth_counts_samples_filter_and_negatives():
    examples = [Example("a", "x", "1", 1.0, ("train", 0)), Example("b", "y", "2", 2.0, ("train", 1))]
    good, bad, worse = Rationale("good"), Rationale("bad"), Rationale("worse")
    good_b = Rationale("good")
    rationales = {"a": [good, bad, worse], "b": [good_b, bad]}
    positives = {"a": [good, bad], "b": [good_b]}
    negatives = {"a": [worse], "b": [bad]}
    labels = {"good": "valid", "bad": "wrong-operation", "worse": "arithmetic-error"}
    metrics = teacher_truth(lambda example, text: labels[text], examples, rationales, positives, negatives)
    assert metrics["teacher/valid_frac"] == pytest.approx(2 / 5)
    assert metrics["teacher/label/wrong-operation"] == pytest.approx(2 / 5)
    assert metrics["filter/precision"] == pytest.approx(2 / 3)  # good, bad, good_b kept
    assert metrics["filter/recall"] == 1.0
    assert metrics["negatives/teacher_invalid_frac"] == 1.0


def test_rationale_metrics_and_auroc(catalog):
    task = catalog.tasks.get("synth-arith")
    params = {**task.defaults, "train_size": 5, "val_size": 1, "test_size": 3}
    test = task.load(params).test
    gold = [task.gold_rationale(e, params).text for e in test]
    texts = [gold[0], gold[1] + " Noise", "nothing here"]
    metrics = rationale_metrics(task, test, texts, lambda e, t: task.check_rationale(e, t, params))
    assert metrics["test/rationale_answer_accuracy"] == pytest.approx(2 / 3)
    assert metrics["test/rationale_valid"] == pytest.approx(1 / 3)
    assert metrics["test/rationale_label/unparseable"] == pytest.approx(1 / 3)
    assert auroc([0.9, 0.8, 0.1], [True, True, False]) == 1.0 and auroc([0.5], [True]) is None


def test_the_checker_labels_each_example_and_text_once(catalog, monkeypatch):
    task = catalog.tasks.get("synth-arith")
    params = {**task.defaults, "train_size": 2, "val_size": 1, "test_size": 1}
    first, second = task.load(params).train
    gold = task.gold_rationale(first, params).text
    calls = []
    original = type(task).check_rationale
    monkeypatch.setattr(type(task), "check_rationale",
                        lambda self, e, t, p: calls.append((e.id, t)) or original(self, e, t, p))
    check = checker(task, params)
    labels = [check(first, gold), check(first, gold), check(first, "nothing"), check(second, gold)]
    assert labels[:3] == ["valid", "valid", "unparseable"] and labels[3] != "valid"
    assert calls == [(first.id, gold), (first.id, "nothing"), (second.id, gold)]


def test_a_suite_crosses_methods_with_teachers(catalog, tmp_path):
    from qcrd_bench.ablate import cells, load_suite

    (tmp_path / "noise.yaml").write_text(
        "name: noise\npreset: smoke\ntasks: [synth-arith]\nseeds: [0]\nvariants: [finetune, dss]\n"
        "teachers:\n  clean: {}\n  dynamic: {teacher.p_dynamic: 0.4}\n")
    grid = load_suite(str(tmp_path / "noise.yaml"), catalog)
    assert [v.label for v in grid.variants] == ["finetune", "dss[teacher=clean]", "dss[teacher=dynamic]"]
    configs = {c.variant.label: c.config for c in cells(catalog, grid)}
    assert configs["dss[teacher=dynamic]"]["teacher"]["p_dynamic"] == 0.4
    assert configs["dss[teacher=clean]"]["teacher"]["p_dynamic"] == 0.0


def test_the_heuristics_script_scores_the_synth_level_below_a_learned_student():
    import importlib.util
    from pathlib import Path

    from qcrd_bench.config import PRESETS
    from qcrd_plugins.tasks.synth_arith import SynthArith, generate_splits

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "calibration" / "heuristics.py"
    spec = importlib.util.spec_from_file_location("heuristics", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    params = {**SynthArith.defaults, **PRESETS["synth"]["task"], "train_size": 500, "val_size": 50, "test_size": 800}
    splits = generate_splits(params)
    scores = module.heuristics(splits["train"], splits["test"])
    # The asked person always has one event, so the start is never the answer; the best
    # question-blind guess is right about half the time (two people); dss reaches 90%.
    assert scores["asked person's start"] == 0.0
    assert 0.35 < scores["question-blind solver"] < 0.7
    assert max(scores.values()) < 0.7
