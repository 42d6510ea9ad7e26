"""Tests for qcrd_bench.arith: correctness on real labels, strictness, and speed."""

from __future__ import annotations

import time

import pytest

from qcrd_bench.arith import (
    MAX_CHARS,
    MAX_DEPTH,
    MAX_TOKENS,
    evaluate,
    find_last_number,
    numbers_equal,
)


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        # Verbatim SVAMP label shapes.
        ("( 84.0 / 2.0 )", 42.0),
        ("( ( 17.0 + 15.0 ) + 2.0 )", 34.0),
        ("( 10.0 - ( 6.0 + 3.0 ) )", 1.0),
        ("( 10.0 * 45.0 )", 450.0),
        ("( ( 14.0 - 2.0 ) - 10.0 )", 2.0),
        # Precedence and associativity.
        ("2 + 3 * 4", 14.0),
        ("(2 + 3) * 4", 20.0),
        ("10 - 4 - 3", 3.0),
        ("100 / 10 / 5", 2.0),
        ("8 / 2 * 4", 16.0),
        ("1 + 2 * 3 - 4 / 2", 5.0),
        # Unary signs.
        ("-3", -3.0),
        ("+3", 3.0),
        ("-(2 + 3)", -5.0),
        ("2 * -3", -6.0),
        ("2 - -3", 5.0),
        ("--4", 4.0),
        ("-2 * -2", 4.0),
        # Literal forms.
        (".5 + .5", 1.0),
        ("42.", 42.0),
        ("1,000 + 1", 1001.0),
        ("1,234,567.5", 1234567.5),
        ("  7\n", 7.0),
        ("0", 0.0),
    ],
)
def test_evaluate_values(expr: str, expected: float) -> None:
    assert evaluate(expr) == pytest.approx(expected)


@pytest.mark.parametrize(
    "expr",
    [
        "",
        "   ",
        "()",
        "(1 + 2",
        "1 + 2)",
        ")(",
        "1 +",
        "* 2",
        "1 2",
        "1.2.3",
        "2 ** 3",
        "7 // 2",
        "2 x 3",
        "2 × 3",
        "6 ÷ 2",
        "1,2",
        "1,0000",
        "1e3",
        "٣ + 1",  # Arabic-Indic digit: float() accepts it, the grammar must not.
        "inf",
        "nan",
        "1 / 0",
        "1 / (2 - 2)",
        "0 / 0",
    ],
)
def test_evaluate_rejects(expr: str) -> None:
    assert evaluate(expr) is None


def test_evaluate_every_svamp_style_label_is_a_float() -> None:
    value = evaluate("( ( 36.0 - 12.0 ) / ( 4.0 * 2.0 ) )")
    assert isinstance(value, float)
    assert value == 3.0


def test_limits_are_inclusive_bounds() -> None:
    assert evaluate("(" * MAX_DEPTH + "1" + ")" * MAX_DEPTH) == 1.0
    assert evaluate("(" * (MAX_DEPTH + 1) + "1" + ")" * (MAX_DEPTH + 1)) is None

    # "1+1+...+1" has 2n-1 tokens.
    n_ok = (MAX_TOKENS + 1) // 2
    assert evaluate("+".join(["1"] * n_ok)) == float(n_ok)
    assert evaluate("+".join(["1"] * (n_ok + 1))) is None

    padded = "1" + " " * (MAX_CHARS - 1)
    assert evaluate(padded) == 1.0
    assert evaluate(padded + " ") is None


def test_magnitude_limit_applies_to_intermediates() -> None:
    assert evaluate("1000000000000000") == 1e15
    assert evaluate("1000000000000001") is None
    # The final result is small, but an intermediate product is not.
    assert evaluate("(100000000 * 100000000) / 100000000") is None
    assert evaluate("1 / 0.0000000000000001") is None


HOSTILE_INPUTS = [
    "__import__('os').system('ls')",
    "2**10**10",
    "9**9**9",
    "1e308*1e308",
    "(" * 10000,
    ")" * 10000,
    "-" * 200 + "1",  # valid grammar, but over the token limit
    "lambda: 1",
    "open('x')",
    "1; 2",
    "[1,2]",
    "x" * (1 << 20),
    "1+" * (1 << 19),
    "\x00",
    "\ud800",
    "9" * 400,
]


@pytest.mark.parametrize("expr", HOSTILE_INPUTS, ids=lambda s: repr(s[:24]))
def test_hostile_inputs_rejected_quickly(expr: str) -> None:
    start = time.perf_counter()
    result = evaluate(expr)
    elapsed = time.perf_counter() - start
    assert result is None
    assert elapsed < 0.010, f"{elapsed * 1e3:.2f} ms"


@pytest.mark.parametrize("value", [None, 1, 3.0, b"1+1", ["1"]])
def test_evaluate_non_str_returns_none(value: object) -> None:
    assert evaluate(value) is None  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The answer is 42.", 42.0),
        ("So she has -3 apples left", -3.0),
        ("Total: 1,234.5 dollars", 1234.5),
        ("It costs $5", 5.0),
        ("a loss of -$12.50", -12.5),
        ("10 - 4 = 6", 6.0),
        ("10-3", 3.0),
        ("pages 10-20", 20.0),
        ("x = -7", -7.0),
        ("3 + 4 = 7, so 7 is final.", 7.0),
        ("half is .5", 0.5),
        ("values 1,2,3", 3.0),
        ("typographic \u22124", -4.0),
        ("1,000,000 people", 1_000_000.0),
        ("#### 18", 18.0),
    ],
)
def test_find_last_number(text: str, expected: float) -> None:
    assert find_last_number(text) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["", "no digits here", "- $ .", "1" + "0" * 400])
def test_find_last_number_none(text: str) -> None:
    assert find_last_number(text) is None


def test_find_last_number_is_linear_on_long_text() -> None:
    text = "a 1, " * 200_000 + "end 9"
    start = time.perf_counter()
    assert find_last_number(text) == 9.0
    assert time.perf_counter() - start < 2.0


def test_numbers_equal() -> None:
    assert numbers_equal(42.0, 42.0)
    assert numbers_equal(100 / 3, 33.333)
    assert numbers_equal(0.0, 1e-7)
    assert not numbers_equal(1.0, 1.01)
    assert not numbers_equal(None, 1.0)
    assert not numbers_equal(1.0, None)
    assert not numbers_equal(None, None)
    assert not numbers_equal(float("nan"), float("nan"))
    assert numbers_equal(1.0, 1.01, rel_tol=0.02)
    assert numbers_equal(evaluate("( 84.0 / 2.0 )"), find_last_number("so 42 apples."))
