"""The `distill` and `cot` baselines: their label targets, how cot's answer is read,
Task.format_answer, and one tracked smoke run each."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from qcrd_bench import arith
from qcrd_bench.cli import main
from qcrd_bench.components import PREDICT, Example, Loss, Rationale
from qcrd_bench.evaluation import score
from qcrd_bench.training import lr_scheduler
from qcrd_plugins.losses import CotCE, TeacherLabelCE
from qcrd_plugins.tasks import Anli1, Choice, Cqa, Gsm8k, Svamp
from conftest import runs_in

CHOICES = ("bank", "river", "library", "park", "shop")
CQA_EXAMPLE = Example("c", "Where are fish?\nAnswer Choices:\n(a) bank", "river", Choice("river", CHOICES),
                      ("train", 0))
SVAMP_EXAMPLE = Example("s", "Tom has 3 apples and buys 4.", "( 3.0 + 4.0 )", 7.0, ("train", 0))
NLI_EXAMPLE = Example("n", "A man sleeps.</s>A man is awake.", "contradiction", "contradiction", ("train", 0))


# ---------------------------------------------------------------- Task.format_answer


@pytest.mark.parametrize("value,text", [(42.0, "42"), (2.5, "2.5"), (-3.5, "-3.5"), (7, "7"), (0.0, "0"),
                                        (-0.0, "0"), (0.0001, "0.0001"), (1e-7, "0.0000001"),
                                        (1e15, "1000000000000000"), (16 / 3, "5.333333333333333")])
@pytest.mark.parametrize("task", [Gsm8k(), Svamp()], ids=["gsm8k", "svamp"])
def test_numbers_are_compact_and_round_trip(task, value, text):
    assert task.format_answer(value) == text
    assert arith.numbers_equal(task.parse_answer(text), value)


def test_cqa_answer_is_the_choice_text():
    task = Cqa()
    assert task.format_answer(Choice("river", CHOICES)) == "river"
    assert task.format_answer("river") == "river"  # a teacher's answer, resolved to the choice text
    assert task.extract_answer(task.format_answer("river"), CQA_EXAMPLE) == "river"


def test_nli_answer_is_the_label_word():
    task = Anli1()
    assert task.format_answer("neutral") == "neutral" and task.parse_answer("neutral") == "neutral"


# ---------------------------------------------------------------- the Loss hooks


def test_default_hooks_keep_the_gold_label_and_the_whole_output():
    loss = Loss()
    assert loss.predict_prefix == PREDICT == "predict: "
    assert loss.label_target(SVAMP_EXAMPLE, [Rationale("r", 8.0)], Svamp()) == SVAMP_EXAMPLE.label
    assert loss.answer_text(" 42 ") == " 42 "
    assert loss.max_new_tokens({"eval": {"max_new_tokens": 24}, "train": {"max_target_length": 64}}) == 24


@pytest.mark.parametrize("task,example,positives,target", [
    (Svamp(), SVAMP_EXAMPLE, [Rationale("no answer here"), Rationale("3 + 4 = 8", 8.0)], "8"),
    (Svamp(), SVAMP_EXAMPLE, [Rationale("3 + 4 = 7.5", 7.5), Rationale("7", 7.0)], "7.5"),
    (Cqa(), CQA_EXAMPLE, [Rationale("Fish live in water.", "library")], "library"),
    (Anli1(), NLI_EXAMPLE, [Rationale("Sleeping is not awake.", "neutral")], "neutral"),
    (Svamp(), SVAMP_EXAMPLE, [Rationale("unparseable")], None),
    (Svamp(), SVAMP_EXAMPLE, [], None),
], ids=["first-parsed", "first", "cqa", "nli", "unparsed", "none"])
def test_teacher_label_is_the_first_parsed_teacher_answer(task, example, positives, target):
    assert TeacherLabelCE().label_target(example, positives, task) == target


def test_cot_target_is_rationale_then_marker_then_gold():
    loss = CotCE()
    assert loss.predict_prefix == ""
    target = loss.label_target(SVAMP_EXAMPLE, [Rationale("3 + 4 = 7. ", 7.0), Rationale("other")], Svamp())
    assert target == "3 + 4 = 7. So the answer is ( 3.0 + 4.0 )"
    # Without a rationale the question is kept, not dropped: every method trains on the same questions.
    assert loss.label_target(CQA_EXAMPLE, [], Cqa()) == "So the answer is river"
    assert loss.max_new_tokens({"eval": {"max_new_tokens": 24}, "train": {"max_target_length": 64}}) == 64


@pytest.mark.parametrize("output,answer", [
    ("3 + 4 = 7. So the answer is 7.", "7"),
    ("so the answer is river", "river"),  # WordPiece students decode lower case
    ("So the answer is 5. No wait. So the answer is ( 3.0 + 4.0 ) .", "( 3.0 + 4.0 )"),
    ("So the answer is", ""),
    ("the answer is 7", None),
    ("", None),
], ids=["period", "lower-case", "several-markers", "empty-after", "no-marker", "empty"])
def test_cot_reads_the_answer_after_the_last_marker(output, answer):
    assert CotCE().answer_text(output) == answer


def test_score_gives_strict_the_answer_text_and_flexible_the_output():
    task, loss = Gsm8k(), CotCE()
    examples = [Example(str(i), "q", "7", 7.0, ("test", i)) for i in range(3)]
    outputs = ["3 + 4 = 7. So the answer is 7.", "3 + 4 = 7, it is 7", "So the answer is 8"]
    metrics, rows = score(task, examples, outputs, loss.answer_text)
    assert metrics == {"accuracy": 1 / 3, "accuracy_flexible": 2 / 3, "parse_rate": 2 / 3}
    assert rows[0]["prediction"] == outputs[0] and rows[0]["parsed_answer"] == "7.0"
    assert rows[1]["parsed_answer"] is None and rows[1]["parsed_answer_flexible"] == "7.0"


def test_encoding_uses_the_prefix_and_drops_examples_without_a_target():
    from qcrd_bench.students import t5_from_config
    from qcrd_bench.training import Tokens, encode_examples

    texts = [SVAMP_EXAMPLE.input, "So the answer is 7", "predict: explain:", "A box holds 12 pens."]
    student = t5_from_config("t5-tiny", texts, seed=0, vocab_size=300)
    tokens = Tokens(student.tokenizer, {"train": {"max_input_length": 64, "max_target_length": 32}}, None)
    other = Example("t", "A box holds 12 pens.", "12", 12.0, ("train", 1))
    [item] = encode_examples(tokens, [SVAMP_EXAMPLE, other], {}, {"s": "So the answer is 7"}, prefix="")
    assert item.example is SVAMP_EXAMPLE
    assert item.predict == tokens.inputs([SVAMP_EXAMPLE.input])[0]
    assert item.label == tokens.targets(["So the answer is 7"])[0]


def test_repeated_positives_are_tokenized_once_with_the_same_ids():
    """K identical teacher samples cost one tokenization; every occurrence gets its ids."""
    from qcrd_bench.components import Rationale
    from qcrd_bench.students import t5_from_config
    from qcrd_bench.training import Tokens, encode_examples

    texts = [SVAMP_EXAMPLE.input, "So the answer is 7", "3 + 4 = 7", "predict: explain:"]
    student = t5_from_config("t5-tiny", texts, seed=0, vocab_size=300)
    tokens = Tokens(student.tokenizer, {"train": {"max_input_length": 64, "max_target_length": 32}}, None)
    seen, targets = [], tokens.targets
    tokens.targets = lambda batch: seen.append(list(batch)) or targets(batch)
    samples = ["3 + 4 = 7", "So the answer is 7", "3 + 4 = 7", "3 + 4 = 7"]
    [item] = encode_examples(tokens, [SVAMP_EXAMPLE], {"s": [Rationale(t, 7.0) for t in samples]})
    assert seen[-1] == ["3 + 4 = 7", "So the answer is 7"]
    assert item.positives == targets(samples) and item.positive_texts == samples


# ---------------------------------------------------------------- tracked runs

ARGS = ["--task", "svamp", "--preset", "smoke", "--limit", "16", "--seed", "1", "--set", "train.steps=4",
        "--set", "train.threads=1", "--json"]


@pytest.mark.parametrize("method,loss", [("distill", "teacher-label-ce"), ("cot", "cot-ce")])
def test_baseline_run_is_tracked(method, loss, mirror, tracking_uri):
    result = CliRunner().invoke(main, ["run", "--method", method, *ARGS, "--tracking-uri", tracking_uri],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    [run] = runs_in(tracking_uri)
    assert run.info.status == "FINISHED" and run.info.run_id == summary["run_id"]
    assert run.data.tags["qcrd.method"] == method and run.data.params["loss.name"] == loss
    metrics = run.data.metrics
    assert 0 <= metrics["test/accuracy"] <= 1 and 0 <= metrics["eval/parse_rate"] <= 1
    assert 0 <= metrics["data/label_target_truncated"] <= 1
    dropped = metrics["data/dropped_no_teacher_label"]
    if method == "distill":
        assert 0 <= dropped < metrics["data/train_size"] == 16
    else:
        assert dropped == 0  # cot keeps every question


def test_distill_without_teacher_answers_is_refused_before_a_run(mirror, tracking_uri):
    result = CliRunner().invoke(main, ["run", "--method", "distill", "--teacher", "none", *ARGS,
                                       "--tracking-uri", tracking_uri])
    assert result.exit_code == 2
    assert "teacher-label-ce" in result.output and "parseable answer" in result.output
    assert runs_in(tracking_uri) == []


def rates(tc: dict, steps: int) -> list[float]:
    """The learning rate at each of the first ``steps`` steps of lr_scheduler(tc), from a base rate of 1."""
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = lr_scheduler(optimizer, tc)
    seen = []
    for _ in range(steps):
        seen.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    return seen


@pytest.mark.parametrize("schedule, expected", [
    # warm-up over 2 steps, then each schedule's shape over 10 steps in all (rates at steps 0..9)
    ("linear", [0, .5, 1, .875, .75, .625, .5, .375, .25, .125]),
    ("constant", [0, .5, 1, 1, 1, 1, 1, 1, 1, 1]),
    ("wsd", [0, .5, 1, 1, 1, 1, 1, .75, .5, .25]),
])
def test_lr_schedules_warm_up_then_follow_their_shape(schedule, expected):
    assert rates({"lr_schedule": schedule, "warmup_steps": 2, "steps": 10, "lr_decay_fraction": 0.4}, 10) == \
        pytest.approx(expected)


def test_wsd_shorter_than_its_warm_up_and_decay_warms_up_then_decays():
    assert rates({"lr_schedule": "wsd", "warmup_steps": 4, "steps": 5, "lr_decay_fraction": 0.4}, 6) == \
        pytest.approx([0, .25, .5, .75, 1, .5])
