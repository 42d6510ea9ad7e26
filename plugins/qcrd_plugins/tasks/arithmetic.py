"""Math word problems: SVAMP (label = an equation), GSM8K and ASDiv-A (label = the
final number).  Answers are numbers compared with a tolerance; model output is only
ever read by :mod:`qcrd_bench.arith` (a bounded parser), never executed."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from decimal import Decimal
from typing import Any

from qcrd_bench import arith
from qcrd_bench.components import Example
from qcrd_bench.data import fetch
from qcrd_bench.errors import ConfigError, InputFileError
from qcrd_bench.readers import read_json_list, read_jsonl, read_lines

from . import prompts
from .common import COMMON_DEFAULTS, DatasetTask, Published, check_choice

# WordPiece tokenizers decode "84.0" as "84. 0" and "1,000" as "1, 000": rejoin them first.
_SPLIT_DECIMAL = re.compile(r"(\d)\s*\.\s*(\d)")
_SPLIT_THOUSANDS = re.compile(r"(\d)\s*,\s*(\d{3})(?!\d)")
# A whole output that is one number: optional sign and "$", thousands groups, decimals,
# an optional closing full stop.
_ONE_NUMBER = re.compile(r"\s*([-\u2212]?)\s*\$?\s*([0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]+)?|[0-9]+(?:\.[0-9]+)?|\.[0-9]+)"
                         r"\s*\.?\s*")
_ANSWER_IS = re.compile(r"answer is", re.IGNORECASE)
_MAX_NUMBER = 1e15


def rejoin(text: str) -> str:
    return _SPLIT_DECIMAL.sub(r"\1.\2", text)


def strict_number(text: str) -> float | None:
    """The value of an output that is exactly one number (``18``, ``-3.5``, ``$1,080``, ``42.``)."""
    if not isinstance(text, str) or len(text) > arith.MAX_CHARS:
        return None
    match = _ONE_NUMBER.fullmatch(_SPLIT_THOUSANDS.sub(r"\1,\2", rejoin(text)))
    if match is None:
        return None
    value = float(match.group(2).replace(",", ""))
    if value > _MAX_NUMBER:
        return None
    return -value if match.group(1) else value


def last_number(text: str) -> float | None:
    """The last number anywhere in the output (the usual lenient reading)."""
    if not isinstance(text, str):
        return None
    return arith.find_last_number(rejoin(text))


def number_label(text: str, where: str) -> tuple[str, float]:
    """A gold number as (target text without thousands commas, value)."""
    value = strict_number(text)
    if value is None:
        raise InputFileError(f"{where}: answer {text!r} is not a number")
    label = text.strip().replace(",", "")
    return label, value


class NumericTask(DatasetTask):
    """Scored by numeric equality of the final number (relative tolerance 1e-4)."""

    prompt = prompts.MATH

    def parse_answer(self, text: str) -> float | None:
        """Strict: the output is one number."""
        return strict_number(text)

    def parse_answer_flexible(self, text: str) -> float | None:
        """Lenient: strict, else the last number anywhere in the output."""
        strict = self.parse_answer(text)
        return strict if strict is not None else last_number(text)

    def answers_match(self, predicted: Any, gold: Any) -> bool:
        return arith.numbers_equal(predicted, gold)

    def format_answer(self, answer: Any) -> str:
        """A number as a compact decimal the strict parser reads back (42.0 -> "42", 2.5 -> "2.5",
        never an exponent); anything else as ``str``."""
        if isinstance(answer, bool) or not isinstance(answer, (int, float)) or not math.isfinite(answer):
            return super().format_answer(answer)
        # repr is the shortest text that round-trips the float; Decimal writes it without exponent.
        text = format(Decimal(repr(float(answer))).normalize(), "f")
        return "0" if text == "-0" else text


# ---------------------------------------------------------------- SVAMP


class Svamp(NumericTask):
    name = "svamp"
    description = ("SVAMP math word problems; split dss (800/200, label = an equation scored by its value) "
                   "or mcc_kd (700/150/150, label = the number)")
    defaults = {"split": "dss", **COMMON_DEFAULTS}
    check_variants = ({"split": "dss"}, {"split": "mcc_kd"})  # `data check` looks at both splits

    def check_params(self, params: dict[str, Any]) -> None:
        check_choice(params, "split", ("dss", "mcc_kd"), "SVAMP split")
        super().check_params(params)

    def published(self, params: dict[str, Any], skip_missing: bool = False) -> Published:
        if params["split"] == "mcc_kd":
            return self._mcc_kd(skip_missing)
        pub = Published(source="svamp/dss")
        for split in ("train", "test"):
            relpath = f"svamp/dss/svamp_{split}.json"
            pub.read(split, relpath, fetch, lambda path, s=split: [
                self._dss_example(row, s, i, f"{path}:{i + 1}")
                for i, row in enumerate(read_jsonl(path, required=("input", "label")))], skip_missing)
        return pub

    def _mcc_kd(self, skip_missing: bool) -> Published:
        pub = Published(source="svamp/mcc_kd")
        for split, name in (("train", "train"), ("valid", "dev"), ("test", "test")):
            relpath = f"svamp/mcc_kd/{name}.json"
            pub.read(split, relpath, fetch, lambda path, s=split: [
                self._mcc_example(row, s, i, f"{path}: item {i}")
                for i, row in enumerate(read_json_list(path, required=("instruction", "label")))], skip_missing)
        return pub

    def assign(self, pub: Published, params: dict[str, Any]):
        if params["split"] == "mcc_kd":
            note = f"MCC-KD's own dev split ({len(pub.splits['valid'])} rows); task.val_fraction unused"
            return pub.splits["train"], pub.splits["valid"], pub.splits["test"], {"validation": note}
        train, val, note = self.carve(pub.splits["train"], params, "train")
        return train, val, pub.splits["test"], {"validation": note}

    def _dss_example(self, row: dict, split: str, index: int, where: str) -> Example:
        if not isinstance(row["input"], str) or not isinstance(row["label"], str):
            raise InputFileError(f"{where}: fields 'input' and 'label' must be strings")
        answer = arith.evaluate(row["label"])
        if answer is None:
            raise InputFileError(f"{where}: label {row['label']!r} is not an arithmetic expression")
        return Example(id=f"{split}-{index}", input=row["input"], label=row["label"], answer=answer,
                       source=(split, index))

    def _mcc_example(self, row: dict, split: str, index: int, where: str) -> Example:
        if not isinstance(row["instruction"], str):
            raise InputFileError(f"{where}: field 'instruction' must be a string")
        label, value = number_label(str(row["label"]), where)
        return Example(id=f"{split}-{index}", input=row["instruction"].strip(), label=label, answer=value,
                       source=(split, index))

    def parse_answer(self, text: str) -> float | None:
        """Strict: the output is an arithmetic expression (an equation or a number)."""
        return arith.evaluate(rejoin(text)) if isinstance(text, str) else None

    def parse_answer_flexible(self, text: str) -> float | None:
        """Lenient: strict, else the expression after the last "answer is", else the last number."""
        strict = self.parse_answer(text)
        if strict is not None or not isinstance(text, str):
            return strict
        tail = text[-4096:]  # the answer is near the end, and this stays cheap on any length
        marks = list(_ANSWER_IS.finditer(tail))
        if marks:
            line = tail[marks[-1].end():].strip().split("\n", 1)[0]
            for candidate in (line, line.split(". ", 1)[0]):  # the line, or its first sentence
                value = self.parse_answer(candidate.strip().rstrip(". "))
                if value is not None:
                    return value
        return last_number(text)


# ---------------------------------------------------------------- GSM8K


class Gsm8k(NumericTask):
    name = "gsm8k"
    description = "GSM8K grade-school math (7473/1319); input = the question, label = the number after '#### '"
    defaults = dict(COMMON_DEFAULTS)

    def published(self, params: dict[str, Any], skip_missing: bool = False) -> Published:
        pub = Published(source="gsm8k/original")
        for split in ("train", "test"):
            relpath = f"gsm8k/original/{split}.jsonl"
            pub.read(split, relpath, fetch, lambda path, s=split: [
                self._example(row, s, i, f"{path}:{i + 1}")
                for i, row in enumerate(read_jsonl(path, required=("question", "answer")))], skip_missing)
        return pub

    def assign(self, pub: Published, params: dict[str, Any]):
        train, val, note = self.carve(pub.splits["train"], params, "train (GSM8K publishes no validation split)")
        return train, val, pub.splits["test"], {"validation": note}

    def _example(self, row: dict, split: str, index: int, where: str) -> Example:
        if not isinstance(row["question"], str) or not isinstance(row["answer"], str):
            raise InputFileError(f"{where}: fields 'question' and 'answer' must be strings")
        solution, marker, final = row["answer"].rpartition("####")
        if not marker:
            raise InputFileError(f"{where}: answer has no '#### N' line")
        label, value = number_label(final, where)
        return Example(id=f"{split}-{index}", input=row["question"], label=label, answer=value,
                       source=(split, index))


# ---------------------------------------------------------------- ASDiv


class Asdiv(NumericTask):
    name = "asdiv"
    description = ("ASDiv math word problems, 5 published folds (test = task.fold, train = the others); "
                   "subset a = ASDiv-A (1218 arithmetic problems, default) or w = all with a single-number "
                   "answer; input = body + newline + question, label = the answer's number")
    defaults = {"subset": "a", "fold": 0, **COMMON_DEFAULTS}
    FOLDS = 5

    def check_params(self, params: dict[str, Any]) -> None:
        check_choice(params, "subset", ("a", "w"), "ASDiv subset")
        if not 0 <= params["fold"] < self.FOLDS:
            raise ConfigError(f"task.fold: must be in 0..{self.FOLDS - 1}, got {params['fold']}")
        super().check_params(params)

    def published(self, params: dict[str, Any], skip_missing: bool = False) -> Published:
        pub = Published(source="asdiv/original")
        xml = pub.locate("problems", "asdiv/original/ASDiv.xml", fetch, skip_missing)
        if xml is None:
            return pub
        problems = _problems(xml)
        for k in range(self.FOLDS):
            relpath = f"asdiv/original/nfolds/asdiv-{params['subset']}/fold{k}.txt"
            pub.read(f"fold{k}", relpath, fetch, lambda path, k=k: self._fold(pub, problems, path, k, params["subset"]),
                     skip_missing)
        return pub

    def assign(self, pub: Published, params: dict[str, Any]):
        test_fold = f"fold{params['fold']}"
        rest = [e for k in range(self.FOLDS) if f"fold{k}" != test_fold for e in pub.splits[f"fold{k}"]]
        train, val, note = self.carve(rest, params, f"the {self.FOLDS - 1} training folds")
        notes = {"validation": note,
                 "folds": f"test = {test_fold}, train = the other folds of asdiv-{params['subset']}"}
        if pub.skipped:
            notes["skipped"] = f"{pub.skipped} problems whose answer is not a single number (subset w)"
        return train, val, pub.splits[test_fold], notes

    def _fold(self, pub: Published, problems: dict, path, k: int, subset: str) -> list[Example]:
        examples = []
        for i, pid in enumerate(read_lines(path)):
            where = f"{path}:{i + 1}"
            problem = problems.get(pid)
            if problem is None:
                raise InputFileError(f"{where}: problem {pid!r} is not in ASDiv.xml")
            body, question, answer = (_field(problem, f, where) for f in ("Body", "Question", "Answer"))
            # "9 (apples)": the number, then the unit in parentheses.
            number = answer.split("(", 1)[0]
            if subset == "w" and strict_number(number) is None:
                pub.skipped += 1  # names, "5/2", lists of answers
                continue
            label, value = number_label(number, f"{where} ({pid})")
            examples.append(Example(id=f"fold{k}-{i}", input=f"{body}\n{question}", label=label, answer=value,
                                    source=(f"fold{k}", i)))
        return examples


def _problems(path) -> dict[str, ET.Element]:
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        line, column = exc.position
        raise InputFileError(f"{path}:{line}: invalid XML (column {column})") from None
    problems = {p.get("ID"): p for p in root.iter("Problem")}
    if not problems:
        raise InputFileError(f"{path}: no <Problem> elements")
    return problems


def _field(problem: ET.Element, name: str, where: str) -> str:
    node = problem.find(name)
    if node is None or not (node.text or "").strip():
        raise InputFileError(f"{where}: problem {problem.get('ID')!r} has no <{name}>")
    return node.text.strip()
