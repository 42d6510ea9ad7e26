"""What a person reads in the terminal: phases announced on stderr, bars with the last
validation accuracy, no third-party noise, a summary that names its metric and unit,
says when its accuracy means nothing, and links to the runs."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys

import pytest

from qcrd_bench.console import phase, quiet_third_party
from qcrd_bench.ablate import aggregate
from qcrd_bench.describe import aggregate_lines, report_command, sweep_name

QCRD_SMOKE = ["run", "-m", "qcrd", "-t", "svamp", "--preset", "smoke", "--limit", "16", "--set", "train.steps=2",
              "--set", "train.eval_every=1", "--set", "train.log_every=1", "--set", "discriminator.pretrain_steps=2",
              "--set", "train.threads=1", "--set", "eval.max_new_tokens=4"]


def test_a_run_announces_its_phases_and_prints_a_named_result_and_the_link(mirror, tmp_path):
    """A fresh store (MLflow's INFO lines would show here) and a run with a judge."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    done = subprocess.run([sys.executable, "-m", "qcrd_bench.cli", *QCRD_SMOKE, "--tracking-uri", uri],
                          cwd=tmp_path, env=os.environ.copy(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    err = done.stderr.replace("\r", "\n")
    for line in ("loading data: svamp, teacher mcc-kd", "building the student: t5-tiny",
                 "opening the MLflow run in qcrd-bench/svamp"):
        assert re.search(re.escape(line) + r" … \d+\.\d s\n", err), line
    for bar in ("pre-training the judge: 100%", "decoding the test set (step 2): 100%"):
        assert bar in err, bar
    assert re.search(r"qcrd/svamp: 100%.*loss=\d+\.\d+, val/accuracy=\d+\.\d%", err)  # the last validation
    assert "INFO" not in err and "Creating initial MLflow database tables" not in err, err

    summary, note, browse = done.stdout.strip().splitlines()
    assert re.fullmatch(r"run \w{32} in experiment qcrd-bench/svamp: test/accuracy \d+\.\d% \(best-validation step "
                        r"\d\), final/test_accuracy \d+\.\d%, test/accuracy_flexible \d+\.\d%, eval/parse_rate "
                        r"\d+\.\d%", summary), summary
    assert note.startswith("note: a smoke run") and "not meaningful" in note
    assert browse == (f"browse: qcrd-bench ui --tracking-uri {uri}, then open http://127.0.0.1:5000/#/experiments/1/"
                      f"runs?workflowType=machine_learning&viewStateShareKey=qcrd-bench")


def test_the_long_sequence_warning_is_dropped_and_other_warnings_kept():
    """The judge measures whole rationales to clip them: transformers' warning about a text
    longer than the model takes is not the user's concern; any other warning is."""
    from qcrd_bench.students import train_tokenizer

    quiet_third_party()
    log = logging.getLogger("transformers.tokenization_utils_base")
    seen: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = seen.append
    log.addHandler(handler)
    try:
        tokenizer = train_tokenizer(["one two three"] * 4)
        assert len(tokenizer("one " * 600)["input_ids"]) > tokenizer.model_max_length
        log.warning("another warning")
    finally:
        log.removeHandler(handler)
    assert [r.getMessage() for r in seen] == ["another warning"]


def test_a_phase_line_in_a_log_is_written_when_it_ends_and_not_when_it_fails(capsys):
    with phase("loading data: svamp"):
        pass
    with pytest.raises(RuntimeError), phase("building the student"):
        raise RuntimeError("no")
    assert re.fullmatch(r"loading data: svamp … \d+\.\d s\n", capsys.readouterr().err)


@pytest.mark.parametrize("seeds, suite, smoke, name", [
    ([0, 1], "", True, "dss,qcrd × svamp × seeds 0-1 (smoke)"),
    ([0], "", False, "dss,qcrd × svamp × seed 0"),
    ([2, 0, 5], "cpu-svamp", False, "cpu-svamp: dss,qcrd × svamp × seeds 0,2,5"),
])
def test_sweep_names_read_as_their_grid(seeds, suite, smoke, name):
    assert sweep_name(["dss", "qcrd"], ["svamp"], seeds, suite, smoke) == name
    assert sweep_name([f"v{i}" for i in range(9)], ["svamp"], [0], "ablation-svamp") == \
        "ablation-svamp: 9 variants × svamp × seed 0"


def test_sweep_results_and_the_report_command():
    rows = [("dss[teacher=clean]/svamp", 0.125, 0.0125, 2)]
    assert aggregate_lines(rows) == ["test/accuracy (best-validation checkpoint), mean ± std over seeds:",
                                     "  dss[teacher=clean]/svamp  12.5% ± 1.2%  (n=2)"]
    assert aggregate(rows) == {"dss_teacher_clean_/svamp/test/accuracy_mean": 0.125,
                               "dss_teacher_clean_/svamp/test/accuracy_std": 0.0125,
                               "dss_teacher_clean_/svamp/test/accuracy_n": 2.0}
    assert report_command("sqlite:///mlflow.db", parent="abc", smoke=True) == \
        "qcrd-bench report --run abc --include-smoke"
    assert report_command("sqlite:///runs/x.db", experiment="qcrd-bench/svamp", smoke=False) == \
        "qcrd-bench report --experiment qcrd-bench/svamp --tracking-uri sqlite:///runs/x.db"
