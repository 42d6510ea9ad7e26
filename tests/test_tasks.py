"""The task plugins on the real published files, and the dss-palm teacher's parsing of
each task's PaLM completions on real rows."""

from __future__ import annotations

import json
import shutil

import pytest

from qcrd_bench.components import TaskData
from qcrd_bench.errors import ConfigError, DataError, InputFileError
from qcrd_plugins.tasks import Anli1, Asdiv, Choice, Cqa, Esnli, Gsm8k, Svamp, question_key, take_fraction
from qcrd_plugins.teachers import PALM_LAYOUTS, DssPalm, palm_completions, split_palm_output


def load(task, **params):
    return task.load({**task.defaults, **params})


def sizes(data: TaskData) -> tuple[int, int, int]:
    return len(data.train), len(data.val), len(data.test)


def disjoint(data: TaskData) -> bool:
    keys = [{question_key(e.input) for e in split} for split in (data.train, data.val, data.test)]
    return not (keys[0] & keys[1] or keys[0] & keys[2] or keys[1] & keys[2])


# ---------------------------------------------------------------- splits and inputs


@pytest.mark.parametrize("task,params,expected", [
    (Svamp(), {}, (720, 80, 200)),
    (Svamp(), {"split": "mcc_kd"}, (700, 150, 150)),
    (Cqa(), {}, (8766, 975, 1221)),
    (Anli1(), {"train_split": "valid"}, (900, 100, 1000)),
    (Esnli(), {"train_split": "valid"}, (8857, 985, 9824)),
    (Gsm8k(), {}, (6725, 748, 1319)),
    (Asdiv(), {}, (882, 98, 238)),
    (Asdiv(), {"fold": 4}, (856, 96, 266)),
])
def test_split_sizes(mirror, task, params, expected):
    data = load(task, **params)
    assert sizes(data) == expected
    assert disjoint(data)
    assert data.notes["validation"] and data.notes["source"]
    assert len({e.id for e in data.train + data.val + data.test}) == sum(expected)


def test_cqa_input_is_dss(mirror):
    example = load(Cqa()).test[0]
    question, choices = example.input.split("\nAnswer Choices:\n")
    assert [line[:4] for line in choices.split("\n")] == ["(a) ", "(b) ", "(c) ", "(d) ", "(e) "]
    assert isinstance(example.answer, Choice) and example.label in example.answer.choices
    assert str(example.answer) == example.label


def test_nli_input_and_labels(mirror):
    row = json.loads((mirror / "anli1" / "dss" / "anli1_test.json").read_text().splitlines()[0])
    example = load(Anli1(), train_split="valid").test[0]
    assert example.input == row["premise"] + "</s>" + row["hypothesis"]
    assert example.label == example.answer == ("entailment", "neutral", "contradiction")[row["label"]]
    spaced = load(Anli1(), train_split="valid", separator=" | ").test[0]
    assert spaced.input == row["premise"] + " | " + row["hypothesis"]


@pytest.mark.parametrize("task", [Anli1(), Esnli()], ids=["anli1", "esnli"])
def test_missing_train_split_is_an_error_naming_file_and_remedy(mirror, task):
    with pytest.raises(DataError) as info:
        load(task)
    message = str(info.value)
    assert f"{task.name}/dss/{task.name}_train.json" in message
    assert "--set task.train_split=valid" in message and "download" in message
    assert "\n" not in message


def test_train_split_valid_says_so(mirror):
    data = load(Esnli(), train_split="valid")
    assert {e.source[0] for e in data.train + data.val} == {"valid"}
    assert {e.source[0] for e in data.test} == {"test"}
    assert "valid" in data.notes["train_split"] and "seed 0" in data.notes["validation"]


def test_svamp_mcc_kd(mirror):
    data = load(Svamp(), split="mcc_kd")
    first = data.train[0]
    assert first.label == "32" and first.answer == 32.0 and not first.input.endswith("\n")
    assert "dev" in data.notes["validation"]


def test_gsm8k_final_number(mirror):
    data = load(Gsm8k())
    by_label = {e.label: e for e in data.train + data.val}
    assert by_label["1080"].answer == 1080.0  # published as "#### 1,080"
    assert all("," not in e.label for e in data.test)


def test_asdiv_answers_and_folds(mirror):
    data = load(Asdiv(), fold=2)
    apples = next(e for e in data.train + data.val + data.test if e.input.startswith("Seven red apples"))
    assert apples.answer == 9.0 and apples.label == "9"  # "9 (apples)"
    assert {e.source[0] for e in data.test} == {"fold2"}
    assert "fold2" not in {e.source[0] for e in data.train + data.val}
    whole = load(Asdiv(), subset="w")
    assert "skipped" in whole.notes and len(whole.test) > len(data.test)


@pytest.mark.parametrize("task,params,key", [
    (Svamp(), {"split": "nope"}, "task.split"),
    (Asdiv(), {"fold": 5}, "task.fold"),
    (Asdiv(), {"subset": "x"}, "task.subset"),
    (Anli1(), {"train_split": "dev"}, "task.train_split"),
    (Cqa(), {"train_fraction": 0.0}, "task.train_fraction"),
    (Cqa(), {"train_fraction": 1.5}, "task.train_fraction"),
    (Gsm8k(), {"val_fraction": 1.0}, "task.val_fraction"),
])
def test_bad_params(task, params, key):
    with pytest.raises(ConfigError, match=key):
        load(task, **params)


def test_train_fraction_is_seeded_nested_and_leaves_eval_alone(mirror):
    full = load(Cqa())
    quarter = load(Cqa(), train_fraction=0.25)
    half = load(Cqa(), train_fraction=0.5)
    assert len(quarter.train) == 2192 and quarter.val == full.val and quarter.test == full.test
    assert {e.id for e in quarter.train} <= {e.id for e in half.train} <= {e.id for e in full.train}
    assert [e.id for e in load(Cqa(), train_fraction=0.25).train] == [e.id for e in quarter.train]
    other = load(Cqa(), train_fraction=0.25, train_fraction_seed=1)
    assert {e.id for e in other.train} != {e.id for e in quarter.train}
    assert "2192 of 8766" in quarter.notes["train_fraction"]
    assert take_fraction(full.train, 1.0, 0) is full.train


def test_malformed_rows_are_named(mirror, tmp_path, monkeypatch):
    folder = tmp_path / "gsm8k" / "original"
    folder.mkdir(parents=True)
    lines = (mirror / "gsm8k" / "original" / "train.jsonl").read_text().splitlines()[:5]
    lines[2] = json.dumps({"question": "q", "answer": "no final line"})
    (folder / "train.jsonl").write_text("\n".join(lines) + "\n")
    shutil.copy(mirror / "gsm8k" / "original" / "test.jsonl", folder / "test.jsonl")
    monkeypatch.setenv("QCRD_BENCH_DATA_DIR", str(tmp_path))
    with pytest.raises(InputFileError, match=r"train.jsonl:3: answer has no '#### N' line"):
        load(Gsm8k())

    folder = tmp_path / "esnli" / "dss"
    folder.mkdir(parents=True)
    rows = (mirror / "esnli" / "dss" / "esnli_valid.json").read_text().splitlines()[:3]
    rows[1] = json.dumps({"premise": "p", "hypothesis": "h", "label": -1})
    (folder / "esnli_valid.json").write_text("\n".join(rows) + "\n")
    shutil.copy(mirror / "esnli" / "dss" / "esnli_test.json", folder / "esnli_test.json")
    with pytest.raises(InputFileError, match=r"esnli_valid.json:2: label -1 is not 0, 1 or 2"):
        load(Esnli(), train_split="valid")


# ---------------------------------------------------------------- PaLM parsing on real rows


def completion(task: str, split: str, row: int) -> str:
    outputs, _ = palm_completions(PALM_LAYOUTS[task], split)
    return outputs[row]


@pytest.mark.parametrize("task,split,row,rationale_end,answer", [
    ("cqa", "train", 0, "only math problem has to do with the above problem.", "(d) math problem"),
    ("cqa", "train", 16, "", "either (a) aquarium or (e) pond"),
    ("anli1", "valid", 0, "so context is also a crucial aspect.", "contradiction"),
    ("anli1", "train", 11609, "The two are not related.", "contradiction"),  # ends "...\n\nPremise" (no colon)
    ("anli1", "train", 11847, "", "analogy"),
    ("esnli", "valid", 0, "The to go packages are not necessarily from lunch.", "neutral"),
    ("esnli", "test", 2758, "which is what people do at weddings.", "entailment"),  # ends "...\n\nPre"
    ("svamp", "train", 747, "285 + 1178 is 1463.", "((15 * 19) + (62 * 19))"),  # ends "...\n\nQ"
])
def test_palm_cutting_on_real_rows(mirror, task, split, row, rationale_end, answer):
    rationale, got = split_palm_output(completion(task, split, row), PALM_LAYOUTS[task])
    assert got == answer
    assert rationale.endswith(rationale_end) and "Q:" not in rationale and "Premise:" not in rationale


def test_esnli_answer_without_marker_is_counted_not_crashed(mirror):
    rationale, answer = split_palm_output(completion("esnli", "valid", 133), PALM_LAYOUTS["esnli"])
    assert answer is None and "Premise" not in rationale


@pytest.mark.parametrize("task,params,accuracy,unparseable", [
    # Full published splits (no carving); see the data README for the published numbers.
    (Svamp(), {"val_fraction": 0.0}, 0.745, 33),
    (Cqa(), {"val_fraction": 0.0}, 0.7529, 318),
    (Anli1(), {"train_split": "valid", "val_fraction": 0.0}, 0.668, 9),
    (Esnli(), {"train_split": "valid", "val_fraction": 0.0}, 0.7317, 4),
])
def test_teacher_accuracy_on_real_rows(mirror, task, params, accuracy, unparseable):
    data = load(task, **params)
    out = DssPalm().rationales(task, data, {})
    assert out.stats["teacher_accuracy"] == pytest.approx(accuracy, abs=5e-4)
    assert out.stats["teacher_unparseable"] == unparseable
    assert out.stats["teacher_completions"] == len(data.train)
    assert len(out.rationales) == len(data.train)


def test_teacher_follows_the_training_split(mirror):
    task = Anli1()
    data = load(task, train_split="valid")
    out = DssPalm().rationales(task, data, {})
    assert set(out.files) == {"anli1/dss/llm/valid_CoT_0.json"}
    example = data.train[0]
    text, answer = split_palm_output(completion("anli1", "valid", example.source[1]), PALM_LAYOUTS["anli1"])
    assert out.rationales[example.id][0].text == text
    assert out.rationales[example.id][0].answer == task.parse_answer(answer)


def test_cqa_teacher_answer_is_resolved_against_choices(mirror):
    task = Cqa()
    data = load(task, val_fraction=0.0)
    out = DssPalm().rationales(task, data, {})
    first = out.rationales[data.train[0].id][0]
    assert first.answer == "math problem" and task.answers_match(first.answer, data.train[0].answer)


def test_teacher_refuses_misaligned_sources(mirror):
    with pytest.raises(ConfigError, match="svamp/dss.*svamp/mcc_kd"):
        DssPalm().rationales(Svamp(), load(Svamp(), split="mcc_kd"), {})
    with pytest.raises(ConfigError, match="no rationales for task 'gsm8k'; available for: anli1, cqa, esnli, svamp"):
        DssPalm().rationales(Gsm8k(), load(Gsm8k()), {})


def test_teacher_survey_without_inputs(mirror):
    stats = DssPalm().survey(Anli1(), "train")
    assert stats["teacher_completions"] == 16946
    assert stats["teacher_no_answer_marker"] == 122  # the data README's count
    assert DssPalm().survey(Gsm8k(), "train") is None
