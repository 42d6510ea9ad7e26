"""The command line: errors are one clear line, and bad input leaves no run behind."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys

from click.testing import CliRunner

from qcrd_bench.cli import main
from conftest import runs_in

SMOKE = ["--preset", "smoke", "--limit", "16", "--set", "train.steps=2", "--set", "train.threads=1"]


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_help_does_not_import_heavy_libraries():
    code = ("import sys; from click.testing import CliRunner; from qcrd_bench.cli import main; "
            "r = CliRunner().invoke(main, ['run', '--help']); assert r.exit_code == 0, r.output; "
            "CliRunner().invoke(main, ['list']); "
            "print([m for m in ('torch', 'transformers', 'mlflow', 'accelerate') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_help_has_examples():
    for command in ([], ["run"], ["list"], ["plugins"], ["ui"], ["ablate"]):
        result = invoke(*command, "--help")
        assert result.exit_code == 0 and "Example" in result.output


def test_version():
    assert invoke("--version").output.startswith("qcrd-bench, version")


def test_list_and_plugins():
    result = invoke("list", "methods")
    assert result.exit_code == 0 and "dss" in result.output and "finetune" in result.output
    info = json.loads(invoke("plugins", "--json").output)
    tasks = next(p for p in info if p["name"] == "qcrd_plugins.tasks")
    assert tasks["hooks"] == ["register_tasks"] and tasks["version"]


def test_dry_run_touches_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke("run", "-m", "dss", "-t", "svamp", "--preset", "smoke", "--seed", "3", "--dry-run")
    plan = json.loads(result.output)
    assert plan["components"]["loss"] == "dss" and plan["config"]["seed"] == 3 and plan["smoke"] is True
    assert list(tmp_path.iterdir()) == []


def test_unknown_method_lists_available(tracking_uri):
    result = invoke("run", "--method", "nosuch", "--task", "svamp", "--tracking-uri", tracking_uri)
    assert result.exit_code == 2
    assert "error: unknown method 'nosuch'; available: cot, distill, dss, finetune, qcrd" in result.output
    assert runs_in(tracking_uri) == []


def test_unknown_set_key(tracking_uri):
    result = invoke("run", "-m", "dss", "-t", "svamp", "--set", "train.lrr=0.1", "--tracking-uri", tracking_uri)
    assert result.exit_code == 2
    assert "unknown config key 'train.lrr' (from command line); did you mean 'train.lr'?" in result.output
    assert runs_in(tracking_uri) == []


def test_missing_data_dir(tracking_uri, tmp_path, monkeypatch):
    monkeypatch.setenv("QCRD_BENCH_DATA_DIR", str(tmp_path / "no-such-mirror"))
    result = invoke("run", "-m", "finetune", "-t", "svamp", *SMOKE, "--tracking-uri", tracking_uri)
    assert result.exit_code == 2
    assert "no-such-mirror/svamp/dss/svamp_train.json" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert runs_in(tracking_uri) == []


def test_corrupt_data_file_names_the_line(mirror, tracking_uri, tmp_path, monkeypatch):
    copy = tmp_path / "mirror"
    shutil.copytree(mirror / "svamp" / "dss", copy / "svamp" / "dss")
    path = copy / "svamp" / "dss" / "svamp_train.json"
    lines = path.read_text().splitlines()
    lines[41] = lines[41].replace('"label"', '"label" ')[:-5]
    path.write_text("\n".join(lines) + "\n")
    monkeypatch.setenv("QCRD_BENCH_DATA_DIR", str(copy))
    result = invoke("run", "-m", "dss", "-t", "svamp", *SMOKE, "--tracking-uri", tracking_uri)
    assert result.exit_code == 2
    assert f"error: {path}:42: invalid JSON" in result.output
    assert runs_in(tracking_uri) == []


def test_offline_hub_student_fails_fast(mirror, tracking_uri):
    result = invoke("run", "-m", "finetune", "-t", "svamp", *SMOKE, "--student", "google/t5-v1_1-small",
                    "--tracking-uri", tracking_uri)
    assert result.exit_code == 2 and "google/t5-v1_1-small" in result.output
    assert runs_in(tracking_uri) == []


def test_crash_during_training_marks_the_run_failed(mirror, tracking_uri, monkeypatch):
    import qcrd_bench.training

    def explode(*args, **kwargs):
        raise RuntimeError("out of memory (simulated)")

    monkeypatch.setattr(qcrd_bench.training, "train", explode)
    before = signal.getsignal(signal.SIGTERM)
    result = CliRunner().invoke(main, ["run", "-m", "finetune", "-t", "svamp", *SMOKE, "--tracking-uri", tracking_uri])
    assert result.exit_code != 0 and isinstance(result.exception, RuntimeError)
    [run] = runs_in(tracking_uri)
    assert run.info.status == "FAILED"
    # Its description, written when it opened, says what to do (a smoke run keeps no checkpoint).
    assert "If it stops before it finishes, run the command again" in run.data.tags["mlflow.note.content"]
    # The run's SIGTERM handler is gone with it: a process forked later in this one is killable.
    assert signal.getsignal(signal.SIGTERM) is before


def test_bad_tracking_store_is_one_line(mirror, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke("run", "-m", "finetune", "-t", "svamp", *SMOKE, "--tracking-uri", "nosuchscheme://x")
    assert result.exit_code == 2 and "error: tracking store 'nosuchscheme://x'" in result.output


def test_list_keeps_a_gap_after_the_longest_name():
    lines = invoke("list", "negatives").output.splitlines()[1:]
    width = max(len(line.split()[0]) for line in lines)
    for line in lines:
        name = line.split()[0]
        assert line[2 + len(name):2 + width + 2].strip() == "", line  # at least two spaces before the text
    assert any(line.split()[0] == "teacher+self-play" for line in lines)
