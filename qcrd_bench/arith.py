"""Safe evaluation of small arithmetic expressions and number extraction.

Model outputs (and dataset labels such as SVAMP's ``( 84.0 / 2.0 )``) are
untrusted data, so nothing here ever reaches ``eval``/``exec`` or a symbolic
algebra package. Expressions go through a single-regex tokenizer and a tiny
recursive-descent parser over a deliberately strict grammar::

    expr    := term (('+' | '-') term)*
    term    := unary (('*' | '/') unary)*
    unary   := ('+' | '-')* primary
    primary := NUMBER | '(' expr ')'

Every limit below is checked before or during the single left-to-right pass,
so the cost of any input is bounded by ``MAX_CHARS`` regardless of content.
"""

from __future__ import annotations

import math
import re

__all__ = [
    "MAX_CHARS",
    "MAX_TOKENS",
    "MAX_DEPTH",
    "MAX_MAGNITUDE",
    "evaluate",
    "numbers_equal",
    "find_last_number",
]

MAX_CHARS = 256
MAX_TOKENS = 128
MAX_DEPTH = 32
MAX_MAGNITUDE = 1e15

# ASCII-only digits: ``\d`` would also admit e.g. Arabic-Indic digits, which
# ``float`` happily parses, silently widening what counts as an expression.
# The thousands-separator branch demands exact groups of three so that a
# list such as ``1,2`` is rejected instead of being read as 12.
_NUMBER = r"[0-9]{1,3}(?:,[0-9]{3})+(?![0-9])(?:\.[0-9]*)?|[0-9]+(?:\.[0-9]*)?|\.[0-9]+"

_TOKEN_RE = re.compile(
    rf"(?P<num>{_NUMBER})|(?P<op>[-+*/()])|(?P<ws>[ \t\r\n]+)|(?P<bad>.)",
    re.DOTALL,
)


class _Reject(Exception):
    """Internal signal that the input is not an acceptable expression."""


def _bounded(value: float) -> float:
    # Checked after every literal and every operation so that overflow
    # (or a huge-but-finite blow-up) is caught at the step that causes it.
    if not math.isfinite(value) or abs(value) > MAX_MAGNITUDE:
        raise _Reject
    return value


def _tokenize(expr: str) -> list[float | str]:
    tokens: list[float | str] = []
    for match in _TOKEN_RE.finditer(expr):
        kind = match.lastgroup
        if kind == "ws":
            continue
        if kind == "bad":
            raise _Reject
        if len(tokens) >= MAX_TOKENS:
            raise _Reject
        text = match.group()
        tokens.append(_bounded(float(text.replace(",", ""))) if kind == "num" else text)
    return tokens


class _Parser:
    """Recursive-descent parser that evaluates while it parses."""

    def __init__(self, tokens: list[float | str]) -> None:
        self._tokens = tokens
        self._pos = 0
        self._depth = 0

    def parse(self) -> float:
        value = self._expr()
        if self._pos != len(self._tokens):
            # Leftovers such as a stray ')' or two adjacent numbers.
            raise _Reject
        return value

    def _peek(self) -> float | str | None:
        return self._tokens[self._pos] if self._pos < len(self._tokens) else None

    def _next(self) -> float | str | None:
        token = self._peek()
        self._pos += 1
        return token

    def _expr(self) -> float:
        value = self._term()
        while self._peek() in ("+", "-"):
            op = self._next()
            rhs = self._term()
            value = _bounded(value + rhs if op == "+" else value - rhs)
        return value

    def _term(self) -> float:
        value = self._unary()
        while self._peek() in ("*", "/"):
            op = self._next()
            rhs = self._unary()
            if op == "*":
                value = _bounded(value * rhs)
            elif rhs == 0:
                raise _Reject
            else:
                value = _bounded(value / rhs)
        return value

    def _unary(self) -> float:
        # A loop rather than recursion: a run of signs cannot grow the stack.
        sign = 1.0
        while self._peek() in ("+", "-"):
            if self._next() == "-":
                sign = -sign
        return sign * self._primary()

    def _primary(self) -> float:
        token = self._next()
        if isinstance(token, float):
            return token
        if token != "(":
            raise _Reject
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise _Reject
        value = self._expr()
        if self._next() != ")":
            raise _Reject
        self._depth -= 1
        return value


def evaluate(expr: str) -> float | None:
    """Return the value of a plain arithmetic expression, or None.

    Accepted: non-negative decimal literals (``84.0``, ``.5``, ``42.``,
    ``1,000``), binary ``+ - * /``, unary ``+``/``-`` and parentheses, with
    the usual precedence and left associativity.

    None is returned, and nothing is ever raised, when the text is anything
    else (exponents like ``1e3``, ``**``, ``//``, names, other characters,
    empty or unbalanced input) or when a limit is exceeded: more than
    ``MAX_CHARS`` characters, ``MAX_TOKENS`` tokens, ``MAX_DEPTH`` nested
    parentheses, an intermediate magnitude above ``MAX_MAGNITUDE``, division
    by zero or a non-finite result.
    """
    # The length test comes first so hostile megabyte-sized inputs cost O(1).
    if not isinstance(expr, str) or len(expr) > MAX_CHARS:
        return None
    try:
        tokens = _tokenize(expr)
        if not tokens:
            return None
        return _Parser(tokens).parse()
    except (_Reject, RecursionError, ValueError, OverflowError):
        # RecursionError/ValueError/OverflowError are unreachable under the
        # limits above; catching them keeps the "never raises" promise even
        # if the limits are later loosened carelessly.
        return None


def numbers_equal(
    a: float | None,
    b: float | None,
    rel_tol: float = 1e-4,
    abs_tol: float = 1e-6,
) -> bool:
    """Tolerant numeric comparison; a missing value never equals anything.

    The default relative tolerance absorbs rounding in answers such as
    ``33.33`` vs ``100 / 3`` without conflating genuinely different values.
    """
    if a is None or b is None:
        return False
    return math.isclose(a, b, rel_tol=rel_tol, abs_tol=abs_tol)


# A leading minus only counts when it is not glued to a preceding word,
# digit or ')' -- otherwise ``10-3`` would end in ``-3`` rather than ``3``.
# U+2212 (the typographic minus) is accepted because models emit it.
# The fractional part needs at least one digit so that the full stop in
# "... is 42." is not swallowed (harmless either way, but clearer).
_FREE_NUMBER_RE = re.compile(
    r"(?:(?<![\w)])(?P<neg>[-\u2212]))?\$?"
    r"(?P<num>[0-9]{1,3}(?:,[0-9]{3}(?![0-9]))+(?:\.[0-9]+)?"
    r"|[0-9]+(?:\.[0-9]+)?"
    r"|\.[0-9]+)"
)


def find_last_number(text: str) -> float | None:
    """Return the last number mentioned in free text, or None.

    Understands ``-3``, ``1,234.5``, ``$5``, ``-$5``, ``.5`` and a number
    closing a sentence (``42.``). Returns None when there is no number or
    the last one does not fit in a finite float.
    """
    if not isinstance(text, str):
        return None
    last = None
    for last in _FREE_NUMBER_RE.finditer(text):
        pass
    if last is None:
        return None
    try:
        value = float(last.group("num").replace(",", ""))
    except (ValueError, OverflowError):
        return None
    if not math.isfinite(value):
        return None
    return -value if last.group("neg") else value
