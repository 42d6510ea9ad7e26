"""Natural language inference as DSS prepared it: ANLI round 1 and e-SNLI.

Input: ``premise + separator + hypothesis``.  DSS joins the two with the student
tokenizer's EOS token; a task has no tokenizer, so the separator is the parameter
``task.separator``, default ``"</s>"``: the EOS of every T5 tokenizer and of the
config-built students, so for them the input is exactly DSS's.  (For a BERT-style
student it is plain text; set e.g. ``--set task.separator=" [SEP] "``.)
Labels: 0 entailment, 1 neutral, 2 contradiction; the target is the label word.
"""

from __future__ import annotations

import re
from typing import Any

from qcrd_bench.components import Example
from qcrd_bench.data import fetch_dss
from qcrd_bench.errors import DataError, InputFileError
from qcrd_bench.readers import read_jsonl

from . import prompts
from .common import COMMON_DEFAULTS, DatasetTask, Published, check_choice

LABELS = ("entailment", "neutral", "contradiction")
_STRIP = " \t\r\n.,;:!?\"'`()[]{}*"
# Flexible reading: a label word or an inflection of it; the last one in the output wins.
_LABEL_WORD = re.compile(r"\b(entail(?:ment|ments|s|ed)?|neutral(?:ity)?|contradict(?:ion|ions|s|ory|ed)?)\b",
                         re.IGNORECASE)
_TAIL = 4096  # flexible reading looks at the end of an output only: answers come last


def strict_label(text: str) -> str | None:
    """The label word, when it is the whole output (case and surrounding punctuation aside)."""
    if not isinstance(text, str) or len(text) > 100:
        return None
    word = text.strip(_STRIP).casefold()
    return word if word in LABELS else None


def flexible_label(text: str) -> str | None:
    """Strict, else the last label word (or inflection: "entails", "contradicts") in the output."""
    found = strict_label(text)
    if found is not None or not isinstance(text, str):
        return found
    hits = list(_LABEL_WORD.finditer(text[-_TAIL:]))
    if not hits:
        return None
    word = hits[-1].group(1).casefold()
    return next(label for label in LABELS if word.startswith(label[:6]))  # entail / neutra / contra


class NliTask(DatasetTask):
    """ANLI1 / e-SNLI: published train, valid and test files; validation = valid."""

    chance = 1 / 3
    train_size = 0  # rows of the train file (for the message when it is missing)
    prompt = prompts.NLI

    def prompt_input(self, example: Example, params: dict[str, Any]) -> str:
        premise, _, hypothesis = example.input.rpartition(params["separator"])
        return f"Premise: {premise}\nHypothesis: {hypothesis}"

    def check_params(self, params: dict[str, Any]) -> None:
        check_choice(params, "train_split", ("train", "valid"), f"{self.name} training split")
        super().check_params(params)

    def published(self, params: dict[str, Any], skip_missing: bool = False) -> Published:
        pub = Published(source=self.source)
        splits = ("train", "valid", "test") if params["train_split"] == "train" or skip_missing else ("valid", "test")
        for split in splits:
            relpath = f"{self.source}/{self.name}_{split}.json"
            try:
                pub.read(split, relpath, fetch_dss, lambda path, s=split: [
                    self._example(row, s, i, f"{path}:{i + 1}", params["separator"])
                    for i, row in enumerate(read_jsonl(path, required=("premise", "hypothesis", "label")))],
                    skip_missing)
            except DataError as exc:
                if split != "train":
                    raise
                # Never substitute another split silently: say what is missing and the two remedies.
                raise DataError(f"{exc}; or train on the valid split and test on test: "
                                f"--set task.train_split=valid") from None
        return pub

    def assign(self, pub: Published, params: dict[str, Any]):
        if params["train_split"] == "train":
            note = f"the published valid split ({len(pub.splits['valid'])} rows)"
            return pub.splits["train"], pub.splits["valid"], pub.splits["test"], {"validation": note}
        train, val, note = self.carve(pub.splits["valid"], params, "the valid split")
        notes = {"validation": note,
                 "train_split": (f"task.train_split=valid: the model trains on the published valid split minus "
                                 f"the carved validation ({len(train)} rows), not on the {self.train_size}-row "
                                 f"train split; test is the published test split")}
        return train, val, pub.splits["test"], notes

    def _example(self, row: dict, split: str, index: int, where: str, separator: str) -> Example:
        premise, hypothesis, label = row["premise"], row["hypothesis"], row["label"]
        if not isinstance(premise, str) or not isinstance(hypothesis, str):
            raise InputFileError(f"{where}: fields 'premise' and 'hypothesis' must be strings")
        # type(...) is int: a bool, or a float like 1.0 (== 1), is no label index.
        if type(label) is not int or label not in (0, 1, 2):
            raise InputFileError(f"{where}: label {label!r} is not 0, 1 or 2")
        word = LABELS[label]
        return Example(id=f"{split}-{index}", input=f"{premise}{separator}{hypothesis}", label=word, answer=word,
                       source=(split, index))

    def parse_answer(self, text: str) -> str | None:
        """Strict: the output is one label word (entailment, neutral, contradiction)."""
        return strict_label(text)

    def parse_answer_flexible(self, text: str) -> str | None:
        """Lenient: strict, else the last label word or inflection anywhere in the output."""
        return flexible_label(text)


class Anli1(NliTask):
    name = "anli1"
    source = "anli1/dss"
    train_size = 16946
    description = ("ANLI round 1 (DSS: train 16946 / valid 1000 / test 1000); input = premise + task.separator "
                   "(default '</s>': T5's EOS, which DSS joins with) + hypothesis; train is not in the shared "
                   "mirror: download it, or --set task.train_split=valid")
    defaults = {"train_split": "train", "separator": "</s>", **COMMON_DEFAULTS}


class Esnli(NliTask):
    name = "esnli"
    source = "esnli/dss"
    train_size = 549367
    description = ("e-SNLI (DSS: train 549367 / valid 9842 / test 9824); input = premise + task.separator "
                   "(default '</s>': T5's EOS, which DSS joins with) + hypothesis; train is not in the shared "
                   "mirror: download it, or --set task.train_split=valid")
    defaults = {"train_split": "train", "separator": "</s>", **COMMON_DEFAULTS}
