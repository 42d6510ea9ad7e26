"""Model output is data: every answer reader takes arbitrary text without raising, quickly,
and without executing anything (hypothesis-generated inputs)."""

from __future__ import annotations

import builtins
import time
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qcrd_bench import arith
from qcrd_bench.components import Example
from qcrd_plugins.tasks import Choice

# Text shaped like model output: digits, operators, brackets, answer markers, label words, junk.
PIECES = st.sampled_from(["1", "2.5", "-3", "1e9", "9" * 40, "+", "-", "*", "/", "**", "^", "(", ")", " ", ".",
                          "The answer is", "So the answer is", "<Answer>:", "(b)", "(e)", "bank", "neutral",
                          "entailment", "contradiction", "__import__('os')", "\n", "\u2028", "%", ","])
OUTPUTS = st.one_of(st.text(max_size=300), st.lists(PIECES, max_size=60).map("".join))
SETTINGS = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
LIMIT_S = 0.05  # "a few milliseconds" with room for a loaded CI machine


def refuse(*args, **kwargs):
    raise AssertionError("model output reached eval/exec")


def timed(fn, *args):
    """fn(*args), with eval and exec disabled for the call, under the time limit."""
    start = time.perf_counter()
    with mock.patch.object(builtins, "eval", refuse), mock.patch.object(builtins, "exec", refuse):
        value = fn(*args)
    assert time.perf_counter() - start < LIMIT_S, f"{fn.__qualname__} took too long on {args[0]!r:.80}"
    return value


@SETTINGS
@given(OUTPUTS)
def test_arithmetic_evaluator(text):
    value = timed(arith.evaluate, text)
    assert value is None or isinstance(value, float)
    assert timed(arith.find_last_number, text) is None or isinstance(arith.find_last_number(text), float)


def examples():
    choices = ("bank", "library", "school", "park", "home")
    return {"svamp": Example("t", "q", "( 3.0 + 4.0 )", 7.0, ("train", 0)),
            "gsm8k": Example("t", "q", "7", 7.0, ("train", 0)),
            "asdiv": Example("t", "q", "7", 7.0, ("train", 0)),
            "cqa": Example("t", "q", "bank", Choice("bank", choices), ("train", 0)),
            "anli1": Example("t", "q", "neutral", "neutral", ("train", 0)),
            "esnli": Example("t", "q", "neutral", "neutral", ("train", 0))}


@pytest.mark.parametrize("name", list(examples()))
def test_every_task_reads_any_output(catalog, name):
    task, example = catalog.tasks.get(name), examples()[name]

    @SETTINGS
    @given(OUTPUTS)
    def check(text):
        for flexible in (False, True):
            answer = timed(task.extract_answer, text, example, flexible)
            task.answers_match(answer, example.answer)
        timed(task.parse_answer, text)
        timed(task.parse_answer_flexible, text)
        if task.prompt is not None:
            timed(task.prompt.split, text)

    check()


@SETTINGS
@given(OUTPUTS)
def test_cot_reads_any_output(text):
    from qcrd_plugins.losses import CotCE

    answer = timed(CotCE().answer_text, text)
    assert answer is None or isinstance(answer, str)


def test_the_guard_catches_eval():
    with pytest.raises(AssertionError, match="reached eval"):
        timed(lambda text: eval(text), "1 + 1")
