"""Published-rationale teachers beyond DSS and MCC-KD:

* ``eit-multi``: the SVAMP rationales of EIT-NLP/Distilling-CoT-Reasoning (ChatGPT, Gemini
  and LLaMA at granularity levels 1-6, ChatGPT also in three formats, plus a human and an
  answer-only file), joined on question text.
* ``gsm8k-human``: the human step-by-step solutions shipped with GSM8K, joined by row.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from qcrd_bench import arith
from qcrd_bench.components import Rationale, Task, TaskData, Teacher, TeacherOutput
from qcrd_bench.data import fetch, sha256_file
from qcrd_bench.errors import ConfigError, InputFileError
from qcrd_bench.hookspecs import hookimpl
from qcrd_bench.readers import read_json_list, read_jsonl
from qcrd_plugins.tasks.common import question_key

# ---------------------------------------------------------------- eit-multi

EIT_FOLDER = "svamp/eit_nlp_multi_teacher"
EIT_MODELS = ("chatgpt", "gemini", "llama")
EIT_EXTRAS = ("human", "answer-only")  # one file each, without level or format
EIT_LEVELS = tuple(range(1, 7))
EIT_FORMATS = ("ranked", "BSM", "RaR", "SYM")


@dataclass(frozen=True)
class EitFile:
    teacher: str
    relpath: str
    level: int | None = None  # None: the file has no granularity level (human, answer-only)
    format: str | None = None

    @property
    def origin(self) -> str:
        parts = ["eit-multi", self.teacher]
        if self.level is not None:
            parts.append(f"level{self.level}")
        if self.format not in (None, "ranked"):
            parts.append(self.format)
        return ":".join(parts)


def _eit_files() -> tuple[EitFile, ...]:
    """The 24 files of the release.  Upstream spells the teacher "ChatGPT" in the ranked
    files and "chatgpt" in the format files; LLaMA has only levels 1-4; the format
    variants exist for ChatGPT at levels 3 and 5 only."""
    spelled = {"chatgpt": "ChatGPT", "gemini": "gemini", "llama": "llama"}
    top = {"chatgpt": 6, "gemini": 6, "llama": 4}
    files = [EitFile(m, f"{EIT_FOLDER}/SVAMP_{spelled[m]}_level{k}_ranked.json", k, "ranked")
             for m in EIT_MODELS for k in range(1, top[m] + 1)]
    files += [EitFile("chatgpt", f"{EIT_FOLDER}/0_SVAMP_chatgpt_level{k}{f}.json", k, f)
              for k in (3, 5) for f in EIT_FORMATS[1:]]
    files += [EitFile("human", f"{EIT_FOLDER}/svamp_human_annotation.json"),
              EitFile("answer-only", f"{EIT_FOLDER}/SVAMP_only_ans.json")]
    return tuple(files)


EIT_FILES = _eit_files()


def _items(value: Any) -> list[str]:
    """A comma-separated parameter as its distinct items, in order ("3,5" or 3 from YAML)."""
    items = [part.strip() for part in str(value).split(",") if part.strip()]
    return list(dict.fromkeys(items))


def _choose(key: str, value: Any, allowed: tuple[str, ...], all_ok: bool = False) -> list[str]:
    """Validate one comma-separated parameter; items match ``allowed`` case-insensitively."""
    items = _items(value)
    if all_ok and [i.casefold() for i in items] == ["all"]:
        return list(allowed)
    canonical = {a.casefold(): a for a in allowed}
    bad = [i for i in items if i.casefold() not in canonical]
    if bad or not items:
        shown = ", ".join(allowed) + (" (or all)" if all_ok else "")
        what = f"unknown value(s) {', '.join(map(repr, bad))}" if bad else "empty selection"
        raise ConfigError(f"teacher.{key}: {what} in {value!r}; choose a comma-separated subset of {shown}")
    return list(dict.fromkeys(canonical[i.casefold()] for i in items))


def select_eit_files(params: dict[str, Any]) -> list[EitFile]:
    """The files ``teachers`` x ``levels`` x ``format`` select.  Combinations the release
    lacks (LLaMA level 5, Gemini in BSM) are skipped; a selection matching no file fails."""
    teachers = _choose("teachers", params["teachers"], EIT_MODELS + EIT_EXTRAS)
    levels = [int(k) for k in _choose("levels", params["levels"], tuple(map(str, EIT_LEVELS)), all_ok=True)]
    formats = _choose("format", params["format"], EIT_FORMATS, all_ok=True)
    chosen = [f for f in EIT_FILES if f.teacher in teachers
              and (f.level is None or (f.level in levels and f.format in formats))]
    if not chosen:
        raise ConfigError(
            f"teacher.teachers={params['teachers']!r}, teacher.levels={params['levels']!r}, "
            f"teacher.format={params['format']!r} select no EIT-NLP file; the release has ranked levels 1-6 "
            "for chatgpt and gemini, 1-4 for llama, and formats BSM/RaR/SYM for chatgpt at levels 3 and 5")
    return chosen


class EitMulti(Teacher):
    name = "eit-multi"
    description = ("EIT-NLP multi-teacher SVAMP rationales (ChatGPT/Gemini/LLaMA at levels 1-6, formats, "
                   "human, answer-only): one per selected file and question, joined on question text")
    # Parameters: comma-separated selections; "human" and "answer-only" ignore levels and format.
    defaults = {"teachers": "chatgpt,gemini,llama", "levels": "all", "format": "ranked"}

    def check(self, params: dict[str, Any]) -> None:
        select_eit_files({**self.defaults, **params})

    def rationales(self, task: Task, data: TaskData, params: dict[str, Any]) -> TeacherOutput:
        if task.name != "svamp":
            raise ConfigError(f"teacher 'eit-multi' has no rationales for task {task.name!r}; available for: svamp")
        selected = select_eit_files({**self.defaults, **params})
        # Joined on question text, not row: row order differs between the files, and the
        # 700 questions are EIT's own training set (136 of them are DSS test questions).
        train = {question_key(e.input): e for e in data.train}
        rationales: dict[str, list[Rationale]] = {}
        files, outside = {}, set()
        for eit in selected:
            path = fetch(eit.relpath)
            files[eit.relpath] = sha256_file(path)
            for key, rationale in _read_eit(path, eit):
                example = train.get(key)
                if example is None:  # a question outside this run's training split: never trained on
                    outside.add(key)
                    continue
                rationales.setdefault(example.id, []).append(rationale)
        stats = _stats(task, data, rationales, dropped=len(outside))
        stats["teacher_files"] = float(len(selected))
        return TeacherOutput(rationales=rationales, stats=stats, files=files)


def _read_eit(path, eit: EitFile) -> list[tuple[str, Rationale]]:
    """(question key, rationale) per row; a question twice in one file is an error, as it
    would silently weight that file double for the question."""
    rows = read_json_list(path, required=("instruction", "output"))
    out, seen = [], set()
    for index, row in enumerate(rows):
        if not isinstance(row["instruction"], str) or not isinstance(row["output"], str):
            raise InputFileError(f"{path}: item {index}: 'instruction' and 'output' must be strings")
        key = question_key(row["instruction"])
        if key in seen:
            raise InputFileError(f"{path}: item {index}: question repeated within the file")
        seen.add(key)
        text = row["output"].strip()
        # The last number, as for mcc-kd: most outputs end "The answer is N", a few
        # "The answer is 81 - 60 = 21" or "..., the answer is 20."
        out.append((key, Rationale(text=text, answer=arith.find_last_number(text), origin=eit.origin)))
    return out


def _stats(task: Task, data: TaskData, rationales: dict[str, list[Rationale]], dropped: int) -> dict[str, float]:
    """The statistics mcc-kd reports; ``teacher_dropped`` counts questions, not samples."""
    gold = {e.id: e.answer for e in data.train}
    samples = [(r, gold[i]) for i, rs in rationales.items() for r in rs]
    n = max(len(samples), 1)
    return {"teacher_questions": float(len(rationales)), "teacher_dropped": float(dropped),
            "teacher_samples": float(len(samples)),
            "teacher_parse_rate": sum(r.answer is not None for r, _ in samples) / n,
            "teacher_accuracy": sum(task.answers_match(r.answer, g) for r, g in samples) / n}


# ---------------------------------------------------------------- gsm8k-human

GSM8K_SOURCE = "gsm8k/original"
GSM8K_TRAIN = f"{GSM8K_SOURCE}/train.jsonl"
# "48/2 = <<48/2=24>>24 clips": the note is the calculator call the annotators made.
CALCULATOR_NOTE = re.compile(r"<<[^<>]*>>")


def split_gsm8k_solution(answer: str, keep_calculator_notes: bool = False) -> tuple[str, str | None]:
    """A GSM8K ``answer`` field as (solution steps, final answer text); the final answer
    is None when the field has no ``#### N`` line."""
    solution, marker, final = answer.rpartition("####")
    if not marker:
        return answer.strip(), None
    if not keep_calculator_notes:
        solution = CALCULATOR_NOTE.sub("", solution)
    return solution.strip(), final.strip()


class Gsm8kHuman(Teacher):
    name = "gsm8k-human"
    description = ("GSM8K's human step-by-step solutions (1 per training question; calculator notes "
                   "removed unless teacher.keep_calculator_notes), joined by row")
    defaults = {"keep_calculator_notes": False}

    def check(self, params: dict[str, Any]) -> None:
        value = params.get("keep_calculator_notes", False)
        if not isinstance(value, bool):
            raise ConfigError(f"teacher.keep_calculator_notes: must be true or false, got {value!r}")

    def rationales(self, task: Task, data: TaskData, params: dict[str, Any]) -> TeacherOutput:
        params = {**self.defaults, **params}
        self.check(params)
        self._check_source(task, data)
        path = fetch(GSM8K_TRAIN)
        # Joined by source row, which is exact: the task reads this same file with the same
        # reader, so Example.source=("train", i) is row i here.  Question text would also
        # be unique in train.jsonl, but the row needs no normalising; the text is still
        # compared below so that a different or edited file fails instead of misaligning.
        rows = read_jsonl(path, required=("question", "answer"))
        rationales: dict[str, list[Rationale]] = {}
        for example in data.train:
            row = self._row(rows, example, path)
            text, final = split_gsm8k_solution(row["answer"], params["keep_calculator_notes"])
            answer = task.extract_answer(final, example) if final is not None else None
            rationales[example.id] = [Rationale(text=text, answer=answer, origin="gsm8k-human")]
        stats = _stats(task, data, rationales, dropped=len(rows) - len(rationales))
        return TeacherOutput(rationales=rationales, stats=stats, files={GSM8K_TRAIN: sha256_file(path)})

    def _check_source(self, task: Task, data: TaskData) -> None:
        if task.name != "gsm8k":
            raise ConfigError(f"teacher 'gsm8k-human' has no rationales for task {task.name!r}; "
                              "available for: gsm8k")
        source = data.notes.get("source", GSM8K_SOURCE)
        if source != GSM8K_SOURCE:
            raise ConfigError(f"teacher 'gsm8k-human' follows the rows of {GSM8K_SOURCE}, but the task reads "
                              f"{source}; use another teacher")
        # The test split's solutions are its gold answers: never a training rationale.
        splits = sorted({e.source[0] for e in data.train} - {"train"})
        if splits:
            raise ConfigError(f"teacher 'gsm8k-human' only gives rationales for GSM8K train rows, but the "
                              f"training examples come from {', '.join(splits)} too")

    @staticmethod
    def _row(rows: list[dict], example, path) -> dict:
        index = example.source[1]
        if index >= len(rows) or rows[index]["question"] != example.input:
            raise InputFileError(f"{path}: row {index + 1} is not the question of example {example.id}; "
                                 "the file is not the one the task read")
        return rows[index]


@hookimpl
def register_teachers(register):
    register(EitMulti())
    register(Gsm8kHuman())
