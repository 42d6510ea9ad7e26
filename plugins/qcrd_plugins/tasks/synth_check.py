"""The step checker of ``synth-arith``: a pure function that reads any rationale (a teacher's
or a student's) against its generated problem and gives it one label.

A rationale is read sentence by sentence.  A sentence ``<description>: a op k = b`` is a
step, and its description (before the colon) must state its event truly: the amount it
states (a number, or doubles/triples) is k, and the people it names take part in it; a
sentence saying a person starts with (or has) n is a count claim; anything else is noise.
A step that names only people other than the one asked about is about a distractor event.
Walking the asked person's count through the steps, the checker notes what goes wrong and
where; the label is:

- ``valid``: every step is right and faithful to the problem, one per event of the asked
  person, in order, from the right start, and nothing else is said;
- ``irrelevant-step``: as valid, plus a true statement that is not part of the chain (a
  person's start, or a distractor event worked out correctly for one of its people, either
  side of a transfer);
- ``unfaithful-right-answer``: the final count is right, but something in the text is
  wrong or unreadable (a result the next step does not use, a wrong start, a false
  statement, a sentence that is neither a step nor a count);
- and, when the final count is wrong, by the first error along the chain:
  ``uses-distractor`` (a step takes a distractor event's number, or applies a distractor
  event to the asked person's count), ``wrong-operation`` (a step adds where it should
  subtract or multiply, takes a wrong amount, or an event is missing or applied twice),
  ``arithmetic-error`` (a op k != b, or a number carried wrongly);
- ``unparseable``: no step and no count claim about the asked person.

Model output is data: numbers are read with regular expressions, never evaluated.
"""

from __future__ import annotations

import re

from .synth_arith import Event, Problem, apply_op, event_op

LABELS = ("valid", "irrelevant-step", "unfaithful-right-answer", "uses-distractor", "wrong-operation",
          "arithmetic-error", "unparseable")

# A signed number as a model may write it: "-4", or "- 4" as a tokenizer that splits
# punctuation decodes it.
_SIGNED = r"(?:-[ ]?)?\d+"
_STEP = re.compile(rf"^(?P<desc>[^:=]*?)\s*:\s*(?P<a>{_SIGNED})\s*(?P<op>[-+*x×])\s*(?P<k>{_SIGNED})\s*=\s*"
                   rf"(?P<b>{_SIGNED})$")
_CLAIM = re.compile(r"\b(?:starts? with|has|begins? with|owns)\b")
_NUMBER = re.compile(r"-?\d+")
_FACTOR = {"double": 2, "doubles": 2, "triple": 3, "triples": 3}
_FACTOR_WORD = re.compile(r"\b(?:doubles?|triples?)\b", re.I)
_RESULT = re.compile(rf"=\s*({_SIGNED})")
_MAX_CHARS = 4000  # a rationale longer than this is not read (model output is bounded data)

# What an error along the chain is called when the final count is wrong.
_WRONG_FINAL = {"distractor": "uses-distractor", "operation": "wrong-operation", "arithmetic": "arithmetic-error",
                "carry": "arithmetic-error"}


def final_value(text: str) -> int | None:
    """The last result a rationale writes (the number after its last '='), or None."""
    if not isinstance(text, str) or len(text) > _MAX_CHARS:
        return None
    results = _RESULT.findall(text)
    return signed(results[-1]) if results else None


def signed(number: str) -> int:
    return int(number.replace(" ", ""))


def sentences(text: str) -> list[str]:
    return [part.strip() for part in text.split(".") if part.strip()]


def parties(event: Event) -> tuple[str, ...]:
    """The people whose count an event changes: both sides of a transfer, else its person."""
    return (event.person, event.other) if event.kind == "give" else (event.person,)


def stated_amounts(description: str) -> list[int]:
    """The amounts a step's description states: its numbers, and 2 or 3 for doubles or triples."""
    return [int(n) for n in _NUMBER.findall(description)] + [_FACTOR[w.lower()]
                                                              for w in _FACTOR_WORD.findall(description)]


def check(problem: Problem, text: str) -> str:
    """The label (one of ``LABELS``) of ``text`` as a rationale for ``problem``."""
    if not isinstance(text, str) or len(text) > _MAX_CHARS:
        return "unparseable"
    walk = _Walk(problem)
    for sentence in sentences(text):
        walk.read(sentence)
    return walk.label()


class _Walk:
    """The asked person's count as a rationale states it, and what went wrong along the way."""

    def __init__(self, problem: Problem):
        self.problem, self.asked = problem, problem.asked
        self.relevant = problem.relevant()
        self.distractors = problem.distractors()
        # Each distractor with everyone's counts before it (by position: a hand-built problem
        # may hold one Event object twice).
        self.distractor_counts = [(e, counts) for e, counts in zip(problem.events, problem.counts())
                                  if not e.involves(self.asked)]
        self.true_start = problem.start[self.asked]
        # Numbers that belong to other people: their starts and the distractors' amounts.
        self.foreign = {n for p, n in problem.start.items() if p != self.asked} | {e.amount for e in self.distractors}
        self.value: int | None = None
        self.index = 0  # the next event of the asked person a step should work out
        self.issues: list[str] = []  # in the order met
        self.read_any = False

    def read(self, sentence: str) -> None:
        names = [p for p in self.problem.people if re.search(rf"\b{p}\b", sentence)]
        step = _STEP.match(sentence)
        if step:
            numbers = [signed(step.group(g)) for g in ("a", "k", "b")]
            op = "*" if step.group("op") in "x×" else step.group("op")
            if names and self.asked not in names:
                self._other_step(names, *numbers, op, stated_amounts(step.group("desc")))
            else:
                self._own_step(names, *numbers, op, stated_amounts(step.group("desc")))
            return
        numbers = _NUMBER.findall(sentence)
        if len(names) == 1 and len(numbers) == 1 and _CLAIM.search(sentence):
            self._claim(names[0], int(numbers[0]))
        else:
            self.issues.append("noise")

    def _claim(self, who: str, n: int) -> None:
        if who != self.asked:
            self.issues.append("irrelevant" if self.problem.start[who] == n else "false")
            return
        if self.value is None and self.index == 0:
            self.read_any = True
            self.value = n
            if n != self.true_start:
                self.issues.append("distractor" if n in self.foreign else "false")
        else:
            self.issues.append("false" if n != self.value else "irrelevant")  # a restatement

    def _own_step(self, names: list[str], a: int, k: int, b: int, op: str, stated: list[int]) -> None:
        self.read_any = True
        if any(n != k for n in stated):
            self.issues.append("false")  # "Jack gives Mary 4: 5 + 3 = 8" works out an event the text misstates
        if self.index >= len(self.relevant):
            self.issues.append("operation")  # an event applied twice, or one the problem lacks
            self.value = b
            return
        event = self.relevant[self.index]
        if not set(names) <= set(parties(event)) | {self.asked}:
            self.issues.append("false")  # "Omar gives Mary 3" where Jack gave her 3
        if self.value is None:  # no start claim: the chain starts at this step
            self.value = self.true_start if self.index == 0 else a
        if a != self.value:
            self.issues.append("carry")
        if k != event.amount:
            self.issues.append("distractor" if k in self.foreign else "operation")
        if op != event_op(event, self.asked):
            self.issues.append("operation")
        if b != apply_op(a, op, k):
            self.issues.append("arithmetic")
        self.value = b
        self.index += 1

    def _other_step(self, names: list[str], a: int, k: int, b: int, op: str, stated: list[int]) -> None:
        """A step about someone else: a distractor event worked out truly for one of its
        people (irrelevant), or worked into the asked person's count."""
        if all(n == k for n in stated) and any(
                e.amount == k and set(names) <= set(parties(e)) and self._true_for(who, counts, e, a, k, b, op)
                for e, counts in self.distractor_counts for who in parties(e) if who in names):
            self.issues.append("irrelevant")
            return
        if self.value is not None and a == self.value:
            self.read_any = True
            self.issues.append("distractor")
            self.value = b
            return
        self.issues.append("false")

    @staticmethod
    def _true_for(who: str, counts: dict[str, int], event: Event, a: int, k: int, b: int, op: str) -> bool:
        """Whether ``a op k = b`` works ``event`` out for ``who`` (one of its parties), whose
        count before it was ``counts[who]``."""
        return a == counts[who] and op == event_op(event, who) and b == apply_op(a, op, k)

    def label(self) -> str:
        if not self.read_any or self.value is None:
            return "unparseable"
        issues = self.issues + (["operation"] if self.index < len(self.relevant) else [])
        if self.value == self.problem.answer:
            errors = [i for i in issues if i != "irrelevant"]
            if not errors:
                return "irrelevant-step" if "irrelevant" in issues else "valid"
            return "unfaithful-right-answer"
        for issue in issues:
            if issue in _WRONG_FINAL:
                return _WRONG_FINAL[issue]
        return "arithmetic-error" if "false" in issues else "wrong-operation"
