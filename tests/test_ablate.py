"""`qcrd-bench ablate`: a parent run with one child per (variant, task, seed), aggregates on
the parent, resuming after a kill, suites and dry runs."""

from __future__ import annotations

import os
import re
import signal
import statistics
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from conftest import runs_in
from qcrd_bench.cli import main

FAST = ["--task", "svamp", "--preset", "smoke", "--limit", "8", "--set", "train.steps=2", "--set", "train.threads=1",
        "--set", "eval.max_new_tokens=4"]


def test_dry_run_lists_suite_children(mirror):
    result = CliRunner().invoke(main, ["ablate", "--suite", "cpu-svamp", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "9 children in experiment qcrd-bench/suite/cpu-svamp" in result.output
    assert result.output.count("qcrd ") == 3 and result.output.count("finetune") == 3


def test_teachers_runs_part_of_a_suite_under_its_parent(mirror):
    def dry(*extra):
        result = CliRunner().invoke(main, ["ablate", "--suite", "synth-noise", "--seeds", "0", "--dry-run", *extra])
        assert result.exit_code == 0, result.output
        return result.output

    part = dry("--teachers", "clean,dynamic")
    assert "13 children in experiment qcrd-bench/suite/synth-noise" in part
    assert "finetune " in part and "qcrd[teacher=dynamic] " in part and "teacher=static" not in part
    # the lines it keeps are the whole suite's, config hashes and all, so the cells resume as one grid
    assert set(part.splitlines()[1:]) < set(dry().splitlines()[1:])
    pair = dry("--method", "finetune,qcrd", "--teachers", "clean")
    assert "2 children" in pair and "finetune " in pair and "qcrd[teacher=clean] " in pair
    assert set(pair.splitlines()[1:]) < set(part.splitlines()[1:])


@pytest.mark.parametrize("suite,judge", [("synth-noise", "student"), ("synth-questions", "student"),
                                         ("synth-judge", None)])
def test_synth_suites_keep_the_judge_their_reports_were_run_with(catalog, suite, judge):
    """The reports of synth-noise and synth-questions were run with the student's encoder as the
    judge, the `synth` preset's until it took a t5-tiny one: their cells still resolve to it."""
    from qcrd_bench.ablate import cells, load_suite

    grid = cells(catalog, load_suite(suite, catalog))
    judged = [c for c in grid if c.config["discriminator"]["name"] == "encoder-maxpool"]
    assert judged
    encoders = {c.variant.label: c.config["discriminator"]["encoder"] for c in judged}
    if judge:
        assert set(encoders.values()) == {judge}
    else:
        assert encoders == {"qcrd-judge-student": "student", "qcrd-judge-tiny": "t5-tiny"}


def test_teachers_picks_cells_whose_labels_also_vary_a_setting(tmp_path):
    suite = tmp_path / "mixed.yaml"
    suite.write_text("name: mixed\ntasks: [synth-arith]\nseeds: [0]\npreset: synth-quick\nvariants: [dss]\n"
                     "teachers: {clean: {}, dynamic: {teacher.p_dynamic: 0.4}}\nvary: {loss.alpha: [0.3, 0.7]}\n")
    result = CliRunner().invoke(main, ["ablate", "--suite", str(suite), "--teachers", "clean", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "2 children" in result.output and "teacher=dynamic" not in result.output
    assert result.output.count("dss[teacher=clean][loss.alpha=") == 2


@pytest.mark.parametrize("args, message", [
    (["--suite", "synth-noise", "--teachers", "clean,noisy"], "no teacher in suite 'synth-noise' named 'noisy'"),
    (["--suite", "synth-noise", "--method", "qcrd,qcdr"], "no variant in suite 'synth-noise' named 'qcdr'; it has "
                                                          "finetune, cot, dss, qcrd-no-ed"),
    (["--suite", "cpu-svamp", "--teachers", "clean"], "suite 'cpu-svamp' names no teachers"),
    (["-m", "dss", "--teachers", "clean"], "--teachers picks among a suite's teachers"),
])
def test_bad_teachers_fail(mirror, args, message):
    result = CliRunner().invoke(main, ["ablate", *args, "--dry-run"])
    assert result.exit_code == 2 and message in result.output, result.output


def test_vary_makes_one_variant_per_value(mirror):
    result = CliRunner().invoke(main, ["ablate", "-m", "qcrd", "--vary", "negatives.lag=3,5", "--seeds", "0",
                                       "--preset", "smoke", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "qcrd[negatives.lag=3]" in result.output and "qcrd[negatives.lag=5]" in result.output


@pytest.mark.parametrize("args, message", [
    (["--suite", "nosuch"], "no such suite"),
    (["-m", "nosuch"], "unknown method 'nosuch'"),
    (["-m", "dss", "--set", "train.nosuch=1"], "unknown config key 'train.nosuch'"),
    (["-m", "dss", "--seeds", "a,b"], "--seeds 'a,b'"),
    (["-m", "dss", "--vary", "loss.alpha"], "--vary 'loss.alpha'"),
    ([], "give either --suite NAME or --method"),
])
def test_bad_grids_fail_before_any_run(mirror, tracking_uri, args, message):
    result = CliRunner().invoke(main, ["ablate", *args, "--tracking-uri", tracking_uri])
    assert result.exit_code == 2 and message in result.output
    assert runs_in(tracking_uri) == []


# Holds the third cell (finetune, seed 0) at its start, so the sweep is surely killed inside it.
HOLD_THIRD = """
import time
from qcrd_bench.hookspecs import hookimpl

@hookimpl
def qcrd_run_start(config, run_id):
    if config["method"] == "finetune" and config["seed"] == 0:
        time.sleep(600)
"""


def test_grid_runs_as_parent_and_children_and_resumes(mirror, tracking_uri, tmp_path):
    args = ["ablate", "-m", "dss,finetune", "--seeds", "0,1", *FAST, "--tracking-uri", tracking_uri]
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "hold_third.py").write_text(HOLD_THIRD)
    # Kill the sweep (SIGTERM) once its second child has finished: the third is being held.
    proc = subprocess.Popen([sys.executable, "-m", "qcrd_bench.cli", *args, "--plugins-dir", str(plugins)],
                            cwd=tmp_path, env=os.environ.copy(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        statuses = [r.info.status for r in _children(tracking_uri)]
        if statuses.count("FINISHED") >= 2 and "RUNNING" in statuses:  # the third is open and held
            break
        time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    output = proc.communicate(timeout=120)[0].decode()
    statuses = [r.info.status for r in runs_in(tracking_uri)]
    assert "RUNNING" not in statuses, output
    finished_before = sum(r.info.status == "FINISHED" for r in _children(tracking_uri))
    assert finished_before == 2, output
    assert "KILLED" in statuses, output  # the held child, stopped by the signal

    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert f"{4 - finished_before} ran, {finished_before} already finished" in result.output
    parents = [r for r in runs_in(tracking_uri) if r.data.tags.get("qcrd.kind") == "ablate"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    parent = parents[0]
    # What a person reads: each cell's result and run id as it ends, the sweep's results in
    # percent, the exact report command (smoke cells need --include-smoke); in the UI a
    # readable parent name and a description with the results table.
    assert re.search(r"\[1/\d\] \w+ svamp seed \d: test/accuracy \d+\.\d% \(best step \d\), run \w{32}\n",
                     result.output), result.output
    assert "test/accuracy (best-validation checkpoint), mean ± std over seeds:" in result.output
    assert re.search(r"  dss/svamp +\d+\.\d% ± \d+\.\d%  \(n=2\)", result.output)
    report = f"qcrd-bench report --run {parent.info.run_id} --include-smoke --tracking-uri {tracking_uri}"
    assert f"report: {report}\n" in result.output
    assert parent.info.run_name == "dss,finetune × svamp × seeds 0-1 (smoke)"
    description = parent.data.tags["mlflow.note.content"]
    assert "| dss/svamp |" in description and "| finetune/svamp |" in description and report in description
    children = [r for r in _children(tracking_uri) if r.info.status == "FINISHED"]
    assert len(children) == 4
    assert all(r.data.tags["mlflow.parentRunId"] == parent.info.run_id for r in children)
    for variant in ("dss", "finetune"):
        values = [r.data.metrics["test/accuracy"] for r in children if r.data.tags["qcrd.variant"] == variant]
        assert parent.data.metrics[f"{variant}/svamp/test/accuracy_mean"] == pytest.approx(statistics.mean(values))
        assert parent.data.metrics[f"{variant}/svamp/test/accuracy_std"] == pytest.approx(statistics.stdev(values))
        assert parent.data.metrics[f"{variant}/svamp/test/accuracy_n"] == 2

    again = CliRunner().invoke(main, args)
    assert "0 ran, 4 already finished" in again.output


def test_children_whose_process_died_are_marked_killed(mirror, tracking_uri, tmp_path):
    """A cell killed before its first checkpoint starts again as a new run; the dead one is
    marked KILLED, not left RUNNING.  A run whose lock is held, or that has no checkpoint
    folder to tell by, is left as it is."""
    import mlflow

    from qcrd_bench.checkpoint import Checkpoints

    args = ["ablate", "-m", "dss", "--seeds", "0", *FAST, "--tracking-uri", tracking_uri]
    assert CliRunner().invoke(main, args).exit_code == 0
    (parent,) = [r for r in runs_in(tracking_uri) if r.data.tags.get("qcrd.kind") == "ablate"]
    client = mlflow.MlflowClient(tracking_uri)
    held = Checkpoints(tmp_path / "live", 1, "live", "hash")
    held.open()  # a live process's lock
    orphans = {}
    for name, folder in (("dead", tmp_path / "dead"), ("live", tmp_path / "live"), ("untold", None)):
        tags = {"mlflow.parentRunId": parent.info.run_id, "qcrd.child_key": "a cell"}
        if folder is not None:
            folder.mkdir(exist_ok=True)
            (folder / "lock").touch()
            tags["qcrd.checkpoint_dir"] = str(folder)
        orphans[name] = client.create_run(parent.info.experiment_id, tags=tags).info.run_id
    try:
        again = CliRunner().invoke(main, args)
    finally:
        held.close()
    assert again.exit_code == 0, again.output
    assert "1 child run left RUNNING by a process that died: marked KILLED" in again.output
    status = {name: client.get_run(run_id).info.status for name, run_id in orphans.items()}
    assert status == {"dead": "KILLED", "live": "RUNNING", "untold": "RUNNING"}


def test_suite_run_in_parts_reads_as_one_sweep(mirror, tracking_uri, tmp_path):
    """`--method` runs part of a suite; the parent's tag, description and aggregates still
    count the whole grid, so the last part does not hide the first."""
    suite = tmp_path / "pair.yaml"
    suite.write_text("name: pair\ntasks: [svamp]\nseeds: [0]\npreset: smoke\nbaseline: dss\nvariants: [dss, finetune]\n")
    fast = [a for a in FAST if a not in ("--task", "svamp", "--preset", "smoke")]
    run = ["ablate", "--suite", str(suite), *fast, "--tracking-uri", tracking_uri]
    first = CliRunner().invoke(main, [*run, "-m", "dss"])
    assert first.exit_code == 0, first.output
    assert "0 of 1 children already finished (this part of the grid's 2)" in first.output
    second = CliRunner().invoke(main, [*run, "-m", "finetune"])
    assert second.exit_code == 0, second.output
    (parent,) = [r for r in runs_in(tracking_uri) if r.data.tags.get("qcrd.kind") == "ablate"]
    assert parent.data.tags["qcrd.children"] == "2"
    description = parent.data.tags["mlflow.note.content"]
    assert "2 children, 2 finished" in description
    assert "| dss/svamp |" in description and "| finetune/svamp |" in description
    assert "dss/svamp/test/accuracy_mean" in parent.data.metrics
    assert re.search(r"  dss/svamp +\d+\.\d% ± \d+\.\d%  \(n=1\)", second.output), second.output


def test_a_variant_added_to_a_suite_runs_under_its_parent(mirror, tracking_uri, tmp_path):
    """A suite grows like its seeds: after a variant is added to the file, the sweep resumes
    under the same parent and runs only the new variant's cells."""
    suite = tmp_path / "grow.yaml"
    suite.write_text("name: grow\ntasks: [svamp]\nseeds: [0]\npreset: smoke\nbaseline: dss\nvariants: [dss]\n")
    fast = [a for a in FAST if a not in ("--task", "svamp", "--preset", "smoke")]
    run = ["ablate", "--suite", str(suite), *fast, "--tracking-uri", tracking_uri]
    assert CliRunner().invoke(main, run).exit_code == 0
    suite.write_text(suite.read_text().replace("[dss]", "[dss, finetune]"))
    grown = CliRunner().invoke(main, run)
    assert grown.exit_code == 0, grown.output
    assert "1 of 2 children already finished" in grown.output
    (parent,) = [r for r in runs_in(tracking_uri) if r.data.tags.get("qcrd.kind") == "ablate"]
    assert parent.data.tags["qcrd.children"] == "2"
    assert sorted(r.data.tags["qcrd.variant"] for r in _children(tracking_uri)) == ["dss", "finetune"]


def _children(uri):
    return [r for r in runs_in(uri) if "mlflow.parentRunId" in r.data.tags]


def test_workers_run_children_in_parallel_processes(mirror, tracking_uri):
    """Two worker processes write through a local tracking server; the children are the
    same cells (same config hash) a sequential sweep would run."""
    result = CliRunner().invoke(main, ["ablate", "-m", "dss", "--seeds", "0,1", *FAST, "--workers", "2",
                                       "--tracking-uri", tracking_uri])
    assert result.exit_code == 0, result.output
    assert "2 workers" in result.output and "store served at http://127.0.0.1:" in result.output
    children = _children(tracking_uri)
    for child in children:  # each worker's result, read from its `run --json`
        assert re.search(rf"dss svamp seed {child.data.tags['qcrd.seed']}: test/accuracy \d+\.\d% \(best step \d\), "
                         rf"run {child.info.run_id}\n", result.output), result.output
    assert sorted(r.data.tags["qcrd.seed"] for r in children) == ["0", "1"]
    assert all(r.info.status == "FINISHED" for r in runs_in(tracking_uri))
    import mlflow

    threads = {mlflow.artifacts.load_dict(f"{r.info.artifact_uri}/config.json")["train"]["threads"] for r in children}
    assert threads == {max(1, (os.cpu_count() or 1) // 2)}
    dry = CliRunner().invoke(main, ["ablate", "-m", "dss", "--seeds", "0", *FAST, "--dry-run"])
    assert children[0].data.tags["qcrd.config_hash"] in dry.output


@pytest.mark.slow
def test_sweep_killed_mid_cell_resumes_that_cell_from_its_checkpoint(mirror, tracking_uri, tmp_path):
    """SIGKILL (no cleanup at all) during a cell: the re-run continues that child run from
    its checkpoint, in a worker process, and starts the other cell afresh."""
    args = ["ablate", "-m", "dss", "--seeds", "0,1", "--task", "svamp", "--preset", "smoke", "--limit", "8",
            "--set", "train.steps=16", "--set", "train.checkpoint_every=2", "--set", "train.threads=1",
            "--set", "eval.max_new_tokens=4", "--tracking-uri", tracking_uri]
    proc = subprocess.Popen([sys.executable, "-m", "qcrd_bench.cli", *args], cwd=tmp_path, env=os.environ.copy(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    while not list(tmp_path.glob("checkpoints/*/checkpoint.pt")) and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[0].decode()
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    (killed,) = [r for r in _children(tracking_uri) if r.info.status == "RUNNING"]

    result = CliRunner().invoke(main, [*args, "--workers", "2"])
    assert result.exit_code == 0, result.output
    assert "1 to resume from a checkpoint" in result.output
    children = _children(tracking_uri)
    assert len(children) == 2 and all(r.info.status == "FINISHED" for r in children)
    assert killed.info.run_id in {r.info.run_id for r in children}  # the same run, continued
    assert not list(tmp_path.glob("checkpoints/*/checkpoint.pt"))
