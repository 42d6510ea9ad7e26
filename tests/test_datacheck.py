"""`qcrd-bench data list|check|download` against the shared mirror and altered copies."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from qcrd_bench.cli import main
from test_data import _serve


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def copy_task(mirror: Path, tmp_path: Path, task: str, monkeypatch) -> Path:
    root = tmp_path / "mirror"
    shutil.copytree(mirror / task, root / task)
    monkeypatch.setenv("QCRD_BENCH_DATA_DIR", str(root))
    return root


def table(output: str) -> dict[tuple[str, str, str, str], list[str]]:
    """The check table as {(task, variant, split, teacher): cells}."""
    lines = output.split("\n\n", 1)[0].splitlines()[1:]
    return {tuple(cells[i] for i in (0, 1, 2, 4)): cells for cells in (line.split() for line in lines)}


def test_check_passes_on_the_mirror(mirror):
    result = invoke("data", "check")
    assert result.exit_code == 0, result.output
    rows = table(result.output)
    assert rows[("svamp", "split=dss", "train", "dss-palm")][3:9] == ["800", "dss-palm", "800", "100.0%", "74.5%",
                                                                        "33"]
    assert rows[("cqa", "default", "train", "dss-palm")][7] == "75.3%"
    assert rows[("anli1", "default", "valid", "dss-palm")][7] == "66.8%"
    assert rows[("anli1", "default", "train", "dss-palm")][3:6] == ["-", "dss-palm", "16946"]
    assert rows[("esnli", "default", "valid", "dss-palm")][7] == "73.2%"
    assert rows[("gsm8k", "default", "test", "-")][3] == "1319"
    assert rows[("asdiv", "default", "fold4", "-")][3] == "266"
    assert "0 of them test questions" in result.output and "PROBLEM" not in result.output
    assert result.output.rstrip().endswith("data check passed: 6 task(s)")


def test_truncated_file_fails(mirror, tmp_path, monkeypatch):
    root = copy_task(mirror, tmp_path, "cqa", monkeypatch)
    path = root / "cqa" / "dss" / "cqa_test.json"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:1000]))  # cut at a line boundary: still valid JSON Lines
    result = invoke("data", "check", "cqa")
    assert result.exit_code == 2
    assert f"PROBLEM {path}: " in result.output and "truncated or altered" in result.output
    assert "cqa test (dss-palm): 1221 completions for 1000 input rows" in result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith(f"error: data check failed: {path}") and "more above" in last


def test_shifted_rationales_fail(mirror, tmp_path, monkeypatch):
    root = copy_task(mirror, tmp_path, "svamp", monkeypatch)
    path = root / "svamp" / "dss" / "llm" / "test_CoT_0.json"
    outputs = json.loads(path.read_text())
    path.write_text(json.dumps(outputs[1:] + outputs[:1]))  # same rows, each one off by one
    result = invoke("data", "check", "svamp")
    assert result.exit_code == 2
    assert "sha256 differs from the manifest: altered" in result.output
    assert "svamp test (dss-palm): teacher accuracy" in result.output and "shifted or foreign" in result.output


def test_malformed_file_is_named(mirror, tmp_path, monkeypatch):
    root = copy_task(mirror, tmp_path, "gsm8k", monkeypatch)
    path = root / "gsm8k" / "original" / "test.jsonl"
    text = path.read_text()
    path.write_text(text[: len(text) // 2])  # cut mid-line
    result = invoke("data", "check", "gsm8k")
    assert result.exit_code == 2 and "invalid JSON" in result.output and str(path) in result.output


def test_unknown_task():
    result = invoke("data", "check", "nosuch")
    assert result.exit_code == 2 and "unknown task 'nosuch'" in result.output and "svamp" in result.output


def test_list_shows_where_files_are(mirror):
    result = invoke("data", "list")
    assert result.exit_code == 0
    assert f"data: mirror {mirror}" in result.output
    lines = result.output.splitlines()
    assert any(line.split()[:3] == ["anli1", "dss", "anli1_train.json"] and "datasets.zip" in line for line in lines)
    assert any(line.split()[:6] == ["cqa", "dss", "llm/train_CoT_*.json", "train", "10", "4665478"] for line in lines)


def test_download_into_cache_then_check(mirror, tmp_path, monkeypatch):
    result = invoke("data", "download", "asdiv")
    assert result.exit_code == 2 and "QCRD_BENCH_DATA_DIR is set" in result.output
    monkeypatch.delenv("QCRD_BENCH_DATA_DIR")
    monkeypatch.setenv("QCRD_BENCH_CACHE_DIR", str(tmp_path / "cache"))
    result = invoke("data", "check", "asdiv")
    assert result.exit_code == 2 and "run `qcrd-bench data download asdiv`" in result.output
    with _serve(mirror, monkeypatch) as server:
        result = invoke("data", "download", "asdiv")
    assert result.exit_code == 0, result.output
    assert "13 files ready" in result.output and len(server.requests) == 13
    result = invoke("data", "check", "asdiv")
    assert result.exit_code == 0, result.output
    assert f"data: cache {tmp_path / 'cache'}" in invoke("data", "list", "asdiv").output


def test_data_help_is_light():
    code = ("import sys; from click.testing import CliRunner; from qcrd_bench.cli import main; "
            "[CliRunner().invoke(main, ['data', *c, '--help']) for c in ([], ['list'], ['check'], ['download'])]; "
            "print([m for m in ('torch', 'transformers', 'mlflow', 'accelerate') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    for command in ([], ["list"], ["check"], ["download"]):
        assert "Example" in invoke("data", *command, "--help").output


def test_list_shows_the_mirror_path_normalised(mirror, tmp_path, monkeypatch):
    """`QCRD_BENCH_DATA_DIR=../shared/data` is shown as the folder it names, without `..`."""
    here = tmp_path / "checkout"
    here.mkdir()
    monkeypatch.chdir(here)
    monkeypatch.setenv("QCRD_BENCH_DATA_DIR", os.path.relpath(mirror, here))
    first = invoke("data", "list", "svamp").output.splitlines()[0]
    assert first == f"data: mirror {mirror.resolve()} (QCRD_BENCH_DATA_DIR)"
