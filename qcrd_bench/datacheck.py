"""``qcrd-bench data``: where each dataset file is, whether it is intact, whether the
rationale files line up with the input rows, and whether any rationale of a test
question could reach training.

Everything task-specific comes from the task and teacher plugins: a task that
offers ``published(params, skip_missing=True)`` (the built-in ones do) has its
published splits counted, and the teachers that read published files are run over
them.  Nothing here downloads unless asked to (:func:`download`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .components import Example, TaskData
from .data import ARCHIVE_ONLY, ENV_DATA_DIR, cache_root, data_root, fetch, fetch_archived, manifest, sha256_file
from .errors import ConfigError, DataError, QcrdError

# Teachers that read published files (cheap to run here), and the published splits each
# is checked on (None: every split it has files for).  MCC-KD's rationales are for its
# own training questions, so only the training split is meaningful for it.
FILE_TEACHERS: dict[str, tuple[str, ...] | None] = {"dss-palm": None, "mcc-kd": ("train",), "eit-multi": ("train",),
                                                  "gsm8k-human": ("train",)}
# A teacher aligned with its rows agrees with gold far above chance; a shifted or
# foreign rationale file falls to about chance.
ALIGNMENT_MARGIN = 0.2
_SPACES = re.compile(r"\s+")
# Numbered members of one series (batch files, folds, levels) are listed as one line.
_NUMBERED = re.compile(r"(?<=_CoT_)\d+|(?<=fold)\d+|(?<=level)\d+|^\d+(?=_)")


def question_key(text: str) -> str:
    return _SPACES.sub(" ", text).strip().casefold()


# ---------------------------------------------------------------- files


@dataclass
class FileStatus:
    relpath: str
    path: Path
    state: str  # ok | missing | altered | absent (an archive-only file not fetched)
    detail: str = ""
    bytes: int | None = None


def local_path(relpath: str) -> Path:
    """Where ``relpath`` is read from now: the mirror when one is set, else the cache."""
    root = data_root()
    return (root if root is not None else cache_root()).joinpath(relpath)


def task_names() -> list[str]:
    """The task folders the manifest and the DSS archive know."""
    return sorted({p.split("/", 1)[0] for p in (*manifest(), *ARCHIVE_ONLY)})


def file_statuses(task: str) -> list[FileStatus]:
    """Presence, size and sha256 (against the manifest) of every file of ``task``."""
    statuses = []
    for relpath, entry in sorted(manifest().items()):
        if not relpath.startswith(task + "/"):
            continue
        path = local_path(relpath)
        if not path.is_file():
            statuses.append(FileStatus(relpath, path, "missing", "not present", entry.bytes))
            continue
        size = path.stat().st_size
        if size != entry.bytes:
            detail = f"{size} bytes, the manifest says {entry.bytes}: truncated or altered"
            statuses.append(FileStatus(relpath, path, "altered", detail, entry.bytes))
        elif sha256_file(path) != entry.sha256:
            statuses.append(FileStatus(relpath, path, "altered", "sha256 differs from the manifest: altered",
                                       entry.bytes))
        else:
            statuses.append(FileStatus(relpath, path, "ok", "", entry.bytes))
    for relpath in sorted(ARCHIVE_ONLY):
        if relpath.startswith(task + "/"):
            path = local_path(relpath)
            present = path.is_file()
            statuses.append(FileStatus(relpath, path, "ok" if present else "absent",
                                       "from datasets.zip" if present else "only in the DSS datasets.zip",
                                       path.stat().st_size if present else None))
    return statuses


def file_groups(task: str) -> list[dict[str, Any]]:
    """Files of a task grouped by name pattern (``llm/train_CoT_*.json``), for `data list`."""
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for status in file_statuses(task):
        _, source, name = status.relpath.split("/", 2)
        pattern = _NUMBERED.sub("*", name)
        group = groups.setdefault((source, pattern), {"task": task, "source": source, "files": pattern,
                                                       "count": 0, "present": 0, "bytes": 0, "states": set()})
        group["count"] += 1
        group["present"] += status.state in ("ok", "altered")
        group["bytes"] += status.bytes or 0
        group["states"].add(status.state)
    for group in groups.values():
        group["split"] = _split_of(group["files"])
    return list(groups.values())


def _split_of(name: str) -> str:
    match = re.search(r"(train|valid|dev|test|fold)", name)
    if not match:
        return "all"
    return "folds" if match.group(1) == "fold" else match.group(1)


def where() -> str:
    root = data_root()
    if root is not None:
        return f"mirror {root} ({ENV_DATA_DIR})"
    return f"cache {cache_root()} (downloads on demand; {ENV_DATA_DIR} unset)"


# ---------------------------------------------------------------- checks


@dataclass
class SplitLine:
    """One row of the `data check` table: a published split and one teacher over it."""

    task: str
    variant: str
    split: str
    rows: int | None
    teacher: str = ""
    completions: int | None = None
    coverage: float | None = None
    accuracy: float | None = None
    unparseable: int | None = None
    note: str = ""


@dataclass
class TaskCheck:
    name: str
    files: list[FileStatus] = field(default_factory=list)
    lines: list[SplitLine] = field(default_factory=list)
    overlaps: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def check(catalog, names: list[str] | None = None) -> list[TaskCheck]:
    """Check the named tasks (default: every task with data files)."""
    known = task_names()
    for name in names or []:
        if name not in known:
            raise ConfigError(f"unknown task {name!r} for `data`; available: {', '.join(known)}")
    return [check_task(catalog, name) for name in (names or known)]


def check_task(catalog, name: str) -> TaskCheck:
    result = TaskCheck(name, files=file_statuses(name))
    for status in result.files:
        if status.state in ("missing", "altered"):
            result.problems.append(f"{status.path}: {status.detail}")
    if any(s.state == "missing" for s in result.files) and data_root() is None:
        result.problems.append(f"{name}: files not downloaded; run `qcrd-bench data download {name}`")
        return result  # checking would download them
    task = catalog.tasks.get(name) if name in catalog.tasks else None
    if task is None or not hasattr(task, "published"):
        result.overlaps.append("no task plugin reads these files; checksums only")
        return result
    for variant in getattr(task, "check_variants", ({},)):
        try:
            _check_variant(catalog, task, variant, result)
        except QcrdError as exc:  # a malformed file: named by the reader
            result.problems.append(str(exc))
    return result


def _label(variant: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in variant.items()) or "default"


def _check_variant(catalog, task, variant: dict[str, Any], result: TaskCheck) -> None:
    params = {**task.defaults, **variant}
    pub = task.published(params, skip_missing=True)
    label = _label(variant)
    for split, examples in pub.splits.items():
        lines = _teacher_lines(catalog, task, pub, split, examples, label)
        result.lines.extend(lines or [SplitLine(task.name, label, split, len(examples))])
        for line in lines:
            _check_alignment(task, line, result)
    for split, why in pub.missing.items():
        result.lines.append(_missing_line(catalog, task, label, split, why))
    _check_leakage(catalog, task, params, label, result)


def _file_teachers(catalog):
    for teacher_name, splits in FILE_TEACHERS.items():
        if teacher_name in catalog.teachers:
            yield catalog.teachers.get(teacher_name), splits


def _teacher_lines(catalog, task, pub, split: str, examples: list[Example], label: str) -> list[SplitLine]:
    lines = []
    for teacher, splits in _file_teachers(catalog):
        if splits is not None and split not in splits:
            continue
        data = TaskData(train=examples, val=[], test=[], notes={"source": pub.source})
        try:
            out = teacher.rationales(task, data, dict(teacher.defaults))
        except ConfigError:
            continue  # this teacher has nothing for this task, source or split
        stats = out.stats
        covered = sum(any(r.text.strip() for r in out.rationales.get(e.id, [])) for e in examples)
        samples = stats.get("teacher_samples")  # several rationales per question: unparseable = per sample
        unparseable = (samples or len(examples)) * (1 - stats.get("teacher_parse_rate", 0.0))
        lines.append(SplitLine(task.name, label, split, len(examples), teacher.name,
                               _int(stats.get("teacher_completions")), covered / max(len(examples), 1),
                               stats.get("teacher_accuracy"), round(unparseable),
                               f"{int(samples)} samples" if samples else ""))
    return lines


def _int(value) -> int | None:
    return None if value is None else int(value)


def _missing_line(catalog, task, label: str, split: str, why: str) -> SplitLine:
    line = SplitLine(task.name, label, split, None, note=f"inputs not here ({_missing_file(why)})")
    for teacher, _ in _file_teachers(catalog):
        survey = getattr(teacher, "survey", None)
        if survey is None:
            continue
        try:
            stats = survey(task, split)
        except DataError:
            line.teacher, line.note = teacher.name, line.note + "; rationale files missing too"
            continue
        if stats:
            line.teacher, line.completions = teacher.name, _int(stats["teacher_completions"])
            line.unparseable = _int(stats["teacher_unparseable"])
            line.note += "; accuracy needs them"
    return line


def _missing_file(why: str) -> str:
    match = re.search(r"data file not found: (\S+)", why)
    return Path(match.group(1)).name if match else why.split(";", 1)[0]


def _check_alignment(task, line: SplitLine, result: TaskCheck) -> None:
    where = f"{task.name} {line.split} ({line.teacher})"
    if line.completions is not None and line.completions != line.rows:
        result.problems.append(f"{where}: {line.completions} completions for {line.rows} input rows; "
                               "the rationale files are not aligned with the inputs")
    floor = getattr(task, "chance", 0.0) + ALIGNMENT_MARGIN
    if line.accuracy is not None and line.completions is not None and line.accuracy < floor:
        result.problems.append(f"{where}: teacher accuracy {line.accuracy:.1%} is below {floor:.1%} (chance + "
                               f"{ALIGNMENT_MARGIN:.0%}); the rationale files look shifted or foreign to the inputs")


def _load_as_run(task, params: dict[str, Any]) -> tuple[TaskData, str]:
    """The splits a run would use; a missing NLI train split falls back to train_split=valid,
    as a run must be told to do, and the line says so."""
    try:
        return task.load(params), ""
    except DataError:
        if params.get("train_split") != "train":
            raise
        return task.load({**params, "train_split": "valid"}), " (train_split=valid: train is missing)"


def _check_leakage(catalog, task, params: dict[str, Any], label: str, result: TaskCheck) -> None:
    data, how = _load_as_run(task, params)
    keys = {split: {question_key(e.input) for e in rows} for split, rows in data.splits().items()}
    text = (f"{label}{how}: train∩test {len(keys['train'] & keys['test'])}, val∩test "
            f"{len(keys['val'] & keys['test'])}, train∩val {len(keys['train'] & keys['val'])} questions")
    train_ids = {e.id for e in data.train}
    for teacher, _ in _file_teachers(catalog):
        try:
            out = teacher.rationales(task, data, dict(teacher.defaults))
        except ConfigError:
            continue
        foreign = set(out.rationales) - train_ids
        leaked = [e for e in data.train if e.id in out.rationales and question_key(e.input) in keys["test"]]
        dropped = out.stats.get("teacher_dropped")
        text += (f"; {teacher.name}: rationales for {len(out.rationales)} training questions, "
                 f"{len(leaked)} of them test questions" + (f", {int(dropped)} rows dropped" if dropped else ""))
        if foreign or leaked:
            result.problems.append(f"{task.name} {label} ({teacher.name}): {len(leaked)} rationales of test "
                                   f"questions and {len(foreign)} of non-training examples would be trained on")
    result.overlaps.append(text)


# ---------------------------------------------------------------- output


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _num(value: int | None) -> str:
    return "-" if value is None else str(value)


def format_check(results: list[TaskCheck]) -> str:
    header = ("task", "variant", "split", "rows", "teacher", "completions", "coverage", "teacher_acc",
              "parse_fail", "note")
    rows = [header]
    for result in results:
        for line in result.lines:
            rows.append((line.task, line.variant, line.split, _num(line.rows), line.teacher or "-",
                         _num(line.completions), _pct(line.coverage), _pct(line.accuracy), _num(line.unparseable),
                         line.note))
    out = [_table(rows), ""]
    for result in results:
        ok = sum(s.state == "ok" for s in result.files)
        absent = [s.relpath for s in result.files if s.state == "absent"]
        out.append(f"{result.name}: files {ok}/{len(result.files)} present and matching the manifest"
                   + (f" ({len(absent)} only in datasets.zip, not here)" if absent else ""))
        out.extend(f"  overlaps {line}" for line in result.overlaps)
        out.extend(f"  PROBLEM {problem}" for problem in result.problems)
    return "\n".join(out)


def format_list(groups: list[dict[str, Any]]) -> str:
    rows = [("task", "source", "files", "split", "count", "bytes", "here")]
    for g in groups:
        if g["present"] == g["count"]:
            here = "yes" if g["states"] == {"ok"} else "yes (altered)"
        elif g["present"]:
            here = f"{g['present']}/{g['count']}"
        else:
            here = "no (in DSS datasets.zip)" if "absent" in g["states"] else "no"
        rows.append((g["task"], g["source"], g["files"], g["split"], str(g["count"]),
                     str(g["bytes"]) if g["bytes"] else "?", here))
    return f"data: {where()}\n" + _table(rows)


def _table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


# ---------------------------------------------------------------- download


def download(names: list[str] | None, echo: Callable[[str], None]) -> int:
    """Fetch every file of the named tasks into the cache (verified); returns how many."""
    if data_root() is not None:
        raise DataError(f"{ENV_DATA_DIR} is set, so runs read the mirror {data_root()}; "
                        f"unset it to download into the cache {cache_root()}")
    known = task_names()
    for name in names or []:
        if name not in known:
            raise ConfigError(f"unknown task {name!r} for `data download`; available: {', '.join(known)}")
    count = 0
    for name in names or known:
        for relpath in sorted(p for p in manifest() if p.startswith(name + "/")):
            fetch(relpath)
            count += 1
        archived = sorted(p for p in ARCHIVE_ONLY if p.startswith(name + "/"))
        for relpath in archived:
            fetch_archived(relpath)
            count += 1
        echo(f"{name}: ready in {cache_root() / name}")
    return count
