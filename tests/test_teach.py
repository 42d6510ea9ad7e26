"""`qcrd-bench teach` with published teachers, the rationale-set file and `--teacher file:PATH`."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from conftest import runs_in
from qcrd_bench.cli import main
from qcrd_bench.components import Example, Rationale
from qcrd_bench.errors import InputFileError
from qcrd_bench.rationales import FORMAT, checksum, read_set, teacher_quality, write_set


def test_mcckd_majority_vote_beats_single_samples(mirror, tracking_uri, tmp_path):
    result = CliRunner().invoke(main, ["teach", "--task", "svamp", "--teacher", "mcc-kd", "--tracking-uri",
                                       tracking_uri, "-o", str(tmp_path / "mcc.jsonl"), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    # Measured on the 507 DSS-train questions MCC-KD covers: 67.2% per sample, 85.6% majority.
    assert summary["teacher/questions"] == 507 and summary["teacher/samples"] == 5070
    assert summary["teacher/majority_accuracy"] > summary["teacher/sample_accuracy"] + 0.1
    header, rows = read_set(tmp_path / "mcc.jsonl")
    assert header["format"] == FORMAT and header["teacher"] == "mcc-kd" and header["prompt"] is None
    assert header["checksum"] == summary["checksum"] and len(rows) == 507
    (run,) = runs_in(tracking_uri)
    assert run.info.status == "FINISHED" and run.data.tags["qcrd.kind"] == "teach"
    assert run.data.metrics["teacher/majority_accuracy"] == pytest.approx(summary["teacher/majority_accuracy"])
    assert run.data.params["teacher.samples"] == "10"
    # The UI's view of a teach experiment shows the teacher's figures, not a student's.
    import mlflow

    from qcrd_bench.tracking import VIEW_TAG

    view = json.loads(mlflow.MlflowClient(tracking_uri).get_experiment(run.info.experiment_id).tags[VIEW_TAG])
    assert view["selectedColumns"][0] == "metrics.`teacher/majority_accuracy`"


def test_file_teacher_reads_a_set_back(mirror, catalog, tmp_path):
    taught = CliRunner().invoke(main, ["teach", "-t", "svamp", "--teacher", "mcc-kd", "--limit", "30", "--samples",
                                       "3", "--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}",
                                       "-o", str(tmp_path / "s.jsonl")])
    assert taught.exit_code == 0, taught.output
    task = catalog.tasks.get("svamp")
    data = task.load({})
    direct = catalog.teachers.get("mcc-kd").rationales(task, data, {"samples": 3})
    from_file = catalog.teachers.get("file").rationales(task, data, {"path": str(tmp_path / "s.jsonl")})
    subset = {k: v for k, v in direct.rationales.items() if k in from_file.rationales}
    assert len(from_file.rationales) == 30 - sum(e.id not in direct.rationales for e in data.train[:30])
    assert checksum(from_file.rationales) == checksum(subset)


def test_run_with_a_file_teacher_records_the_set(mirror, tracking_uri, tmp_path):
    runner = CliRunner()
    taught = runner.invoke(main, ["teach", "-t", "svamp", "--teacher", "mcc-kd", "--limit", "12", "--tracking-uri",
                                  tracking_uri, "-o", str(tmp_path / "s.jsonl"), "--json"])
    assert taught.exit_code == 0, taught.output
    result = runner.invoke(main, ["run", "-m", "dss", "-t", "svamp", "--teacher", f"file:{tmp_path / 's.jsonl'}",
                                  "--preset", "smoke", "--limit", "12", "--set", "train.steps=2",
                                  "--set", "train.threads=1", "--tracking-uri", tracking_uri])
    assert result.exit_code == 0, result.output
    run = next(r for r in runs_in(tracking_uri) if r.data.tags.get("qcrd.kind") != "teach")
    assert run.data.tags["qcrd.teacher"] == "file" and run.data.params["teacher.path"] == str(tmp_path / "s.jsonl")
    # The run trained on exactly the set teach wrote: the same content checksum.
    assert run.data.tags["qcrd.rationales_sha256"] == json.loads(taught.stdout)["checksum"]
    # teach reads a set back too (file:PATH), giving the same content.
    again = runner.invoke(main, ["teach", "-t", "svamp", "--teacher", f"file:{tmp_path / 's.jsonl'}", "--limit", "12",
                                 "--tracking-uri", tracking_uri, "-o", str(tmp_path / "copy.jsonl"), "--json"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["checksum"] == json.loads(taught.stdout)["checksum"]


def test_set_for_another_task_is_refused(mirror, catalog, tmp_path):
    path = write_set(tmp_path / "x.jsonl", {"task": "cqa", "teacher": "t"}, [], {})
    task = catalog.tasks.get("svamp")
    with pytest.raises(Exception, match="a rationale set for task 'cqa', not 'svamp'"):
        catalog.teachers.get("file").rationales(task, task.load({}), {"path": str(path)})


@pytest.mark.parametrize("lines, message", [
    (["{not json"], r"x.jsonl:1: invalid JSON"),
    (['{"format": "other"}'], r"x.jsonl:1: not a rationale set"),
    ([json.dumps({"format": FORMAT, "version": 1}), '{"input": "q", "samples": [{"text": 3}]}'],
     r"x.jsonl:2: each sample needs 'text'"),
    ([json.dumps({"format": FORMAT, "version": 1}), '{"input": "q"'], r"x.jsonl:2: invalid JSON"),
    ([json.dumps({"format": FORMAT, "version": 9})], r"version 9"),
])
def test_bad_set_files_name_file_and_line(tmp_path, lines, message):
    (tmp_path / "x.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(InputFileError, match=message):
        read_set(tmp_path / "x.jsonl")


def test_write_set_is_atomic(tmp_path, monkeypatch):
    """A failure while writing leaves neither a partial set nor a temporary file."""
    example = Example("train-0", "q", "1", 1.0, ("train", 0))
    path = write_set(tmp_path / "s.jsonl", {"task": "svamp"}, [example], {"train-0": [Rationale("r", 1.0)]})
    before = path.read_bytes()

    class Boom(Exception):
        pass

    def explode(*args, **kwargs):
        raise Boom()

    monkeypatch.setattr("qcrd_bench.rationales.os.fsync", explode)
    with pytest.raises(Boom):
        write_set(path, {"task": "svamp"}, [example], {"train-0": [Rationale("other", 2.0)]})
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["s.jsonl"]


def test_quality_counts_majority_without_peeking_at_gold(catalog):
    task = catalog.tasks.get("svamp")
    example = Example("train-0", "q", "2", 2.0, ("train", 0))
    tie = [Rationale("a", 1.0), Rationale("b", 2.0)]  # a tie: the first-seen answer wins, not gold
    quality = teacher_quality(task, [example], {"train-0": tie})
    assert quality["sample_accuracy"] == 0.5 and quality["majority_accuracy"] == 0.0
    assert quality["agreement"] == 0.5 and quality["parse_rate"] == 1.0


@pytest.mark.parametrize("args, message", [
    (["--teacher", "nosuch"], "unknown teacher 'nosuch'"),
    (["--teacher", "mcc-kd", "--set", "teacher.temperature=0.5"], "unknown key 'teacher.temperature'"),
    (["--teacher", "openai"], "teacher.model: teacher 'openai' needs a model"),
    (["--teacher", "openai", "--set", "teacher.model=m", "--set", "teacher.base_url=ftp://x"], "teacher.base_url"),
    (["--teacher", "mcc-kd", "--set", "teacher.name=x"], "use --teacher"),
])
def test_teach_rejects_bad_options(mirror, tmp_path, args, message):
    result = CliRunner().invoke(main, ["teach", "-t", "svamp", *args, "--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}"])
    assert result.exit_code == 2 and message in result.output
    assert not (tmp_path / "m.db").exists()


def test_line_separators_inside_json_strings_do_not_split_lines(tmp_path):
    """JSON leaves U+2028 raw in strings; a reader splitting with str.splitlines broke on it."""
    from qcrd_bench.readers import read_jsonl

    example = Example("train-0", "q", "1", 1.0, ("train", 0))
    path = write_set(tmp_path / "s.jsonl", {"task": "svamp"}, [example],
                     {"train-0": [Rationale("first\u2028second", 1.0)]})
    assert read_set(path)[1][0]["samples"][0]["text"] == "first\u2028second"
    (tmp_path / "d.jsonl").write_text(json.dumps({"input": "a\u2028b"}, ensure_ascii=False) + "\n", encoding="utf-8")
    assert read_jsonl(tmp_path / "d.jsonl") == [{"input": "a\u2028b"}]
