"""A corpus of bad inputs, each driven through the real CLI.

Every case must give one clear ``error:`` line naming the file (and line, field or key
where one applies), exit 2 (the CLI's code for a user error, ``Failure``), print no
traceback, leave no RUNNING MLflow run, and leave no partial cache, set or checkpoint
behind.  Most cases fail before any training; the few accepted inputs (a UTF-8 BOM, a
rationale set covering part of the training split) run 2 steps on 8 examples.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import MIRROR, runs_in
from qcrd_bench.cli import main
from qcrd_bench.rationales import FORMAT

BOM = b"\xef\xbb\xbf"
FAST = ["--preset", "smoke", "--limit", "8", "--set", "train.threads=1", "--set", "eval.max_new_tokens=4"]
SVAMP = ["run", "-m", "dss", "-t", "svamp", *FAST, "--set", "train.steps=2"]
ANLI1 = ["run", "-m", "dss", "-t", "anli1", *FAST, "--set", "train.steps=2", "--set", "task.train_split=valid"]
CQA = ["run", "-m", "dss", "-t", "cqa", *FAST, "--set", "train.steps=2"]


# ---------------------------------------------------------------- helpers


def invoke(args: list[str], uri: str | None = None):
    if uri is not None:
        args = [*args, "--tracking-uri", uri]
    return CliRunner().invoke(main, args)


def store_runs(uri: str) -> list:
    """The runs of a SQLite store; none when the file was never created (asking MLflow
    would create it)."""
    path = Path(uri[len("sqlite:///"):])
    return runs_in(uri) if path.exists() else []


def assert_user_error(result, uri: str | None, *needles: str, runs: str = "none") -> str:
    """Exit 2, one ``error:`` line holding every needle, no traceback; ``runs``: "none"
    (the store holds no run) or "ended" (a run may exist, but none is RUNNING)."""
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert isinstance(result.exception, SystemExit), result.exception  # not a crash caught by the runner
    assert "Traceback" not in result.output, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.output
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])
    if uri is not None:
        found = store_runs(uri)
        if runs == "none":
            assert found == [], [r.info.status for r in found]
        else:
            assert all(r.info.status != "RUNNING" for r in found), [r.info.status for r in found]
    return errors[0]


def copy_mirror(tmp_path: Path, monkeypatch, task: str, relpath: str, data: bytes) -> Path:
    """A mirror of ``task`` (symlinks to the shared one) whose ``relpath`` is ``data``;
    QCRD_BENCH_DATA_DIR points at it.  Returns the corrupted file's path."""
    root = tmp_path / "mirror"
    for dirpath, _, files in os.walk(MIRROR / task):
        here = root / Path(dirpath).relative_to(MIRROR)
        here.mkdir(parents=True, exist_ok=True)
        for name in files:
            (here / name).symlink_to(Path(dirpath) / name)
    target = root / relpath
    target.unlink()
    target.write_bytes(data)
    monkeypatch.setenv("QCRD_BENCH_DATA_DIR", str(root))
    return target


def mirror_bytes(relpath: str) -> bytes:
    return (MIRROR / relpath).read_bytes()


def replace_line(data: bytes, index: int, old: bytes, new: bytes) -> bytes:
    lines = data.split(b"\n")
    assert old in lines[index], (old, lines[index][:200])
    lines[index] = lines[index].replace(old, new, 1)
    return b"\n".join(lines)


HEADER = {"format": FORMAT, "version": 1, "task": "svamp", "teacher": "hand-written"}


@pytest.fixture
def train8(mirror, catalog):
    """The 8 training questions of a ``--limit 8`` svamp run."""
    return catalog.tasks.get("svamp").load({}).train[:8]


def row(example, answer=None) -> dict:
    answer = example.label if answer is None else answer
    return {"id": example.id, "input": example.input, "gold": example.label,
            "samples": [{"text": f"We compute {answer}.", "answer": answer}]}


def write_lines(path: Path, lines: list, prefix: bytes = b"") -> Path:
    text = "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    path.write_bytes(prefix + text.encode("utf-8"))
    return path


# ---------------------------------------------------------------- rationale sets (--teacher file:PATH)


SET_CASES = [
    # 1. the last record cut mid-way (an interrupted copy)
    ("truncated", [HEADER, "ROW0", "ROW1"], lambda b: b[: len(b) - 40],
     [":3: invalid JSON"]),
    # 2. wrong field name / wrong field types
    ("field-name", [HEADER, {"question": "q", "samples": []}], None,
     [":2: a question needs 'input' (string) and 'samples' (list)"]),
    ("field-type", [HEADER, {"input": "q", "samples": "a string"}], None,
     [":2: a question needs 'input' (string) and 'samples' (list)"]),
    ("sample-type", [HEADER, {"input": "q", "samples": [{"text": "r", "answer": 3}]}], None,
     [":2: each sample needs 'text' (string) and 'answer' (string or null)"]),
    ("not-an-object", [HEADER, "[1, 2]"], None, [":2: a question needs 'input'"]),
    ("header", [{"format": "something else"}, "ROW0"], None, [":1: not a rationale set"]),
    ("version", [{**HEADER, "version": 7}, "ROW0"], None, [":1: rationale-set version 7"]),
    ("other-task", [{**HEADER, "task": "cqa"}, "ROW0"], None, ["a rationale set for task 'cqa', not 'svamp'"]),
    # 3. empty files
    ("empty", [], None, [": empty file, expected a rationale set"]),
    ("blank-lines", ["", "  "], None, [": empty file, expected a rationale set"]),
    # 4. bytes that are not UTF-8, on line 3
    ("not-utf8", [HEADER, "ROW0", "ROW1"], lambda b: b[:-10] + b"\xff\xfe" + b[-10:],
     [":3: not UTF-8 text"]),
    # 6. the same question twice
    ("duplicate-id", [HEADER, "ROW0", "ROW1", "ROW0"], None, [":4: duplicate id 'train-", "(first on line 2)"]),
]


@pytest.mark.parametrize("name, lines, raw, needles", SET_CASES, ids=[case[0] for case in SET_CASES])
def test_bad_rationale_set(train8, tracking_uri, tmp_path, name, lines, raw, needles):
    rows = {"ROW0": row(train8[0]), "ROW1": row(train8[1])}
    path = write_lines(tmp_path / f"{name}.jsonl", [rows.get(line, line) if isinstance(line, str) else line
                                                     for line in lines])
    if raw is not None:
        path.write_bytes(raw(path.read_bytes()))
    result = invoke([*SVAMP, "--teacher", f"file:{path}"], tracking_uri)
    assert_user_error(result, tracking_uri, str(path), *needles)


@pytest.mark.parametrize("where", ["missing", "directory"])
def test_rationale_set_path_that_is_no_file(mirror, tracking_uri, tmp_path, where):
    path = tmp_path / "nope.jsonl" if where == "missing" else tmp_path
    result = invoke([*SVAMP, "--teacher", f"file:{path}"], tracking_uri)
    assert_user_error(result, tracking_uri, f"{path}: cannot read")


# 7. a set covering none of the run's training questions: an error (the run would
# silently be label-only); covering some, plus foreign ones: logged coverage statistics.
@pytest.mark.parametrize("rows", ["header-only", "foreign-questions"])
def test_rationale_set_covering_no_training_question(train8, tracking_uri, tmp_path, rows):
    foreign = [{"id": "x-1", "input": "What is the colour of the sky?", "samples": [{"text": "r", "answer": "1"}]}]
    path = write_lines(tmp_path / "s.jsonl", [HEADER, *(foreign if rows == "foreign-questions" else [])])
    result = invoke([*SVAMP, "--teacher", f"file:{path}"], tracking_uri)
    n = 1 if rows == "foreign-questions" else 0
    assert_user_error(result, tracking_uri, str(path), f"none of its {n} questions is among the 8 training questions")


def test_rationale_set_with_fewer_and_more_questions_than_the_split(train8, catalog, tracking_uri, tmp_path):
    """Questions outside this run's training split (here a test question and one from
    nowhere) are dropped and counted; training questions without a rationale are a
    coverage statistic, not an error.  A BOM at the start of the set is accepted."""
    test_question = catalog.tasks.get("svamp").load({}).test[0]
    rows = [row(e) for e in train8[:5]] + [row(test_question), {**row(train8[0]), "id": "x", "input": "Unknown?"}]
    path = write_lines(tmp_path / "partial.jsonl", [HEADER, *rows], prefix=BOM)
    result = invoke([*SVAMP, "--teacher", f"file:{path}", "--json"], tracking_uri)
    assert result.exit_code == 0, result.output
    (run,) = runs_in(tracking_uri)
    assert run.info.status == "FINISHED"
    metrics = run.data.metrics
    assert metrics["data/teacher_questions"] == 5 and metrics["data/teacher_dropped"] == 2
    assert metrics["data/rationale_coverage"] == pytest.approx(5 / 8)


# ---------------------------------------------------------------- published data files (the mirror)
#
# A mirror's checksums are recorded with each run, not enforced (users may edit a mirror
# on purpose; see qcrd_bench/data.py), so a corrupted file reaches its parser, which must
# name file and line.  `data check` reports the checksum mismatch.

TRAIN = "svamp/dss/svamp_train.json"
COT0 = "svamp/dss/llm/train_CoT_0.json"


def _cut_last_record(data: bytes) -> bytes:
    body = data.rstrip(b"\n")
    return body[: body.rindex(b"\n") + 40] + b"\n"


@pytest.mark.parametrize("relpath, corrupt, needles", [
    # 1. the last line cut mid-record
    (TRAIN, _cut_last_record, ["{path}:800: invalid JSON"]),
    # 2. a wrong field name, a wrong field type, a row that is not an object
    (TRAIN, lambda b: replace_line(b, 0, b'"label"', b'"lable"'),
     ["{path}:1: missing field 'label' (has: input, lable)"]),
    (TRAIN, lambda b: replace_line(b, 0, b'"label":"( 84.0 \\/ 2.0 )"', b'"label":42'),
     ["{path}:1: fields 'input' and 'label' must be strings"]),
    (TRAIN, lambda b: b"[1, 2]\n" + b, ["{path}:1: expected a JSON object, got list"]),
    # 3. an empty file
    (TRAIN, lambda b: b"", ["{path}: no rows"]),
    # 4. a byte that is not UTF-8 on line 6
    (TRAIN, lambda b: replace_line(b, 5, b'"input"', b'"in\xffput"'), ["{path}:6: not UTF-8 text"]),
    # 8. a label outside the task's labels (SVAMP: an arithmetic expression)
    (TRAIN, lambda b: replace_line(b, 0, b"( 84.0 \\/ 2.0 )", b"eighty-four"),
     ["{path}:1: label 'eighty-four' is not an arithmetic expression"]),
    # 7. a PaLM rationale file with fewer completions than its input rows, or of the wrong shape
    (COT0, lambda b: b'["Q: ... The answer is 1."]',  # 1 + the 300 of train_CoT_1.json
     ["svamp/dss/llm/train_CoT_*.json: 301 completions, but the train file has row", "not aligned"]),
    (COT0, lambda b: b'[1, "x"]', ["{path}: item 0: expected str, got int"]),
    (COT0, lambda b: b'{"a": 1}', ["{path}: expected a JSON array, got dict"]),
    (COT0, lambda b: b[:-100], ["{path}:1: invalid JSON"]),
], ids=["truncated", "field-name", "field-type", "not-an-object", "empty", "not-utf8", "bad-label",
        "fewer-completions", "completion-type", "completions-not-a-list", "completions-truncated"])
def test_corrupted_svamp_file(mirror, tracking_uri, tmp_path, monkeypatch, relpath, corrupt, needles):
    path = copy_mirror(tmp_path, monkeypatch, "svamp", relpath, corrupt(mirror_bytes(relpath)))
    result = invoke(SVAMP, tracking_uri)
    assert_user_error(result, tracking_uri, *(needle.format(path=path) for needle in needles))


def test_data_check_names_a_corrupted_mirror_file(mirror, tmp_path, monkeypatch):
    path = copy_mirror(tmp_path, monkeypatch, "svamp", TRAIN, _cut_last_record(mirror_bytes(TRAIN)))
    result = invoke(["data", "check", "svamp"])
    assert_user_error(result, None, f"data check failed: {path}", "the manifest says", "truncated or altered")


# 8. labels outside the label set (ANLI: 0, 1, 2; CQA: one of the question's choices).
@pytest.mark.parametrize("label", [b"5", b"-1", b"1.0", b'"entailment"', b"null", b"true"])
def test_nli_label_outside_the_label_set(mirror, tracking_uri, tmp_path, monkeypatch, label):
    relpath = "anli1/dss/anli1_valid.json"
    data = mirror_bytes(relpath)
    old = data.split(b"\n")[2]
    old_label = old[old.index(b'"label":'):][:9]
    path = copy_mirror(tmp_path, monkeypatch, "anli1", relpath, replace_line(data, 2, old_label, b'"label":' + label))
    result = invoke(ANLI1, tracking_uri)
    shown = {b"null": "None", b"true": "True", b'"entailment"': "'entailment'"}.get(label, label.decode())
    assert_user_error(result, tracking_uri, f"{path}:3: label {shown} is not 0, 1 or 2")


@pytest.mark.parametrize("change, needle", [
    (lambda r: {**r, "answer": "a spaceship"}, ":1: answer 'a spaceship' is not one of the choices"),
    (lambda r: {**r, "question": 7}, ":1: field 'question' must be a string"),
    (lambda r: {**r, "choices": r["choices"][:3]}, ":1: 'choices' must be a list of 5 strings"),
], ids=["answer-not-a-choice", "question-type", "four-choices"])
def test_bad_cqa_row(mirror, tracking_uri, tmp_path, monkeypatch, change, needle):
    relpath = "cqa/dss/cqa_train.json"
    lines = mirror_bytes(relpath).split(b"\n")
    lines[0] = json.dumps(change(json.loads(lines[0]))).encode()
    path = copy_mirror(tmp_path, monkeypatch, "cqa", relpath, b"\n".join(lines))
    assert_user_error(invoke(CQA, tracking_uri), tracking_uri, f"{path}{needle}")


# 5. a UTF-8 BOM (Windows tools write one) at the start of a data file and of a rationale
# set is accepted transparently: the run trains on the same rows.
def test_bom_at_start_of_data_file_and_rationale_set_is_accepted(train8, tracking_uri, tmp_path, monkeypatch):
    path = write_lines(tmp_path / "bom.jsonl", [HEADER, *(row(e) for e in train8)], prefix=BOM)
    copy_mirror(tmp_path, monkeypatch, "svamp", TRAIN, BOM + mirror_bytes(TRAIN))
    result = invoke([*SVAMP, "--teacher", f"file:{path}"], tracking_uri)
    assert result.exit_code == 0, result.output
    (run,) = runs_in(tracking_uri)
    assert run.info.status == "FINISHED"
    assert run.data.metrics["data/train_size"] == 8 and run.data.metrics["data/teacher_questions"] == 8


# ---------------------------------------------------------------- config files and numbers

PLAIN = ["run", "-m", "dss", "-t", "svamp", *FAST]  # no train.steps: the file's value is the one used


CONFIG_CASES = [
    ("unknown-key", b"train:\n  stepz: 2\n", ["unknown config key 'train.stepz' (from --config {path})",
                                              "did you mean 'train.steps'"]),
    ("ill-typed", b"train: {steps: many}\n", ["config key 'train.steps' (from --config {path}): expected int, "
                                              "got 'many'"]),
    ("ill-typed-json", b'{"train": {"lr": "fast"}}', ["config key 'train.lr' (from --config {path}): expected float"]),
    ("malformed", b"train:\n  steps: 2\n lr: [\n", ["--config {path}:3: invalid YAML"]),
    ("tab", b"train:\n\tsteps: 2\n", ["--config {path}:2: invalid YAML"]),
    ("duplicate-key", b"train:\n  steps: 2\n  steps: 3\n", ["--config {path}:3: invalid YAML: duplicate key 'steps' "
                                                            "(first on line 2)"]),
    ("duplicate-section", b"train:\n  steps: 2\neval:\n  batch_size: 4\ntrain:\n  lr: 0.1\n",
     ["--config {path}:5: invalid YAML: duplicate key 'train' (first on line 1)"]),
    ("not-utf8", b"train:\n  steps: \xff\n", ["--config {path}:2: not UTF-8 text"]),
    ("not-a-mapping", b"- train.steps: 2\n", ["--config {path}: expected a mapping of config keys, got list"]),
    ("sets-the-task", b"task:\n  name: cqa\n", ["config key 'task.name' (from --config {path}) cannot be set there"]),
    ("negative", b"train:\n  batch_size: -3\n", ["config key 'train.batch_size': must be > 0, got -3"]),
]


@pytest.mark.parametrize("name, content, needles", CONFIG_CASES, ids=[case[0] for case in CONFIG_CASES])
def test_bad_config_file(mirror, tracking_uri, tmp_path, name, content, needles):
    path = tmp_path / f"{name}.yaml"
    path.write_bytes(content)
    result = invoke([*PLAIN, "--config", str(path)], tracking_uri)
    assert_user_error(result, tracking_uri, *(n.format(path=path) for n in needles))


def test_missing_config_file(mirror, tracking_uri, tmp_path):
    path = tmp_path / "nope.yaml"
    result = invoke([*PLAIN, "--config", str(path)], tracking_uri)
    assert_user_error(result, tracking_uri, f"--config {path}: cannot read")


@pytest.mark.parametrize("content", [BOM + b"train:\n  steps: 7\n", BOM + b'{"train": {"steps": 7}}'],
                         ids=["yaml", "json"])
def test_bom_at_start_of_config_file_is_accepted(mirror, tmp_path, content):
    path = tmp_path / "c.yaml"
    path.write_bytes(content)
    result = invoke([*PLAIN, "--config", str(path), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["config"]["train"]["steps"] == 7


# 10. negative or absurd numbers
NUMBER_CASES = [
    ("train.lr=-1", "config key 'train.lr': must be > 0, got -1.0"),
    ("train.lr=5", "config key 'train.lr': 5.0 is not a plausible learning rate (> 1)"),
    ("train.lr=nan", "config key 'train.lr' (from command line): expected float, got 'nan'"),
    ("train.steps=0", "config key 'train.steps': must be > 0, got 0"),
    ("train.steps=2.5", "config key 'train.steps' (from command line): expected int, got 2.5"),
    ("train.batch_size=-3", "config key 'train.batch_size': must be > 0, got -3"),
    ("train.warmup_steps=-5", "config key 'train.warmup_steps': must be >= 0, got -5"),
    ("train.threads=0", "config key 'train.threads': must be > 0, got 0"),
    ("train.lr_schedule=cosine", "config key 'train.lr_schedule': must be one of linear, constant, wsd, got 'cosine'"),
    ("train.lr_decay_fraction=1.5", "config key 'train.lr_decay_fraction': must be <= 1, got 1.5"),
    ("task.val_fraction=2", "task.val_fraction: must be in [0, 1), got 2.0"),
    ("train.stepz=3", "unknown config key 'train.stepz' (from command line); did you mean 'train.steps'"),
]


@pytest.mark.parametrize("setting, needle", NUMBER_CASES, ids=[setting for setting, _ in NUMBER_CASES])
def test_bad_numbers(mirror, tracking_uri, setting, needle):
    assert_user_error(invoke([*SVAMP, "--set", setting], tracking_uri), tracking_uri, needle)


METHOD_CASES = [
    (["-m", "qcrd", "-t", "svamp"], "negatives.sample_batch_size=0", "negatives.sample_batch_size: must be >= 1, got 0"),
    (["-m", "dss", "-t", "synth-arith", "--teacher", "synthetic"], "teacher.systematic_kind=steal",
     "teacher.systematic_kind: an event kind (give, gain, lose, times) or empty for any, got 'steal'"),
]


@pytest.mark.parametrize("where, setting, needle", METHOD_CASES, ids=[setting for _, setting, _ in METHOD_CASES])
def test_bad_component_settings(mirror, tracking_uri, where, setting, needle):
    assert_user_error(invoke(["run", *where, *FAST, "--set", setting], tracking_uri), tracking_uri, needle)


# ---------------------------------------------------------------- 11. student directories


def test_student_directory_without_weights(mirror, tracking_uri, tmp_path):
    student = tmp_path / "student"
    student.mkdir()
    (student / "config.json").write_text('{"model_type": "t5"}')
    result = invoke([*SVAMP, "--student", str(student)], tracking_uri)
    assert_user_error(result, tracking_uri, f"{student} has no model weights (expected one of model.safetensors")


def test_student_directory_that_does_not_exist(mirror, tracking_uri, tmp_path):
    result = invoke([*SVAMP, "--student", str(tmp_path / "nope")], tracking_uri)
    assert_user_error(result, tracking_uri, f"no such student directory: {tmp_path / 'nope'}")


@pytest.mark.parametrize("config, needle", [
    ('{"model_type": "t5"}', "SafetensorError"),  # a damaged weights file
    ('{"model_type": ', "config.json"),  # a damaged config
], ids=["damaged-weights", "damaged-config"])
def test_student_directory_with_damaged_files(mirror, tracking_uri, tmp_path, config, needle):
    student = tmp_path / "student"
    student.mkdir()
    (student / "config.json").write_text(config)
    (student / "model.safetensors").write_bytes(b"not a safetensors file")
    result = invoke([*SVAMP, "--student", str(student)], tracking_uri)
    assert_user_error(result, tracking_uri, f"cannot load student from {student}: ", needle)


# ---------------------------------------------------------------- 12. resources that cannot be written


@pytest.fixture
def regular_file(tmp_path) -> Path:
    """A regular file: a path below it can never be created (chmod does not stop root)."""
    path = tmp_path / "a-regular-file"
    path.write_text("not a folder\n")
    return path


def test_tracking_store_whose_folder_cannot_be_created(mirror, tmp_path, regular_file, monkeypatch):
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{regular_file}/mlflow.db"
    result = invoke(SVAMP, uri)
    assert_user_error(result, None, f"tracking store '{uri}': cannot create or open it", str(regular_file))
    assert regular_file.read_text() == "not a folder\n"
    assert [p.name for p in tmp_path.iterdir()] == ["a-regular-file"]  # nothing made beside it either


def test_checkpoint_folder_that_cannot_be_created(mirror, tracking_uri, tmp_path, regular_file):
    result = invoke([*SVAMP, "--set", f"output.checkpoint_dir={regular_file}/checkpoints",
                     "--set", "train.checkpoint_every=1"], tracking_uri)
    # Checked before the run opens: no run at all.
    assert_user_error(result, tracking_uri, f"output.checkpoint_dir {regular_file}/checkpoints: not writable")
    assert not list(tmp_path.rglob("checkpoint.pt*"))


def test_teach_output_that_cannot_be_written(mirror, tracking_uri, tmp_path, regular_file):
    out = regular_file / "set.jsonl"
    result = invoke(["teach", "-t", "svamp", "--teacher", "mcc-kd", "--limit", "3", "-o", str(out)], tracking_uri)
    assert_user_error(result, tracking_uri, f"rationale set {out}: cannot write", str(regular_file))
    assert not list(tmp_path.rglob("*.jsonl*")) and not list(tmp_path.rglob("*.tmp"))


def test_teach_generation_cache_that_cannot_be_created(mirror, tracking_uri, tmp_path, regular_file):
    from fake_openai import FakeOpenAI

    cache = regular_file / "generations.sqlite"
    with FakeOpenAI() as server:
        result = invoke(["teach", "-t", "svamp", "--teacher", "openai", "--limit", "3",
                         "--set", "teacher.model=fake", "--set", f"teacher.base_url={server.url}",
                         "--set", f"teacher.cache={cache}", "-o", str(tmp_path / "set.jsonl")], tracking_uri)
    assert_user_error(result, tracking_uri, f"teacher.cache {cache}: cannot open the generation cache")
    assert server.requests == []  # nothing was asked of the teacher
    assert not (tmp_path / "set.jsonl").exists()
