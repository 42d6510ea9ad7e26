"""The published-rationale teachers eit-multi (SVAMP, EIT-NLP) and gsm8k-human (GSM8K)."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from click.testing import CliRunner

from qcrd_bench.cli import main
from qcrd_bench.data import manifest
from qcrd_bench.errors import ConfigError
from qcrd_plugins.published import (EIT_FILES, GSM8K_TRAIN, EitMulti, Gsm8kHuman, select_eit_files,
                                    split_gsm8k_solution)
from qcrd_plugins.tasks import Gsm8k, Svamp
from qcrd_plugins.tasks.common import question_key
from conftest import runs_in

EIT_QUESTIONS = 700  # 564 in DSS train (of which the carved validation takes some), 136 in DSS test


@pytest.fixture
def svamp(mirror):
    task = Svamp()
    return task, task.load({"split": "dss", "val_fraction": 0.1, "val_seed": 0})


@pytest.fixture
def gsm8k(mirror):
    task = Gsm8k()
    return task, task.load({})


def eit(params=None):
    return {**EitMulti.defaults, **(params or {})}


# ---------------------------------------------------------------- eit-multi: selection


def test_every_eit_file_is_in_the_manifest():
    assert len(EIT_FILES) == 24 and len({f.relpath for f in EIT_FILES}) == 24
    assert all(f.relpath in manifest() for f in EIT_FILES)


@pytest.mark.parametrize("params, count", [
    ({}, 16),  # ranked: chatgpt 6 + gemini 6 + llama 4
    ({"teachers": "llama", "levels": "4,5,6"}, 1),  # llama has no levels 5-6: skipped silently
    ({"teachers": "chatgpt", "levels": 3, "format": "bsm,RaR"}, 2),  # an int from YAML; any case
    ({"teachers": "human,answer-only", "levels": "1"}, 2),  # neither has a level or format
    ({"teachers": "chatgpt,gemini,llama,human,answer-only", "format": "all"}, 24),
])
def test_selection_counts(params, count):
    assert len(select_eit_files(eit(params))) == count


@pytest.mark.parametrize("params, key", [
    ({"teachers": "chatgpt,gpt4"}, "teacher.teachers"),
    ({"teachers": ""}, "teacher.teachers"),
    ({"levels": "0,3"}, "teacher.levels"),
    ({"levels": "three"}, "teacher.levels"),
    ({"format": "ranked,CoT"}, "teacher.format"),
    ({"teachers": "llama", "levels": "5,6"}, "teacher.levels"),  # no llama file at these levels
    ({"teachers": "gemini", "format": "SYM"}, "teacher.format"),  # formats are chatgpt-only
])
def test_bad_parameters_name_the_key(params, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        EitMulti().check(eit(params))


def test_bad_parameter_is_caught_when_resolving_the_config(catalog):
    from qcrd_bench.config import resolve

    with pytest.raises(ConfigError, match=r"teacher\.levels"):
        resolve(catalog, "dss", "svamp", cli_layer={"teacher.name": "eit-multi", "teacher.levels": "7"})


# ---------------------------------------------------------------- eit-multi: loading


def test_eit_defaults_cover_dss_train_only(svamp):
    task, data = svamp
    out = EitMulti().rationales(task, data, eit())
    train_ids = {e.id for e in data.train}
    assert out.rationales and set(out.rationales) <= train_ids
    # Measured: all 504 EIT questions left in DSS train after the 10% validation carve
    # (564 - 60) have a rationale in each of the 16 ranked files; 196 = 136 test + 60 validation.
    assert out.stats["teacher_questions"] == 504
    assert out.stats["teacher_dropped"] == EIT_QUESTIONS - 504
    assert Counter(map(len, out.rationales.values())) == {16: 504}
    assert out.stats["teacher_samples"] == 16 * 504
    assert out.stats["teacher_parse_rate"] == 1.0
    assert 0.95 < out.stats["teacher_accuracy"] < 1.0  # measured 0.989
    assert set(out.files) == {f.relpath for f in select_eit_files(eit())}
    assert all(len(sha) == 64 for sha in out.files.values())
    origins = Counter(r.origin for rs in out.rationales.values() for r in rs)
    assert origins["eit-multi:chatgpt:level1"] == origins["eit-multi:llama:level4"] == 504
    assert "eit-multi:llama:level5" not in origins


def test_eit_never_gives_rationales_for_test_or_validation_questions(svamp):
    task, data = svamp
    out = EitMulti().rationales(task, data, eit({"teachers": "chatgpt,gemini,llama,human,answer-only",
                                                 "format": "all"}))
    held_out = {question_key(e.input) for e in data.test + data.val}
    by_id = {e.id: e for e in data.train}
    assert set(out.rationales) <= set(by_id)
    assert not any(question_key(by_id[i].input) in held_out for i in out.rationales)
    assert out.stats["teacher_files"] == 24 and len(out.files) == 24


def test_eit_selected_files_and_answers(svamp):
    task, data = svamp
    out = EitMulti().rationales(task, data, eit({"teachers": "chatgpt,answer-only", "levels": "3",
                                                 "format": "BSM,SYM"}))
    assert set(out.files) == {"svamp/eit_nlp_multi_teacher/0_SVAMP_chatgpt_level3BSM.json",
                              "svamp/eit_nlp_multi_teacher/0_SVAMP_chatgpt_level3SYM.json",
                              "svamp/eit_nlp_multi_teacher/SVAMP_only_ans.json"}
    # The two format files have 699 rows (one DSS test question missing); dropped counts the union.
    assert out.stats["teacher_questions"] == 504 and out.stats["teacher_dropped"] == EIT_QUESTIONS - 504
    assert Counter(map(len, out.rationales.values())) == {3: 504}
    assert out.stats["teacher_accuracy"] > 0.95  # measured 0.987
    gold = {e.id: e.answer for e in data.train}
    only = {i: [r for r in rs if r.origin == "eit-multi:answer-only"] for i, rs in out.rationales.items()}
    assert all(len(rs) == 1 for rs in only.values())
    correct = sum(task.answers_match(rs[0].answer, gold[i]) for i, rs in only.items())
    assert correct >= len(only) - 2  # the answer-only file is the gold answer (measured: 503 of 504)
    origins = {r.origin for rs in out.rationales.values() for r in rs}
    assert origins == {"eit-multi:chatgpt:level3:BSM", "eit-multi:chatgpt:level3:SYM", "eit-multi:answer-only"}


def test_eit_joins_on_text_under_the_mcc_kd_split_too(mirror):
    task = Svamp()
    data = task.load({"split": "mcc_kd"})
    out = EitMulti().rationales(task, data, eit({"teachers": "human"}))
    # The data README: 487 of EIT's 700 questions are MCC-KD's (all in its train split).
    assert out.stats["teacher_questions"] == 487 and out.stats["teacher_dropped"] == EIT_QUESTIONS - 487
    assert set(out.rationales) <= {e.id for e in data.train}


def test_eit_rejects_other_tasks(gsm8k):
    task, data = gsm8k
    with pytest.raises(ConfigError, match="available for: svamp"):
        EitMulti().rationales(task, data, eit())


# ---------------------------------------------------------------- gsm8k-human


def test_split_gsm8k_solution_strips_calculator_notes():
    answer = "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nShe sold 48+24 = <<48+24=72>>72.\n#### 1,072"
    text, final = split_gsm8k_solution(answer)
    assert text == "Natalia sold 48/2 = 24 clips in May.\nShe sold 48+24 = 72."
    assert final == "1,072"
    kept, _ = split_gsm8k_solution(answer, keep_calculator_notes=True)
    assert "<<48/2=24>>24" in kept and "####" not in kept
    assert split_gsm8k_solution("no final line") == ("no final line", None)


def test_gsm8k_human_one_rationale_per_training_question(gsm8k):
    task, data = gsm8k
    out = Gsm8kHuman().rationales(task, data, {"keep_calculator_notes": False})
    assert set(out.rationales) == {e.id for e in data.train}
    assert all(len(v) == 1 for v in out.rationales.values())
    texts = [v[0].text for v in out.rationales.values()]
    assert not any("<<" in t or ">>" in t or "####" in t for t in texts)
    # The label comes from the same "#### N" line: every answer parses and matches.
    assert out.stats["teacher_parse_rate"] == 1.0 and out.stats["teacher_accuracy"] == 1.0
    assert out.stats["teacher_questions"] == len(data.train)
    assert out.stats["teacher_dropped"] == 7473 - len(data.train)  # the carved validation rows
    assert list(out.files) == [GSM8K_TRAIN]
    first = out.rationales[data.train[0].id][0]
    assert first.origin == "gsm8k-human" and task.answers_match(first.answer, data.train[0].answer)


def test_gsm8k_human_can_keep_calculator_notes(gsm8k):
    task, data = gsm8k
    out = Gsm8kHuman().rationales(task, data, {"keep_calculator_notes": True})
    assert sum("<<" in v[0].text for v in out.rationales.values()) > 0.9 * len(data.train)


def test_gsm8k_human_rejects_misaligned_rows(gsm8k):
    from dataclasses import replace

    from qcrd_bench.errors import InputFileError

    task, data = gsm8k
    shifted = replace(data.train[0], source=("train", data.train[0].source[1] + 1))
    data.train = [shifted]
    with pytest.raises(InputFileError, match="not the question"):
        Gsm8kHuman().rationales(task, data, {})


def test_gsm8k_human_rejects_other_tasks_and_bad_params(svamp):
    task, data = svamp
    with pytest.raises(ConfigError, match="available for: gsm8k"):
        Gsm8kHuman().rationales(task, data, {})
    with pytest.raises(ConfigError, match=r"teacher\.keep_calculator_notes"):
        Gsm8kHuman().check({"keep_calculator_notes": "yes"})


# ---------------------------------------------------------------- through the CLI


def test_list_shows_both_teachers():
    output = CliRunner().invoke(main, ["list", "teachers"], catch_exceptions=False).output
    assert "eit-multi" in output and "gsm8k-human" in output


def test_eit_smoke_run(mirror, tracking_uri):
    import mlflow

    result = CliRunner().invoke(main, ["run", "-m", "dss", "-t", "svamp", "--teacher", "eit-multi",
                                       "--set", "teacher.teachers=gemini", "--set", "teacher.levels=1,2",
                                       "--preset", "smoke", "--limit", "16", "--set", "train.steps=2",
                                       "--set", "train.threads=1", "--tracking-uri", tracking_uri],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    [run] = runs_in(tracking_uri)
    metrics = run.data.metrics
    assert metrics["data/teacher_files"] == 2 and metrics["data/teacher_samples"] == 2 * metrics[
        "data/teacher_questions"]
    assert run.data.params["teacher.levels"] == "1,2"
    local = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, tracking_uri=tracking_uri)
    files = json.load(open(f"{local}/data.json"))["files"]
    assert "svamp/eit_nlp_multi_teacher/SVAMP_gemini_level2_ranked.json" in files
