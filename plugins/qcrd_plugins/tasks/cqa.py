"""CommonsenseQA as DSS prepared it (CoS-E v1.11 train 9741 / validation-as-test 1221).

Input (DSS): ``question + "\\nAnswer Choices:\\n(a) c0\\n(b) c1\\n(c) c2\\n(d) c3\\n(e) c4"``;
the label is the answer's choice text.  An answer is always resolved against the
question's own choices, so a letter ("(b)", "b") and the choice text are the same answer.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from typing import Any

from qcrd_bench.components import Example
from qcrd_bench.data import fetch
from qcrd_bench.errors import InputFileError
from qcrd_bench.readers import read_jsonl

from . import prompts
from .common import COMMON_DEFAULTS, DatasetTask, Published

LETTERS = "abcde"
_STRIP = string.whitespace + string.punctuation.replace("(", "").replace(")", "") + "\u2019\u201c\u201d"
_LETTER_ONLY = re.compile(r"\(?([a-z])\)?", re.IGNORECASE)
_LETTER_TEXT = re.compile(r"\(([a-z])\)\s*(.+)", re.IGNORECASE | re.DOTALL)
_LETTER_ANYWHERE = re.compile(r"\(([a-e])\)", re.IGNORECASE)
_ANSWER_IS = re.compile(r"answer is", re.IGNORECASE)
_TAIL = 4096  # flexible reading looks at the end of an output only: answers come last


def normalise(text: str) -> str:
    """Case folded, inner whitespace collapsed, surrounding punctuation and quotes removed."""
    return " ".join(text.split()).strip(_STRIP).casefold()


@dataclass(frozen=True)
class Choice:
    """A CQA gold answer: the choice text, with the question's choices so that letters
    can be resolved.  Prints as the text."""

    text: str
    choices: tuple[str, ...]

    def __str__(self) -> str:
        return self.text


def _text_of(answer: Any) -> str | None:
    if isinstance(answer, Choice):
        return answer.text
    return answer if isinstance(answer, str) else None


def strict_choice(text: str, choices: tuple[str, ...]) -> str | None:
    """The choice an output names in the expected form: a choice text, a letter ("(b)",
    "b", "B)"), or "(b) text" whose text is a choice (the text decides, as in DSS)."""
    if not isinstance(text, str) or len(text) > 1000:
        return None
    clean = text.strip().rstrip(".").strip()
    letter = _LETTER_ONLY.fullmatch(clean)
    if letter:
        index = LETTERS.find(letter.group(1).lower())
        return choices[index] if 0 <= index < len(choices) else None
    with_text = _LETTER_TEXT.fullmatch(clean)
    if with_text:
        clean = with_text.group(2)
    wanted = normalise(clean)
    matches = [c for c in choices if normalise(c) == wanted]
    return matches[0] if matches else None  # duplicates among the choices are one answer


def flexible_choice(text: str, choices: tuple[str, ...]) -> str | None:
    """Strict, else the strict reading of what follows the last "answer is", else the last
    "(x)" letter, else the choice text mentioned last (the longer on a tie)."""
    if not isinstance(text, str):
        return None
    found = strict_choice(text, choices)
    if found is not None:
        return found
    tail = text[-_TAIL:]
    marks = list(_ANSWER_IS.finditer(tail))
    if marks:
        after = tail[marks[-1].end():].strip().split("\n", 1)[0]
        found = strict_choice(after, choices) or strict_choice(after.split(".", 1)[0], choices)
        if found is not None:
            return found
    letters = list(_LETTER_ANYWHERE.finditer(tail))
    if letters:
        index = LETTERS.find(letters[-1].group(1).lower())
        if index < len(choices):
            return choices[index]
    return _last_mentioned(tail, choices)


def _last_mentioned(text: str, choices: tuple[str, ...]) -> str | None:
    lowered = text.casefold()
    best, best_end = None, -1
    for choice in sorted(choices, key=len, reverse=True):
        needle = normalise(choice)
        if not needle:
            continue
        hits = list(re.finditer(rf"(?<!\w){re.escape(needle)}(?!\w)", lowered))
        if hits and hits[-1].end() > best_end:
            best, best_end = choice, hits[-1].end()
    return best


class Cqa(DatasetTask):
    name = "cqa"
    prompt = prompts.CHOICE
    description = ("CommonsenseQA (DSS: 9741 train / 1221 test, 10% of train carved as validation); input = "
                   "question + lettered answer choices, label = the choice text; a letter or the text is accepted")
    defaults = dict(COMMON_DEFAULTS)
    chance = 0.2

    def published(self, params: dict[str, Any], skip_missing: bool = False) -> Published:
        pub = Published(source="cqa/dss")
        for split in ("train", "test"):
            relpath = f"cqa/dss/cqa_{split}.json"
            pub.read(split, relpath, fetch, lambda path, s=split: [
                self._example(row, s, i, f"{path}:{i + 1}")
                for i, row in enumerate(read_jsonl(path, required=("question", "choices", "answer")))], skip_missing)
        return pub

    def assign(self, pub: Published, params: dict[str, Any]):
        train, val, note = self.carve(pub.splits["train"], params, "train")
        return train, val, pub.splits["test"], {"validation": note}

    def _example(self, row: dict, split: str, index: int, where: str) -> Example:
        choices, answer = row["choices"], row["answer"]
        if not (isinstance(choices, list) and len(choices) == len(LETTERS) and all(isinstance(c, str) for c in choices)):
            raise InputFileError(f"{where}: 'choices' must be a list of {len(LETTERS)} strings")
        if not isinstance(row["question"], str):
            raise InputFileError(f"{where}: field 'question' must be a string")
        if answer not in choices:
            raise InputFileError(f"{where}: answer {answer!r} is not one of the choices")
        lines = "\n".join(f"({letter}) {choice}" for letter, choice in zip(LETTERS, choices))
        return Example(id=f"{split}-{index}", input=f"{row['question']}\nAnswer Choices:\n{lines}", label=answer,
                       answer=Choice(answer, tuple(choices)), source=(split, index))

    def parse_answer(self, text: str) -> str | None:
        """Without the question's choices: the answer text an output gives, normalised
        (a bare letter stays "(b)").  Scoring uses :meth:`extract_answer`."""
        if not isinstance(text, str) or len(text) > 1000:
            return None
        clean = text.strip().rstrip(".").strip()
        letter = _LETTER_ONLY.fullmatch(clean)
        if letter:
            return f"({letter.group(1).lower()})"
        with_text = _LETTER_TEXT.fullmatch(clean)
        return normalise(with_text.group(2) if with_text else clean) or None

    def extract_answer(self, text: str, example: Example, flexible: bool = False) -> str | None:
        """The choice ``text`` names among ``example``'s choices (None when it names none)."""
        if not isinstance(example.answer, Choice):  # an example from elsewhere: no choices to resolve with
            return self.parse_answer(text)
        choices = example.answer.choices
        return flexible_choice(text, choices) if flexible else strict_choice(text, choices)

    def format_answer(self, answer: Any) -> str:
        """The choice text (what the gold labels are), for a Choice or a resolved text alike."""
        text = _text_of(answer)
        return text if text is not None else super().format_answer(answer)

    def answers_match(self, predicted: Any, gold: Any) -> bool:
        a, b = _text_of(predicted), _text_of(gold)
        return a is not None and b is not None and normalise(a) == normalise(b)
