"""Rationale sets: majority voting over a question's samples, teacher-quality
statistics (the paper's Table 3 teacher rows), the checksum that names a set in
every run, and the rationale-set file that ``qcrd-bench teach`` writes.

File format (JSON Lines, UTF-8).  Line 1 is the header::

    {"format": "qcrd-bench/rationale-set", "version": 1, "task": "svamp", "teacher": "openai",
     "params": {...teacher parameters, no secrets...}, "prompt": {"system": ..., "user": ...} | null,
     "prompt_sha256": "..." | null, "questions": N, "samples": K, "checksum": "...", "created": "..."}

then one line per training question::

    {"id": "train-3", "input": "<model input>", "gold": "<label>",
     "samples": [{"text": "<rationale>", "answer": "<answer as text>" | null, "raw": "<reply>" | null}]}

A run reads it back with ``--teacher file:PATH``: questions are joined to the task's
training split on their text, and each answer text is parsed again by the task.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from .components import Example, Rationale, Task
from .errors import InputFileError, QcrdError
from .readers import json_lines

FORMAT = "qcrd-bench/rationale-set"
VERSION = 1


# ---------------------------------------------------------------- voting and quality


def answer_clusters(task: Task, rationales: Iterable[Rationale]) -> tuple[list[list[Rationale]], list[Rationale]]:
    """Samples grouped by equal answers (in first-seen order), and the unparseable ones."""
    clusters: list[list[Rationale]] = []
    unparseable = []
    for rationale in rationales:
        if rationale.answer is None:
            unparseable.append(rationale)
            continue
        home = next((c for c in clusters if task.answers_match(rationale.answer, c[0].answer)), None)
        if home is None:
            clusters.append([rationale])
        else:
            home.append(rationale)
    return clusters, unparseable


def majority(task: Task, example: Example, clusters: list[list[Rationale]]) -> list[Rationale] | None:
    """The largest cluster; a tie goes to the gold answer when it is among the tied, else
    to the answer seen first (None when no sample has an answer)."""
    if not clusters:
        return None
    top = max(map(len, clusters))
    tied = [c for c in clusters if len(c) == top]
    return next((c for c in tied if task.answers_match(c[0].answer, example.answer)), tied[0])


def teacher_quality(task: Task, examples: list[Example], rationales: dict[str, list[Rationale]]) -> dict[str, float]:
    """Per-sample accuracy, majority-vote (self-consistency) accuracy, agreement (the share
    of a question's parsed samples that agree with its majority), parse rate and coverage.
    Majority-vote ties are broken by first-seen answer here, never by gold, so the figure
    is what a teacher without labels would achieve."""
    samples = parsed = correct = voted_correct = 0
    agreement: list[float] = []
    covered = 0
    for example in examples:
        own = rationales.get(example.id, [])
        if not own:
            continue
        covered += 1
        samples += len(own)
        parsed += sum(r.answer is not None for r in own)
        correct += sum(task.answers_match(r.answer, example.answer) for r in own)
        clusters, _ = answer_clusters(task, own)
        if clusters:
            top = max(clusters, key=len)  # first-seen among ties: no peeking at gold
            voted_correct += task.answers_match(top[0].answer, example.answer)
            agreement.append(len(top) / sum(map(len, clusters)))
    return {"questions": float(covered), "samples": float(samples),
            "samples_per_question": samples / max(covered, 1),
            "parse_rate": parsed / max(samples, 1), "sample_accuracy": correct / max(samples, 1),
            "majority_accuracy": voted_correct / max(covered, 1),
            "agreement": sum(agreement) / max(len(agreement), 1),
            "coverage": covered / max(len(examples), 1)}


def checksum(rationales: dict[str, list[Rationale]]) -> str:
    """sha256 of a set's content (ids, texts, answers), independent of where it came from,
    so runs on the same rationales share it and a comparison never mixes sets silently."""
    digest = hashlib.sha256()
    for example_id in sorted(rationales):
        for r in rationales[example_id]:
            digest.update(json.dumps([example_id, r.text, _answer_text(r.answer)]).encode())
    return digest.hexdigest()


def _answer_text(answer: Any) -> str | None:
    return None if answer is None else str(answer)


# ---------------------------------------------------------------- files


def write_set(path: Path, header: dict[str, Any], examples: list[Example], rationales: dict[str, list[Rationale]],
              raw: dict[str, list[str]] | None = None) -> Path:
    """Write a rationale set atomically (a temporary file renamed into place), so an
    interrupted write never leaves a truncated set behind."""
    path = Path(path)
    head = {"format": FORMAT, "version": VERSION, **header, "checksum": checksum(rationales),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:  # e.g. -o under a regular file: one clear line, not a traceback
        where = f": {exc.filename}" if exc.filename else ""
        raise QcrdError(f"rationale set {path}: cannot write: {exc.strerror or exc}{where}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(json.dumps(head, ensure_ascii=False) + "\n")
            for example in examples:
                own = rationales.get(example.id)
                if not own:
                    continue
                replies = (raw or {}).get(example.id) or [None] * len(own)
                row = {"id": example.id, "input": example.input, "gold": example.label,
                       "samples": [{"text": r.text, "answer": _answer_text(r.answer), "raw": reply}
                                   for r, reply in zip(own, replies)]}
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):  # a full disk: the previous set, if any, is intact
            raise QcrdError(f"rationale set {path}: cannot write: {exc.strerror or exc}") from None
        raise
    return path


def read_set(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(header, rows) of a rationale-set file, each line checked; errors name file and line."""
    path = Path(path)
    lines = json_lines(path)
    if not lines:
        raise InputFileError(f"{path}: empty file, expected a rationale set (header line first)")
    (first, header), rows = lines[0], []
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise InputFileError(f"{path}:{first}: not a rationale set (header 'format' must be {FORMAT!r})")
    if header.get("version") != VERSION:
        raise InputFileError(f"{path}:{first}: rationale-set version {header.get('version')!r}; this qcrd-bench "
                             f"reads version {VERSION}")
    first_seen: dict[str, int] = {}
    for lineno, row in lines[1:]:
        if not isinstance(row, dict) or not isinstance(row.get("input"), str) or \
                not isinstance(row.get("samples"), list):
            raise InputFileError(f"{path}:{lineno}: a question needs 'input' (string) and 'samples' (list)")
        for sample in row["samples"]:
            if not isinstance(sample, dict) or not isinstance(sample.get("text"), str) or \
                    not isinstance(sample.get("answer"), (str, type(None))):
                raise InputFileError(f"{path}:{lineno}: each sample needs 'text' (string) and 'answer' "
                                     "(string or null)")
        # A question given twice (a set concatenated with itself, a bad merge) would
        # silently keep only the later samples.
        key = row.get("id")
        if isinstance(key, str):
            if key in first_seen:
                raise InputFileError(f"{path}:{lineno}: duplicate id {key!r} (first on line {first_seen[key]})")
            first_seen[key] = lineno
        rows.append(row)
    return header, rows
