"""Golden tests of every task's two answer extractors (strict, flexible): correct forms,
near-misses, several candidate answers, empty and very long outputs, and outputs that
try to run code.  Model output is data: nothing here may execute it."""

from __future__ import annotations

import time

import pytest

from qcrd_bench.components import Example
from qcrd_bench.evaluation import score
from qcrd_plugins.tasks import Anli1, Asdiv, Choice, Cqa, Esnli, Gsm8k, Svamp

LONG = "lorem ipsum 12 " * 70_000  # ~1 MB
ATTACKS = [
    "__import__('os').system('touch /tmp/qcrd-pwned')",
    "exec('import os; os.system(\"echo hacked\")')",
    "eval('1+1')",
    "().__class__.__bases__[0].__subclasses__()",
    "9**9**9**9",
    "lambda: 42",
    "{{7*7}} ${7*7} `rm -rf /`",
]


def both(task, text, example=None):
    example = example or Example("x", "", "", None, ("test", 0))
    return task.extract_answer(text, example), task.extract_answer(text, example, flexible=True)


def fast(fn, *args) -> None:
    # A guard against catastrophic backtracking (minutes on 1 MB), not a speed target: the
    # bound leaves room for a loaded CI core, where a linear read took 0.54 s.
    started = time.perf_counter()
    fn(*args)
    assert time.perf_counter() - started < 3.0, "a 1 MB output must be read in linear time"


# ---------------------------------------------------------------- SVAMP (an equation)


@pytest.mark.parametrize("text,strict,flexible", [
    ("( 84.0 / 2.0 )", 42.0, 42.0),
    ("(84/2)", 42.0, 42.0),
    ("42", 42.0, 42.0),
    ("( 84. 0 / 2. 0 )", 42.0, 42.0),  # WordPiece-split decimals
    ("84 / 2 = 42", None, 42.0),  # near-miss: a worked equation, not an expression
    ("The answer is (84 / 2).", None, 42.0),
    ("The answer is (84 / 2). Or maybe 7.", None, 42.0),  # the marked answer beats the last number
    ("( 84.0 / 2.0", None, 2.0),  # unbalanced
    ("3 apples and 5 pears", None, 5.0),  # several numbers: the last one
    ("", None, None),
    ("   ", None, None),
    ("no numbers here", None, None),
])
def test_svamp(text, strict, flexible):
    assert both(Svamp(), text) == (strict, flexible)


# ---------------------------------------------------------------- GSM8K / ASDiv (a number)


@pytest.mark.parametrize("task", [Gsm8k(), Asdiv()], ids=["gsm8k", "asdiv"])
@pytest.mark.parametrize("text,strict,flexible", [
    ("18", 18.0, 18.0),
    (" 18. ", 18.0, 18.0),
    ("-3.5", -3.5, -3.5),
    ("$1,080", 1080.0, 1080.0),
    ("1, 080", 1080.0, 1080.0),  # WordPiece-split thousands
    ("84. 5", 84.5, 84.5),
    ("18 dollars", None, 18.0),  # near-miss: a unit after the number
    ("9*2", None, 2.0),  # an expression is not the final number
    ("#### 18", None, 18.0),
    ("She makes 9 * 2 = $18 every day. The answer is 18.", None, 18.0),
    ("between 3 and 4", None, 4.0),  # several candidates: the last one
    ("1e3", None, 3.0),
    ("", None, None),
    ("eighteen", None, None),
])
def test_numeric(task, text, strict, flexible):
    assert both(task, text) == (strict, flexible)


def test_numeric_compares_with_tolerance():
    task = Gsm8k()
    assert task.answers_match(task.parse_answer("33.3333"), 100 / 3)
    assert not task.answers_match(task.parse_answer("33.3"), 100 / 3)
    assert not task.answers_match(None, 0.0)


# ---------------------------------------------------------------- CQA (a choice)

CHOICES = ("ignore", "enforce", "authoritarian", "yell at", "avoid")
CQA_EXAMPLE = Example("x", "", "ignore", Choice("ignore", CHOICES), ("test", 0))


@pytest.mark.parametrize("text,strict,flexible", [
    ("ignore", "ignore", "ignore"),
    ("Ignore.", "ignore", "ignore"),
    ("(a)", "ignore", "ignore"),
    ("a", "ignore", "ignore"),
    ("B)", "enforce", "enforce"),
    ("(d) yell at", "yell at", "yell at"),
    ("(a) yell at", "yell at", "yell at"),  # letter and text disagree: the text decides, as in DSS
    ("yell", None, None),  # near-miss: part of a choice
    ("(f)", None, None),  # no sixth choice
    ("(b) shout", None, "enforce"),  # text not a choice: only the flexible reading falls back to the letter
    ("So the answer is (e) avoid.", None, "avoid"),
    ("the answer is b", None, "enforce"),
    ("either (a) ignore or (e) avoid", None, "avoid"),  # several candidates: the last one
    ("People enforce rules they do not ignore", None, "ignore"),  # mentioned last wins
    ("", None, None),
    ("nothing relevant", None, None),
])
def test_cqa(text, strict, flexible):
    assert both(Cqa(), text, CQA_EXAMPLE) == (strict, flexible)


def test_cqa_matches_text_and_letter_alike():
    task = Cqa()
    assert task.answers_match(task.extract_answer("(a)", CQA_EXAMPLE), CQA_EXAMPLE.answer)
    assert task.answers_match(task.extract_answer("IGNORE", CQA_EXAMPLE), CQA_EXAMPLE.answer)
    assert task.answers_match("ignore", "Ignore")  # two predictions compare too (self-consistency votes)
    assert not task.answers_match(None, CQA_EXAMPLE.answer)
    assert str(CQA_EXAMPLE.answer) == "ignore"
    assert task.parse_answer("(B)") == "(b)" and task.parse_answer("(c) Yell  at.") == "yell at"


# ---------------------------------------------------------------- NLI (a label word)


@pytest.mark.parametrize("task", [Anli1(), Esnli()], ids=["anli1", "esnli"])
@pytest.mark.parametrize("text,strict,flexible", [
    ("entailment", "entailment", "entailment"),
    ("Contradiction.", "contradiction", "contradiction"),
    (" NEUTRAL ", "neutral", "neutral"),
    ("entails", None, "entailment"),  # near-miss: an inflection
    ("contradict", None, "contradiction"),
    ("The premise contradicts it. So the answer is neutral", None, "neutral"),  # the last one wins
    ("neutral or entailment", None, "entailment"),
    ("entailment\n\nPre", None, "entailment"),
    ("yes", None, None),
    ("", None, None),
])
def test_nli(task, text, strict, flexible):
    assert both(task, text) == (strict, flexible)


# ---------------------------------------------------------------- every task


TASKS = [(Svamp(), None), (Gsm8k(), None), (Asdiv(), None), (Cqa(), CQA_EXAMPLE), (Anli1(), None), (Esnli(), None)]


@pytest.mark.parametrize("task,example", TASKS, ids=[t.name for t, _ in TASKS])
def test_code_is_never_run(task, example, tmp_path):
    for text in ATTACKS:
        strict, flexible = both(task, text, example)
        assert strict is None
        assert flexible is None or isinstance(flexible, (float, str))
    import os

    assert not os.path.exists("/tmp/qcrd-pwned")


@pytest.mark.parametrize("task,example", TASKS, ids=[t.name for t, _ in TASKS])
def test_very_long_output_is_fast(task, example):
    example = example or Example("x", "", "", None, ("test", 0))
    fast(task.extract_answer, LONG, example)
    fast(lambda: task.extract_answer(LONG, example, flexible=True))
    assert task.extract_answer(LONG, example) is None


@pytest.mark.parametrize("task,example", TASKS, ids=[t.name for t, _ in TASKS])
def test_non_text_is_no_answer(task, example):
    example = example or Example("x", "", "", None, ("test", 0))
    assert task.extract_answer("", example) is None
    assert task.extract_answer("", example, flexible=True) is None


def test_score_reports_both_extractors():
    task = Gsm8k()
    examples = [Example(str(i), "q", "18", 18.0, ("test", i)) for i in range(4)]
    metrics, rows = score(task, examples, ["18", "It is 18 dollars", "17", ""])
    assert metrics == {"accuracy": 0.25, "accuracy_flexible": 0.5, "parse_rate": 0.5}
    assert rows[1]["parsed_answer"] is None and rows[1]["parsed_answer_flexible"] == "18.0"
    assert [r["correct_flexible"] for r in rows] == [True, True, False, False]
