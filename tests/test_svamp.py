"""SVAMP task and the dss-palm teacher on the real published files."""

from __future__ import annotations

import shutil

import pytest

from qcrd_bench.errors import InputFileError
from qcrd_plugins.tasks import Svamp, carve_validation
from qcrd_plugins.teachers import PALM_LAYOUTS, DssPalm, split_palm_output

PARAMS = {"split": "dss", "val_fraction": 0.1, "val_seed": 0}


def test_splits_as_dss(mirror):
    data = Svamp().load(PARAMS)
    assert (len(data.train), len(data.val), len(data.test)) == (720, 80, 200)
    assert {e.id for e in data.train}.isdisjoint(e.id for e in data.val)
    first = data.test[0]
    assert first.input.count("\n") == 1 and first.answer == pytest.approx(eval_free(first.label))
    assert set(data.files) == {"svamp/dss/svamp_train.json", "svamp/dss/svamp_test.json"}


def eval_free(label: str) -> float:
    from qcrd_bench.arith import evaluate

    return evaluate(label)


def test_validation_carving_matches_datasets_train_test_split():
    datasets = pytest.importorskip("datasets")
    rows = list(range(800))
    ours_train, ours_val = carve_validation(rows, 0.1, 0)
    theirs = datasets.Dataset.from_dict({"i": rows}).train_test_split(test_size=0.1, seed=0)
    assert ours_val == theirs["test"]["i"] and ours_train == theirs["train"]["i"]


def test_scoring_is_numeric_and_never_executes():
    task = Svamp()
    assert task.answers_match(task.parse_answer("( 84.0 / 2.0 )"), 42.0)
    assert task.answers_match(task.parse_answer("(84/2)"), 42.0)
    assert not task.answers_match(task.parse_answer("( 84.0 - 2.0 )"), 42.0)
    assert task.parse_answer("__import__('os').system('echo hacked')") is None
    assert task.parse_answer("9**9**9") is None
    assert task.parse_answer("") is None


@pytest.mark.parametrize("raw,rationale,answer", [
    ("Luke scored 84 points after 2 rounds. So he scored 84 points in 2 rounds. 84 / 2 = 42. "
     "The answer is (84 / 2).\n\nQ: There are 120 students. The answer is (1 / 3).",
     "Luke scored 84 points after 2 rounds. So he scored 84 points in 2 rounds. 84 / 2 = 42.", "(84 / 2)"),
    ("No marker here.\n\nQ: next", "No marker here.", None),
    ("So some - 8 = 6. The answer is (some - 8).", "So some - 8 = 6.", "(some - 8)"),
])
def test_palm_cutting(raw, rationale, answer):
    assert split_palm_output(raw, PALM_LAYOUTS["svamp"]) == (rationale, answer)


def test_palm_teacher_on_real_rows(mirror):
    task = Svamp()
    data = task.load(PARAMS)
    out = DssPalm().rationales(task, data, {})
    assert len(out.rationales) == len(data.train)
    luke = next(e for e in data.train + data.val if e.input.startswith("Luke scored 84 points"))
    if luke.id in out.rationales:
        assert out.rationales[luke.id][0].text.endswith("84 / 2 = 42.")
        assert out.rationales[luke.id][0].answer == 42.0
    # The data README measures 73.5% teacher accuracy on all 800 train rows.
    assert 0.70 < out.stats["teacher_accuracy"] < 0.77
    assert 0 < out.stats["teacher_unparseable"] < 40
    assert len(out.files) == 2


def test_corrupt_line_is_named(mirror, tmp_path, monkeypatch):
    copy = tmp_path / "svamp" / "dss"
    copy.mkdir(parents=True)
    for name in ("svamp_train.json", "svamp_test.json"):
        shutil.copy(mirror / "svamp" / "dss" / name, copy / name)
    lines = (copy / "svamp_test.json").read_text().splitlines()
    lines[6] = lines[6][:20]
    (copy / "svamp_test.json").write_text("\n".join(lines) + "\n")
    monkeypatch.setenv("QCRD_BENCH_DATA_DIR", str(tmp_path))
    with pytest.raises(InputFileError, match=r"svamp_test.json:7: invalid JSON"):
        Svamp().load(PARAMS)
    lines[6] = '{"input": "x", "label": "import os"}'
    (copy / "svamp_test.json").write_text("\n".join(lines) + "\n")
    with pytest.raises(InputFileError, match=r"svamp_test.json:7: label 'import os' is not an arithmetic"):
        Svamp().load(PARAMS)
    lines[6] = '{"question": "x", "label": "1"}'
    (copy / "svamp_test.json").write_text("\n".join(lines) + "\n")
    with pytest.raises(InputFileError, match=r"svamp_test.json:7: missing field 'input'"):
        Svamp().load(PARAMS)


def test_wordpiece_split_decimals_are_rejoined():
    task = Svamp()
    assert task.parse_answer("( 84. 0 / 2. 0 )") == 42.0
    assert task.parse_answer("( 84 . 0 / 2 .0 )") == 42.0
    assert task.parse_answer("84 2") is None  # two numbers are not glued together
