"""`qcrd-bench report` on a tracking store of fake runs, made directly through mlflow
(nothing is trained): the table's numbers, the paired differences, the CSV, the plots,
the artifacts on the parent, and bad input."""

from __future__ import annotations

import csv
import statistics
from pathlib import Path

import pytest
from click.testing import CliRunner

from qcrd_bench.cli import main

# (variant, seed) -> test/accuracy; dss seed 0 also has an older run (0.10) the report must drop.
ACCURACY = {("dss", 0): 0.655, ("dss", 1): 0.600, ("qcrd", 0): 0.690, ("qcrd", 1): 0.640}
HASH = {"dss": "dsshash00001", "qcrd": "qcrdhash0001"}
# Each method's objective as its runs are tagged (`qcrd.loss`), and the share of training
# questions with a rationale (`data/rationale_coverage`; MCC-KD leaves 213 of SVAMP's 720 without).
LOSS = {"finetune": "L_pred", "cot": "L_pred[r ⊕ y]", "dss": "0.5·L_pred + 0.5·L_explain",
        "qcrd": "0.5·L_pred + 0.5·L_cl[minmax, β=0.2, δ=3] + 0.5·0.9^t·L_D"}
COVERAGE = {"cot": 1.0, "dss": 1.0, "qcrd": 507 / 720}

# The synth-noise sweep: methods × teachers on synth-arith, and finetune (no teacher), seeds 0 and 1.
# test/accuracy by (method, teacher): qcrd beats dss with the clean teacher (Δ +2.0, +2.1), trails
# it with the dynamic one (−1.0, −1.1), and the two cannot be told apart with static+irrelevant (+1, −1).
TEACHERS = ("clean", "dynamic", "static+irrelevant")
SYNTH = {("dss", "clean"): (0.60, 0.62), ("qcrd", "clean"): (0.62, 0.641),
         ("dss", "dynamic"): (0.55, 0.57), ("qcrd", "dynamic"): (0.54, 0.559),
         ("dss", "static+irrelevant"): (0.50, 0.52), ("qcrd", "static+irrelevant"): (0.51, 0.51),
         ("finetune", None): (0.58, 0.60)}
VALID = {"clean": 0.96, "dynamic": 0.71, "static+irrelevant": 0.52}  # teacher/valid_frac at seed 0


def synth_label(method: str, teacher: str | None) -> str:
    return f"{method}[teacher={teacher}]" if teacher else method


def rationale_answer(method: str, teacher: str, seed: int) -> float:
    """test/rationale_answer_accuracy: above test/accuracy, by more for qcrd."""
    return SYNTH[(method, teacher)][seed] + (0.08 if method == "qcrd" else 0.05)


def _truth(method: str, teacher: str | None, seed: int) -> tuple:
    """The ground-truth metrics a run on a task with a checker logs, as (key, step, value)."""
    if teacher is None:  # finetune: no rationales, nothing to check
        return ()
    valid = VALID[teacher] + 0.01 * seed
    rows = [("teacher/valid_frac", 0, valid), ("teacher/label/valid", 0, valid),
            ("teacher/label/uses-distractor", 0, 1 - valid),
            ("test/rationale_valid", 300, valid - 0.1), ("test/rationale_label/valid", 300, valid - 0.1),
            ("test/rationale_answer_accuracy", 300, rationale_answer(method, teacher, seed))]
    if method == "qcrd":
        rows += [("filter/precision", 0, valid + 0.02), ("filter/recall", 0, 0.9 - 0.02 * seed),
                 ("negatives/teacher_invalid_frac", 0, 1 - valid / 2),
                 ("train/judge_auroc", 150, 0.6 + 0.02 * seed), ("train/judge_auroc", 300, 0.8 + 0.03 * seed)]
        rows += [("train/neg_student_invalid_frac", step, 0.4 + step / 1000 + 0.1 * seed) for step in (100, 200, 300)]
    return tuple(rows)


def _truth_scored(teacher: str, seed: int) -> dict[str, list]:
    """A scored table with the checker's label of each rationale: 20 scores spread over [0, 1],
    valid more often the higher the score, and the more often the cleaner the teacher."""
    scores = [(i + 0.5) / 20 for i in range(20)]
    power = {"clean": 0.5, "dynamic": 1.0}.get(teacher, 2.0)
    truth = ["valid" if ((7 * i + seed) % 20) / 20 < score ** power else "uses-distractor"
             for i, score in enumerate(scores)]
    return {"step": [1] * 20, "iteration": [0] * 20, "id": [f"q{i}" for i in range(20)],
            "rationale": [f"r{i}" for i in range(20)], "score": scores,
            "source": ["teacher positive" if t == "valid" else "student negative" for t in truth], "truth": truth}


def _tags(variant: str, seed: int, parent: str, task: str = "svamp", **extra) -> dict[str, str]:
    base = variant.split("[")[0]
    return {"mlflow.parentRunId": parent, "qcrd.method": base, "qcrd.variant": variant, "qcrd.task": task,
            "qcrd.seed": str(seed), "qcrd.preset": "paper", "qcrd.config_hash": HASH.get(variant, variant),
            "qcrd.smoke": "false", "qcrd.teacher": {"qcrd": "mcc-kd", "finetune": "none"}.get(base, "dss-palm"),
            "qcrd.loss": LOSS[base], "qcrd.rationales_sha256": "abc", **extra}


def _scored(sources: bool) -> dict[str, list]:
    """A run's negatives/scored_samples.json: 8 positives, 4 teacher and 8 student negatives,
    with a source and a truth column (the checker's label), or, as an older run logged it,
    negatives only and no source or truth."""
    scores = {"teacher positive": [0.97, 0.92, 0.9, 0.88, 0.85, 0.8, 0.7, 0.55],
              "teacher negative": [0.6, 0.45, 0.3, 0.2],
              "student negative": [0.3, 0.2, 0.1, 0.08, 0.05, 0.04, 0.02, 0.01]}
    if not sources:
        scores.pop("teacher positive")
    rows = [(source, score) for source, values in scores.items() for score in values]
    table = {"step": [1] * len(rows), "iteration": [0] * len(rows), "id": [f"q{i}" for i in range(len(rows))],
             "rationale": [f"r{i}" for i in range(len(rows))], "score": [score for _, score in rows]}
    if sources:
        table["source"] = [source for source, _ in rows]
        table["truth"] = ["valid" if source == "teacher positive" else "invalid" for source, _ in rows]
    return table


def _child(client, mlflow, experiment: str, tags: dict, accuracy: float, start: int, fraction: float = 1.0,
           sources: bool = True, extra: tuple = (), scored: dict | None = None) -> str:
    """A finished training run with summary metrics, per-step curves of its loss terms and,
    for qcrd, the judge's diagnostics and scored rationales (``scored``, else by source unless
    ``sources`` is False); ``extra``: more (key, step, value) metrics."""
    from mlflow.entities import Metric, Param

    run = client.create_run(experiment, start_time=start, tags=tags,
                            run_name=f"{tags['qcrd.variant']}-{tags['qcrd.task']}-s{tags['qcrd.seed']}")
    run_id = run.info.run_id
    qcrd = tags["qcrd.method"] == "qcrd"
    seed = int(tags["qcrd.seed"])
    summary = {"test/accuracy": accuracy, "final/test_accuracy": accuracy - 0.01,
               "test/accuracy_flexible": accuracy + 0.02, "eval/parse_rate": 0.95 + 0.01 * seed,
               "best/val_accuracy": accuracy}
    if tags["qcrd.method"] in COVERAGE:
        summary["data/rationale_coverage"] = COVERAGE[tags["qcrd.method"]]
    metrics = [Metric(key, value, start, 300) for key, value in summary.items()]
    for step in (100, 200, 300):
        metrics += [Metric("val/accuracy", accuracy * step / 300, start, step),
                    Metric("train/loss", 3.0 / step * 100, start, step),
                    Metric("train/loss_pred", 1.0 / step * 100, start, step)]
        if tags["qcrd.method"] == "dss":
            metrics.append(Metric("train/loss_explain", 2.0 / step * 100, start, step))
        if qcrd:
            judge = {"train/loss_cl": 0.5, "train/loss_d": -0.1, "train/score_pos": 0.8 + 0.05 * seed,
                     "train/score_neg": 0.3, "train/disc_acc": 0.7 + step / 1000,
                     "train/neg_active_frac": 0.6 - step / 600, "train/margin": 1.0 + step / 300}
            metrics += [Metric(key, value, start, step) for key, value in judge.items()]
    metrics += [Metric(key, value, start, step) for key, step, value in extra]
    client.log_batch(run_id, metrics=metrics, params=[Param("task.train_fraction", str(fraction)),
                                                      Param("seed", str(seed))])
    if qcrd:
        # Through the client: the fluent API would carry the active experiment of an earlier test.
        client.log_table(run_id, scored or _scored(sources), artifact_file="negatives/scored_samples.json")
    client.set_terminated(run_id, "FINISHED", end_time=start + 1000)
    return run_id


def _parent(client, experiment: str, suite: str, baseline: str, variants: str = "") -> str:
    run = client.create_run(experiment, start_time=1_000, run_name=f"ablate-{suite}",
                            tags={"qcrd.kind": "ablate", "qcrd.suite": suite, "qcrd.baseline": baseline})
    if variants:
        client.log_param(run.info.run_id, "variants", variants)
    client.set_terminated(run.info.run_id, "FINISHED")
    return run.info.run_id


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One store for the module: a 2 variants × 2 seeds sweep (plus a stale duplicate, a
    smoke run and a teach run), a data-size sweep, a sweep of finetune, cot and dss (no
    judge, three objectives), an empty experiment, and a synth-noise sweep (dss and qcrd
    crossed with three teachers, and finetune) with ground-truth metrics."""
    import mlflow

    folder = tmp_path_factory.mktemp("store")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri)
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)  # any fluent call in the helpers goes to this store, never ./mlflow.db
    try:
        demo = client.create_experiment("qcrd-bench/suite/demo")
        parent = _parent(client, demo, "demo", "")
        kept = {}
        _child(client, mlflow, demo, _tags("dss", 0, parent), 0.10, start=2_000)  # replaced by the newer seed 0
        for i, ((variant, seed), accuracy) in enumerate(ACCURACY.items()):
            kept[(variant, seed)] = _child(client, mlflow, demo, _tags(variant, seed, parent), accuracy,
                                           start=10_000 + i)
        smoke = _child(client, mlflow, demo, _tags("dss", 2, parent, **{"qcrd.smoke": "true"}), 0.99, start=20_000)
        teach = client.create_run(demo, start_time=21_000, run_name="teach-svamp-mcc-kd",
                                  tags={"mlflow.parentRunId": parent, "qcrd.kind": "teach", "qcrd.task": "svamp"})
        client.set_terminated(teach.info.run_id, "FINISHED")

        sizes = client.create_experiment("qcrd-bench/suite/sizes")
        sizes_parent = _parent(client, sizes, "sizes", "dss")
        for i, (variant, fraction, accuracy) in enumerate((("dss", 0.5, 0.47), ("dss", 1.0, 0.65),
                                                            ("qcrd", 0.5, 0.50), ("qcrd", 1.0, 0.69))):
            label = f"{variant}[task.train_fraction={fraction}]"
            teacher = {"qcrd.teacher": "dss-palm"}  # not the paper's teacher for qcrd
            _child(client, mlflow, sizes, _tags(label, 0, sizes_parent, **teacher), accuracy, start=30_000 + i,
                   fraction=fraction, sources=False)  # scored negatives as older runs logged them
        objectives = client.create_experiment("qcrd-bench/suite/objectives")
        objectives_parent = _parent(client, objectives, "objectives", "dss")
        for i, variant in enumerate(("finetune", "cot", "dss")):
            for seed in (0, 1):
                _child(client, mlflow, objectives, _tags(variant, seed, objectives_parent), 0.5 + 0.01 * i,
                       start=40_000 + 2 * i + seed)
        client.create_experiment("empty")

        synth = client.create_experiment("qcrd-bench/suite/synth-noise")
        cells = [("finetune", None), *((m, t) for m in ("dss", "qcrd") for t in TEACHERS)]
        synth_parent = _parent(client, synth, "synth-noise", "dss", ",".join(synth_label(*c) for c in cells))
        for i, (method, teacher) in enumerate(cells):
            for seed in (0, 1):
                tags = _tags(synth_label(method, teacher), seed, synth_parent, task="synth-arith",
                             **{"qcrd.teacher": "synthetic" if teacher else "none"})
                _child(client, mlflow, synth, tags, SYNTH[(method, teacher)][seed], start=50_000 + 2 * i + seed,
                       extra=_truth(method, teacher, seed), scored=_truth_scored(teacher, seed))
    finally:
        mlflow.set_tracking_uri(previous)
    return {"uri": uri, "client": client, "parent": parent, "kept": kept, "smoke": smoke,
            "teach": teach.info.run_id, "sizes_parent": sizes_parent, "objectives_parent": objectives_parent,
            "synth_parent": synth_parent}


def invoke(*args):
    return CliRunner().invoke(main, ["report", *args])


def table(markdown: str, first_header: str) -> list[dict[str, str]]:
    """The rows of the Markdown table whose header starts with ``first_header``."""
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header} |"))
    header = [c.strip() for c in lines[start].strip("|").split("|")]
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append(dict(zip(header, (c.strip() for c in line.strip("|").split("|")))))
    return rows


def one_error(result) -> str:
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.output
    return errors[0]


def test_report_of_a_sweep(store, tmp_path):
    out = tmp_path / "out"
    result = invoke("--run", store["parent"], "--out", str(out), "--tracking-uri", store["uri"])
    assert result.exit_code == 0, result.output
    assert "2 groups from 4 runs" in result.output
    readme = (out / "README.md").read_text()
    assert f"qcrd-bench report --run {store['parent']} --out {out}" in readme
    assert "The runs come from `qcrd-bench ablate --suite demo` (`benchmarks/suites/demo.yaml`)." in readme

    # The table's numbers are those of the runs kept in the store (never the stale seed, the smoke run).
    client = store["client"]
    rows = {row["method"].strip("`"): row for row in table(readme, "method")}
    assert set(rows) == {"dss", "qcrd"}
    for variant in ("dss", "qcrd"):
        runs = [client.get_run(store["kept"][(variant, s)]) for s in (0, 1)]
        accuracy = [100 * r.data.metrics["test/accuracy"] for r in runs]
        parse = [100 * r.data.metrics["eval/parse_rate"] for r in runs]
        row = rows[variant]
        assert row["test acc. ↑"] == f"{statistics.mean(accuracy):.2f} ± {statistics.stdev(accuracy):.2f}"
        assert row["parse"] == f"{statistics.mean(parse):.2f} ± {statistics.stdev(parse):.2f}"
        assert (row["n"], row["seeds"], row["config"]) == ("2", "0 1", f"`{HASH[variant]}`")
        assert row["teacher"].startswith(f"`{runs[0].data.tags['qcrd.teacher']}` ")
        assert row["rationales"] == f"{100 * COVERAGE[variant]:.2f}"
    assert rows["dss"]["paper T5-base"] == "65.5" and rows["qcrd"]["paper T5-base"] == "69.0"
    assert rows["dss"]["paper T5-small"] == "48.0"
    assert "T5-base" in readme and "for orientation only" in readme

    # The teacher behind the paper's numbers: not known for dss, approximated by mcc-kd for qcrd.
    assert (rows["dss"]["teacher"], rows["qcrd"]["teacher"]) == ("`dss-palm` ¹", "`mcc-kd` ²")
    notes = readme.split("## Notes")[1]
    assert ("- ¹ `dss` trained on `dss-palm`; the teacher behind the paper's numbers for it is not known "
            "(docs/method.md §2 and §4 do not say).") in notes
    assert ("- ² `qcrd` trained on `mcc-kd`; the paper's numbers for it used GPT-3.5-turbo samples (K = 5, "
            "τ = 0.7), per docs/method.md §3. These are the nearest set here, by assumption") in notes

    # Paired differences against dss (the default baseline), with a 95% t-interval.
    from scipy.stats import t

    diffs = [100 * (ACCURACY[("qcrd", s)] - ACCURACY[("dss", s)]) for s in (0, 1)]
    half = t.ppf(0.975, 1) * statistics.stdev(diffs) / 2 ** 0.5
    (diff,) = table(readme, "method | baseline | task")
    assert diff["mean Δ (pp)"] == f"{statistics.mean(diffs):+.2f}" and diff["pairs"] == "2"
    assert diff["95% CI (pp)"] == f"[{statistics.mean(diffs) - half:+.2f}, {statistics.mean(diffs) + half:+.2f}]"

    # Plots: written where the data exists, skipped with a reason where it does not.
    for name in ("val_curves.png", "score_densities.png", "diagnostics.png", "loss_terms.png"):
        assert (out / name).stat().st_size > 1000 and f"]({name})" in readme
    assert "`train/neg_active_frac`: share of the examples with negatives whose negative term is non-zero" in readme
    assert "one colour per source in every panel" in readme and "are pooled as" not in readme
    assert not (out / "train_fraction.png").exists()
    assert "Accuracy vs train fraction (Fig. 4): every setting ran at a single" in readme

    # results.csv matches the table; excluded and replaced runs are named in the notes.
    with (out / "results.csv").open() as handle:
        results = {row["method"]: row for row in csv.DictReader(handle)}
    dss = [100 * ACCURACY[("dss", s)] for s in (0, 1)]
    assert float(results["dss"]["test_accuracy_mean_pct"]) == pytest.approx(statistics.mean(dss))
    assert float(results["dss"]["test_accuracy_std_pct"]) == pytest.approx(statistics.stdev(dss))
    assert (results["dss"]["n"], results["dss"]["seeds"], results["dss"]["teacher"]) == ("2", "0 1", "dss-palm")
    assert float(results["qcrd"]["rationale_coverage_mean_pct"]) == pytest.approx(100 * 507 / 720)
    assert results["qcrd"]["rationale_coverage_n"] == "2"
    assert (results["dss"]["paper_teacher"], results["qcrd"]["paper_teacher"]) == (
        "unknown", "GPT-3.5-turbo samples (K = 5, τ = 0.7)")
    assert results["qcrd"]["teacher_note"].startswith("`qcrd` trained on `mcc-kd`; the paper's numbers")
    assert float(results["dss"]["paper_t5_base_pct"]) == 65.5 and results["dss"]["paper_t5_base_source"] == "Table 1"
    assert "`dss-svamp-s2`" in readme and "`teach-svamp-mcc-kd`" in readme and "ran more than once" in readme
    # runs.csv: each run's own numbers, the ones the table's means and the pairs come from.
    with (out / "runs.csv").open() as handle:
        runs = [row for row in csv.DictReader(handle) if row["method"] == "dss"]
    assert [row["seed"] for row in runs] == ["0", "1"] and {row["teacher"] for row in runs} == {"dss-palm"}
    assert [float(row["test_accuracy"]) for row in runs] == pytest.approx([d / 100 for d in dss])
    assert runs[0]["run_id"] in results["dss"]["run_ids"].split()

    # The folder was logged to the parent run.
    logged = {Path(f.path).name for f in client.list_artifacts(store["parent"], "report")}
    assert {"README.md", "results.csv", "runs.csv", "differences.csv", "val_curves.png", "score_densities.png",
            "diagnostics.png"} <= logged


def test_smoke_runs_on_request_and_baseline_option(store, tmp_path):
    out = tmp_path / "out"
    result = invoke("--run", store["parent"], "--out", str(out), "--tracking-uri", store["uri"], "--include-smoke",
                    "--baseline", "qcrd")
    assert result.exit_code == 0, result.output
    readme = (out / "README.md").read_text()
    rows = {row["method"].strip("`"): row for row in table(readme, "method")}
    assert rows["dss"]["n"] == "3" and rows["dss"]["seeds"] == "0 1 2"
    (diff,) = table(readme, "method | baseline | task")
    assert diff["method"] == "`dss`" and diff["pairs"] == "2" and diff["seeds"] == "0 1"


def test_data_size_suite(store, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke("--suite", "sizes", "--tracking-uri", store["uri"])
    assert result.exit_code == 0, result.output
    out = tmp_path / "reports" / "sizes"
    readme = (out / "README.md").read_text()
    assert (out / "train_fraction.png").stat().st_size > 1000
    rows = {row["method"].strip("`").replace("\\", ""): row for row in table(readme, "method")}
    assert rows["dss[task.train_fraction=0.5]"]["paper T5-base"] == "47.0"  # Fig. 4, 50% of train
    assert rows["qcrd[task.train_fraction=1.0]"]["paper T5-base"] == "69.0"
    # Both qcrd rows trained on another teacher than the paper's qcrd numbers: one note for the two.
    assert rows["qcrd[task.train_fraction=0.5]"]["teacher"] == rows["qcrd[task.train_fraction=1.0]"]["teacher"]
    marker = rows["qcrd[task.train_fraction=0.5]"]["teacher"].removeprefix("`dss-palm` ")
    assert marker in "¹²" and rows["dss[task.train_fraction=0.5]"]["teacher"] != f"`dss-palm` {marker}"
    note = (f"- {marker} `qcrd` trained on `dss-palm`, but the paper's numbers for it used GPT-3.5-turbo "
            "samples (K = 5, τ = 0.7), per docs/method.md §3; the nearest set here is `mcc-kd`.")
    assert readme.split("## Notes")[1].count(note) == 1
    diffs = {row["method"].strip("`"): row for row in table(readme, "method | baseline | task")}
    half = diffs["qcrd[task.train_fraction=0.5]"]
    assert half["mean Δ (pp)"] == f"{100 * (0.50 - 0.47):+.2f}" and half["95% CI (pp)"] == "no interval (n < 2)"
    assert "the parent run's `qcrd.baseline` tag" in readme
    # Its runs' scored tables have no source column: the score plot says their negatives are pooled.
    assert (out / "score_densities.png").stat().st_size > 1000
    assert ("The tables of `qcrd[task.train_fraction=0.5]`, `qcrd[task.train_fraction=1.0]` (older runs) do not "
            "say where a rationale came from: their teacher and student negatives are pooled as") in readme


def test_baselines_report(store, tmp_path):
    """finetune, cot and dss: a method without rationales, and no judge anywhere."""
    out = tmp_path / "out"
    result = invoke("--run", store["objectives_parent"], "--out", str(out), "--tracking-uri", store["uri"])
    assert result.exit_code == 0, result.output
    readme = (out / "README.md").read_text()
    rows = {row["method"].strip("`"): row for row in table(readme, "method")}
    # finetune trains on gold labels, as the paper's finetune numbers did: no teacher note.
    assert (rows["finetune"]["teacher"], rows["finetune"]["rationales"]) == ("`none`", "–")
    assert (rows["cot"]["teacher"], rows["dss"]["teacher"]) == ("`dss-palm` ¹", "`dss-palm` ²")
    assert "- ¹ `cot` trained on `dss-palm`; the teacher behind the paper's numbers for it is not known" in readme
    assert rows["cot"]["rationales"] == rows["dss"]["rationales"] == "100.00"
    # No judge and no negatives: no diagnostics figure, and the report says why.
    assert not (out / "diagnostics.png").exists() and "](diagnostics.png)" not in readme
    assert ("- Judge and negatives diagnostics: no run logged `train/neg_active_frac`, `train/score_pos`, "
            "`train/score_neg`, `train/disc_acc`, `train/margin`, `train/judge_auroc`, "
            "`train/neg_student_invalid_frac` (only methods with a judge or negatives do; the ground-truth ones "
            "only on a task with a rationale checker).") in readme
    # Three objectives: the loss plot is drawn, split by objective, and says so.
    assert (out / "loss_terms.png").stat().st_size > 1000
    assert "One panel per metric and objective, so that one axis never holds different objectives" in readme
    with (out / "results.csv").open() as handle:
        results = {row["method"]: row for row in csv.DictReader(handle)}
    finetune = results["finetune"]
    assert (finetune["paper_teacher"], finetune["teacher_note"]) == ("none (gold labels only)", "")
    assert (finetune["rationale_coverage_mean_pct"], finetune["rationale_coverage_n"]) == ("", "0")
    assert float(results["cot"]["rationale_coverage_mean_pct"]) == 100.0


def test_diagnostics_figure(monkeypatch, tmp_path):
    """A panel per diagnostic that some run logged, holding the groups that logged it; a metric
    added to DIAGNOSTICS is plotted where logged and named in the note where not."""
    from qcrd_bench import report
    from qcrd_bench.report import Diagnostic, Group, diagnostic_panels, plot_diagnostics
    from qcrd_bench.tracking import StoredRun

    class History:  # per-step values of whatever a run logged
        def history(self, run_id, key):
            return [(step, 0.5) for step in (10, 20)] if key in runs[run_id].metrics else []

    logged = {"qcrd": ("train/neg_active_frac", "train/score_pos", "train/score_neg", "train/disc_acc",
                       "train/margin"),
              "qcrd-no-qj": ("train/neg_active_frac", "train/margin"),  # no judge: no scores
              "dss": ()}
    runs = {v: StoredRun(v, "0", v, "FINISHED", 0, {"qcrd.seed": "0"}, {}, {k: 0.5 for k in keys})
            for v, keys in logged.items()}
    groups = [Group(v, "svamp", v, [runs[v]]) for v in logged]
    monkeypatch.setattr(report, "DIAGNOSTICS", report.DIAGNOSTICS + (Diagnostic("train/new_metric", "a new one"),))

    panels = {d.key: [g.variant for g in members] for d, members in diagnostic_panels(groups)}
    both = ["qcrd", "qcrd-no-qj"]
    assert panels == {"train/neg_active_frac": both, "train/score_pos": ["qcrd"], "train/score_neg": ["qcrd"],
                      "train/disc_acc": ["qcrd"], "train/margin": both}
    plot = plot_diagnostics(History(), groups, tmp_path)
    assert plot.file == "diagnostics.png" and (tmp_path / plot.file).stat().st_size > 1000
    assert ("No run logged `train/judge_auroc`, `train/neg_student_invalid_frac`, `train/new_metric`."
            in plot.note) and "`train/disc_acc`: the judge's accuracy" in plot.note

    runs["dss"].metrics["train/new_metric"] = 0.9  # now one run logged it
    assert [d.key for d, _ in diagnostic_panels(groups)][-1] == "train/new_metric"
    note = plot_diagnostics(History(), groups, tmp_path).note
    assert "`train/new_metric`: a new one." in note and "`train/new_metric`" not in note.split("No run logged")[1]


def test_score_colours_follow_the_source():
    """A source has the same colour in every panel, whichever other sources a panel holds."""
    from qcrd_bench.report import POOLED, SOURCES, source_colors

    alone, everything = source_colors(["student negative"]), source_colors([*SOURCES, POOLED, "judge-made"])
    assert all(alone[s] == everything[s] for s in (*SOURCES, POOLED))
    assert len(set(everything.values())) == len(everything) == 5


def test_loss_panels_never_mix_objectives():
    """Totals and terms share an axis only within one `qcrd.loss` formula; `L_pred`, written the
    same way, is shared across formulas, but `L_pred[r ⊕ y]` (cot) is another quantity."""
    from qcrd_bench.report import Group, loss_panels
    from qcrd_bench.tracking import StoredRun

    maxmin = LOSS["qcrd"].replace("minmax", "maxmin")
    terms = {"finetune": ("loss_pred",), "cot": ("loss_pred",), "dss": ("loss_pred", "loss_explain"),
             "qcrd": ("loss_pred", "loss_cl", "loss_d"), "qcrd-maxmin": ("loss_pred", "loss_cl", "loss_d"),
             "old": ("loss_pred",)}
    groups = []
    for variant, keys in terms.items():
        tags = {"qcrd.seed": "0"} if variant == "old" else {"qcrd.seed": "0", "qcrd.loss": LOSS.get(variant, maxmin)}
        metrics = {"train/loss": 1.0, **{f"train/{k}": 1.0 for k in keys}}
        groups.append(Group(variant, "svamp", variant, [StoredRun(variant, "0", variant, "FINISHED", 0, tags, {},
                                                                  metrics)]))
    panels = {(key, axis): sorted(g.variant for g in members) for key, axis, members in loss_panels(groups)}

    totals = {axis: members for (key, axis), members in panels.items() if key == "train/loss"}
    assert totals == {LOSS["finetune"]: ["finetune"], LOSS["cot"]: ["cot"], LOSS["dss"]: ["dss"],
                      LOSS["qcrd"]: ["qcrd"], maxmin: ["qcrd-maxmin"], "`old`, no `qcrd.loss` tag": ["old"]}
    pred = {axis: members for (key, axis), members in panels.items() if key == "train/loss_pred"}
    assert pred == {"L_pred": ["dss", "finetune", "qcrd", "qcrd-maxmin"], "L_pred[r ⊕ y]": ["cot"],
                    "`old`, no `qcrd.loss` tag": ["old"]}
    cl = {axis: members for (key, axis), members in panels.items() if key == "train/loss_cl"}
    assert cl == {LOSS["qcrd"]: ["qcrd"], maxmin: ["qcrd-maxmin"]}
    # Every panel but the shared terms' holds a single objective.
    for (key, axis), members in panels.items():
        if key != "train/loss_pred":
            assert len({LOSS.get(v, maxmin) if v != "old" else None for v in members}) == 1, (key, axis)


def test_experiment_report(store, tmp_path):
    out = tmp_path / "exp"
    result = invoke("--experiment", "qcrd-bench/suite/demo", "--out", str(out), "--tracking-uri", store["uri"])
    assert result.exit_code == 0, result.output
    assert "logged to run" not in result.output and "2 groups from 4 runs" in result.output
    assert "not a training run (`qcrd.kind` = ablate)" in (out / "README.md").read_text()


def test_bad_input(store, tmp_path):
    uri = ["--tracking-uri", store["uri"]]
    assert "--run 'nosuchrun'" in one_error(invoke("--run", "nosuchrun", *uri))
    assert "has no child runs" in one_error(invoke("--run", store["kept"][("dss", 0)], *uri))
    assert "--suite 'nosuch'" in one_error(invoke("--suite", "nosuch", *uri))
    assert "no finished training runs" in one_error(invoke("--experiment", "empty", *uri))
    assert "--experiment 'missing'" in one_error(invoke("--experiment", "missing", *uri))
    assert "give exactly one of" in one_error(invoke(*uri))
    assert "give exactly one of" in one_error(invoke("--suite", "demo", "--experiment", "empty", *uri))
    assert "--baseline 'mi'" in one_error(invoke("--suite", "demo", "--baseline", "mi", "--out", str(tmp_path), *uri))
    missing = tmp_path / "none.db"
    assert "--tracking-uri" in one_error(invoke("--suite", "demo", "--tracking-uri", f"sqlite:///{missing}"))
    assert not missing.exists()


def test_unreadable_scores_are_noted(tmp_path):
    from qcrd_bench.errors import ConfigError
    from qcrd_bench.report import Group, plot_score_densities
    from qcrd_bench.tracking import StoredRun

    class Unreachable:  # a store whose artifact repository cannot be reached from here
        def table(self, run_id, path):
            raise ConfigError("tracking store 'x': artifact store unreachable")

        def history(self, run_id, key):
            return []

    run = StoredRun("r1", "0", "qcrd-svamp-s0", "FINISHED", 0, {"qcrd.seed": "0"}, {},
                    {"train/score_neg": 0.3, "test/accuracy": 0.5})
    plot = plot_score_densities(Unreachable(), [Group("qcrd", "svamp", "h", [run])], tmp_path)
    assert plot.file is None
    assert "could not read `negatives/scored_samples.json` of `qcrd-svamp-s0` (tracking store" in plot.note


def test_report_refuses_a_folder_with_a_foreign_readme(store, tmp_path):
    (tmp_path / "README.md").write_text("# My project\n")
    result = CliRunner().invoke(main, ["report", "--run", store["parent"], "--out", str(tmp_path),
                                       "--tracking-uri", store["uri"]])
    assert result.exit_code == 2 and "not a qcrd-bench report" in result.output
    assert (tmp_path / "README.md").read_text() == "# My project\n"
    assert [p.name for p in tmp_path.iterdir()] == ["README.md"]


def _pm(values: list[float]) -> str:
    """As the report prints a mean ± sample std of values in [0, 1]."""
    values = [100 * v for v in values]
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def test_synth_noise_report(store, tmp_path):
    """The controlled testbed: components against ground truth, the noise plot, the judge's
    reliability, scores by truth, and paired differences per teacher, with words."""
    out = tmp_path / "out"
    result = invoke("--suite", "synth-noise", "--out", str(out), "--tracking-uri", store["uri"])
    assert result.exit_code == 0, result.output
    readme = (out / "README.md").read_text()
    for name in ("noise.png", "reliability.png", "score_by_truth.png", "diagnostics.png", "score_densities.png",
                 "judge_quality.png"):
        assert (out / name).stat().st_size > 1000 and f"]({name})" in readme, name
    # Every file it writes is one it removes first, so a rerun leaves nothing stale, and one logged to the parent.
    from qcrd_bench.report import OUTPUTS

    assert {path.name for path in out.iterdir()} <= set(OUTPUTS)
    assert "`train/judge_auroc`: AUROC of the judge's scores" in readme
    # Judge quality against accuracy: a point per qcrd run (its last AUROC), ranked together.
    from scipy.stats import spearmanr

    aurocs = [0.8 + 0.03 * seed for _ in TEACHERS for seed in (0, 1)]
    accuracies = [SYNTH[("qcrd", t)][seed] for t in TEACHERS for seed in (0, 1)]
    rho, p_value = spearmanr(aurocs, accuracies)
    assert f"synth-arith: Spearman's ρ = {rho:+.2f} over 6 runs (p = {p_value:.2g})." in readme
    assert "`train/neg_student_invalid_frac`: share of the batch's self-play" in readme
    assert ("x: the teacher of each setting (the `teacher=` in its label), in the order of the parent run's "
            "`variants` param: clean, dynamic, static+irrelevant.") in readme
    assert ("The panels of a task read, left to right, `test/accuracy` (the answer the student predicts); "
            "`test/rationale_answer_accuracy` (the answer read from the student's own `explain:` rationale, its last "
            "result); `test/rationale_valid` (the share of test questions whose own rationale") in readme
    assert "Not drawn" not in readme.split("### Accuracy against teacher noise")[1].split("###")[0]

    # Components against ground truth: a row per setting that logged any (not finetune).
    rows = {row["method"].strip("`"): row for row in table(readme.split("## Components against ground truth")[1],
                                                           "method")}
    assert set(rows) == {synth_label(m, t) for m in ("dss", "qcrd") for t in TEACHERS}
    qcrd = rows["qcrd[teacher=dynamic]"]
    valid = [VALID["dynamic"] + 0.01 * s for s in (0, 1)]
    assert qcrd["n"] == "2" and qcrd["teacher valid"] == _pm(valid)
    assert qcrd["filter prec."] == _pm([v + 0.02 for v in valid]) and qcrd["filter recall"] == _pm([0.9, 0.88])
    assert qcrd["teacher neg. invalid"] == _pm([1 - v / 2 for v in valid])
    assert qcrd["student neg. invalid"] == _pm([0.6, 0.7])  # each run's mean over its steps
    assert qcrd["judge AUROC first"] == _pm([0.6, 0.62]) and qcrd["judge AUROC last"] == _pm([0.8, 0.83])
    assert qcrd["rationale valid"] == _pm([v - 0.1 for v in valid])
    assert qcrd["rationale → answer"] == _pm([rationale_answer("qcrd", "dynamic", s) for s in (0, 1)])
    dss = rows["dss[teacher=clean]"]
    assert dss["teacher valid"] == _pm([VALID["clean"], VALID["clean"] + 0.01])
    assert dss["filter prec."] == dss["judge AUROC last"] == dss["student neg. invalid"] == "–"
    with (out / "components.csv").open() as handle:
        components = {row["method"]: row for row in csv.DictReader(handle)}
    assert set(components) == set(rows)
    row = components["qcrd[teacher=dynamic]"]
    assert float(row["train_judge_auroc_first_mean_pct"]) == pytest.approx(61.0)
    assert float(row["train_neg_student_invalid_frac_mean_mean_pct"]) == pytest.approx(65.0)
    assert float(row["teacher_label_uses-distractor_mean_pct"]) == pytest.approx(100 - 100 * statistics.mean(valid))
    assert row["test_rationale_label_valid_n"] == "2" and components["dss[teacher=clean]"]["filter_recall_n"] == "0"

    # Paired differences: each teacher against dss with the same teacher; finetune against the
    # first dss setting in the sweep's order; one line of words per comparison.
    diffs = {row["method"].strip("`"): row for row in table(readme, "method | baseline | task")}
    assert {m: row["baseline"].strip("`") for m, row in diffs.items()} == {
        "finetune": "dss[teacher=clean]", **{f"qcrd[teacher={t}]": f"dss[teacher={t}]" for t in TEACHERS}}
    from scipy.stats import t as student_t

    def reading(method, teacher):
        base = SYNTH[("dss", teacher)]
        d = [100 * (SYNTH[(method, None if method == "finetune" else teacher)][s] - base[s]) for s in (0, 1)]
        half = student_t.ppf(0.975, 1) * statistics.stdev(d) / 2 ** 0.5
        mean = statistics.mean(d)
        sign = lambda v: f"{v:+.2f}".replace("-", "−")  # noqa: E731
        return sign(mean), f"95% CI {sign(mean - half)} to {sign(mean + half)}"

    mean, ci = reading("qcrd", "clean")
    assert f"- `qcrd[teacher=clean]` beats `dss[teacher=clean]` by {mean} pp ({ci})." in readme
    mean, ci = reading("qcrd", "dynamic")
    assert f"- `qcrd[teacher=dynamic]` trails `dss[teacher=dynamic]` by {mean} pp ({ci})." in readme
    mean, ci = reading("qcrd", "static+irrelevant")
    assert (f"- `qcrd[teacher=static+irrelevant]` cannot be told apart from `dss[teacher=static+irrelevant]` "
            f"(mean Δ {mean} pp; {ci} includes 0).") in readme
    mean, ci = reading("finetune", "clean")
    assert (f"- `finetune` trails `dss[teacher=clean]` by {mean} pp ({ci}). (`finetune` varies no setting and no plain "
            "`dss` group ran, so it is paired with `dss[teacher=clean]`, the first `dss` setting in the order of the "
            "parent run's `variants` param.)") in readme

    # The same in test/rationale_answer_accuracy, for the pairs whose both sides logged it (not finetune).
    second = readme.split("### The same in `test/rationale_answer_accuracy`")[1].split("### The same in")[0]
    answers = {row["method"].strip("`"): row for row in table(second, "method | baseline | task")}
    assert set(answers) == {f"qcrd[teacher={t}]" for t in TEACHERS}
    expected = statistics.mean(100 * (rationale_answer("qcrd", "dynamic", s) - rationale_answer("dss", "dynamic", s))
                               for s in (0, 1))
    assert answers["qcrd[teacher=dynamic]"]["mean Δ (pp)"] == f"{expected:+.2f}"
    assert "- `qcrd[teacher=dynamic]` beats `dss[teacher=dynamic]` by" in second
    with (out / "differences.csv").open() as handle:
        by_metric = [(row["metric"], row["method"]) for row in csv.DictReader(handle)]
    assert by_metric.count(("test/accuracy", "finetune")) == 1 and by_metric.count(("val/mean_accuracy", "finetune")) == 1
    assert len(by_metric) == 14
    assert {m for m, _ in by_metric} == {"test/accuracy", "test/rationale_answer_accuracy", "test/rationale_valid",
                                         "val/mean_accuracy"}
    # And in test/rationale_valid, where a teacher's unfaithful steps show: the fixture's are equal by seed.
    third = readme.split("### The same in `test/rationale_valid`")[1].split("### The same in")[0]
    valid = {row["method"].strip("`"): row for row in table(third, "method | baseline | task")}
    assert set(valid) == {f"qcrd[teacher={t}]" for t in TEACHERS}
    assert valid["qcrd[teacher=static+irrelevant]"]["mean Δ (pp)"] == "+0.00"
    # And in how fast each learned, which these runs (logged without it) get from their val/accuracy
    # history: validation at steps 100, 200, 300 of accuracy × step / 300, so its mean is 2/3 of accuracy.
    fourth = readme.split("### The same in `val/mean_accuracy`")[1]
    speed = {row["method"].strip("`"): row for row in table(fourth, "method | baseline | task")}
    assert set(speed) == {"finetune", *(f"qcrd[teacher={t}]" for t in TEACHERS)}
    expected = statistics.mean(100 * 2 / 3 * (SYNTH[("qcrd", "dynamic")][s] - SYNTH[("dss", "dynamic")][s])
                               for s in (0, 1))
    assert speed["qcrd[teacher=dynamic]"]["mean Δ (pp)"] == f"{expected:+.2f}"


def test_reports_without_ground_truth_say_so(store, tmp_path):
    """No teacher points and no checker: the noise plot and the components table are skipped
    with a note; a scored table without a truth column skips the truth plots."""
    out = tmp_path / "demo"
    assert invoke("--run", store["parent"], "--out", str(out), "--tracking-uri", store["uri"]).exit_code == 0
    readme = (out / "README.md").read_text()
    assert "- Accuracy against teacher noise: no group's label has a `teacher=` point" in readme
    assert not (out / "noise.png").exists() and not (out / "components.csv").exists()
    assert "## Components against ground truth" not in readme
    assert "- No run logged a ground-truth metric (`teacher/valid_frac`, " in readme
    # Its scored tables have a truth column (valid or not), so the truth plots are drawn.
    assert (out / "reliability.png").stat().st_size > 1000 and (out / "score_by_truth.png").stat().st_size > 1000

    out = tmp_path / "sizes"
    assert invoke("--suite", "sizes", "--out", str(out), "--tracking-uri", store["uri"]).exit_code == 0
    readme = (out / "README.md").read_text()
    assert not (out / "reliability.png").exists() and not (out / "score_by_truth.png").exists()
    for title in ("Judge reliability against ground truth", "Discriminator scores by truth"):
        assert f"- {title}: no run's `negatives/scored_samples.json` has a `truth` column" in readme


def test_noise_plot_order():
    """The x axis follows the parent's `variants` param (teacher names may hold '+' and labels
    commas), else the table's order; finetune is a flat line; a group that used a teacher
    without saying which in its label is left out."""
    from qcrd_bench.report import Group, VariantOrder, noise_lines, split_labels, variant_order
    from qcrd_bench.tracking import StoredRun

    def group(variant, teacher="synthetic", task="synth-arith"):
        return Group(variant, task, variant, [StoredRun(variant, "0", variant, "FINISHED", 0,
                                                        {"qcrd.seed": "0", "qcrd.teacher": teacher}, {}, {})])

    groups = [group("finetune", "none"), group("dss"), group("qcrd[teacher=clean]"),
              group("qcrd[teacher=systematic,negatives.lag=3]"), group("qcrd[teacher=static+irrelevant]"),
              group("qcrd[teacher=systematic]"), group("cot[teacher=clean]", task="svamp")]
    variants = "finetune,qcrd[teacher=systematic,negatives.lag=3],qcrd[teacher=static+irrelevant],qcrd[teacher=clean]"
    assert split_labels(variants)[1] == "qcrd[teacher=systematic,negatives.lag=3]"
    parent = StoredRun("p", "0", "ablate", "FINISHED", 0, {}, {"variants": variants}, {})
    found = noise_lines(groups, variant_order(parent, groups))
    assert found.teachers == ["systematic", "static+irrelevant", "clean"]
    assert {key: list(line) for key, line in found.lines.items()} == {
        ("qcrd", "synth-arith"): ["clean", "static+irrelevant", "systematic"],
        ("qcrd[negatives.lag=3]", "synth-arith"): ["systematic"], ("cot", "svamp"): ["clean"]}
    assert [g.variant for g in found.flat] == ["finetune"]
    assert [(g.variant, why) for g, why in found.left_out] == [("dss", "no `teacher=` in its label, but its runs "
                                                                       "used one")]
    # Without a parent: the order of the table.
    assert noise_lines(groups, variant_order(None, groups)).teachers == ["clean", "systematic", "static+irrelevant"]
    assert noise_lines(groups[:2], VariantOrder(("finetune", "dss"), "x")).lines == {}


def test_split_label_reads_every_bracket():
    """A suite with teachers and `vary` labels its cells dss[teacher=clean][loss.alpha=0.3]
    (ablate's cross_teachers, then cross); both brackets are settings."""
    from qcrd_bench.report import setting_of, split_label, without_setting

    assert split_label("qcrd") == ("qcrd", ())
    assert split_label("qcrd[negatives.lag=3,loss.scheme=mean]") == ("qcrd", ("negatives.lag=3", "loss.scheme=mean"))
    label = "dss[teacher=clean][loss.alpha=0.3,train.lr=0.001]"
    assert split_label(label) == ("dss", ("teacher=clean", "loss.alpha=0.3", "train.lr=0.001"))
    assert setting_of(label, "teacher") == "clean" and setting_of(label, "loss.alpha") == "0.3"
    assert without_setting(label, "teacher") == "dss[loss.alpha=0.3,train.lr=0.001]"


def test_val_panels_split_by_teacher():
    """The validation curves: a panel per task, or per task and teacher where labels name one,
    with the groups that name none (finetune) in each of their task's panels."""
    from qcrd_bench.report import Group, val_panels
    from qcrd_bench.tracking import StoredRun

    def group(variant, task="synth-arith"):
        return Group(variant, task, variant, [StoredRun(variant, "0", variant, "FINISHED", 0, {"qcrd.seed": "0"},
                                                        {}, {})])

    groups = [group("finetune"), group("dss[teacher=clean]"), group("qcrd[teacher=clean]"),
              group("dss[teacher=dynamic]"), group("dss", "svamp"), group("qcrd", "svamp")]
    found = [(title, [g.variant for g in members]) for title, members in val_panels(groups)]
    assert found == [("synth-arith, teacher=clean", ["dss[teacher=clean]", "qcrd[teacher=clean]", "finetune"]),
                     ("synth-arith, teacher=dynamic", ["dss[teacher=dynamic]", "finetune"]),
                     ("svamp", ["dss", "qcrd"])]


def test_reliability_bins():
    from qcrd_bench.report import Bin, reliability_bins

    rows = [(0.0, False), (0.05, True), (0.1, True), (0.19, False), (0.95, True), (1.0, True), (1.0, False)]
    bins = reliability_bins(rows)
    assert [(b.low, b.high, b.count) for b in bins] == [(0.0, 0.1, 2), (0.1, 0.2, 2), (0.9, 1.0, 3)]  # empty: left out
    assert bins[0] == Bin(0.0, 0.1, 0.025, 0.5, 2)
    assert bins[2].mean_score == pytest.approx(2.95 / 3) and bins[2].valid_share == pytest.approx(2 / 3)
    assert [b.count for b in reliability_bins(rows, bins=2)] == [4, 3] and reliability_bins([]) == []


def test_reading_sentences():
    """A paired difference in words, from its numbers: beats or trails where the 95% interval
    excludes 0, cannot be told apart where it does not, no interval from one pair."""
    from qcrd_bench.report import Difference, Group, reading
    from qcrd_bench.tracking import StoredRun

    def group(variant, task="synth-arith"):
        return Group(variant, task, variant, [StoredRun(variant, "0", variant, "FINISHED", 0, {"qcrd.seed": "0"}, {},
                                                        {})])

    qcrd, dss = group("qcrd"), group("dss")
    groups = [qcrd, dss]
    assert reading(Difference(qcrd, dss, ["0", "1", "2"], [2.0, 2.5, 3.0]), groups) == (
        "`qcrd` beats `dss` by +2.50 pp (95% CI +1.26 to +3.74).")
    assert reading(Difference(qcrd, dss, ["0", "1", "2"], [-2.0, -2.5, -3.0]), groups) == (
        "`qcrd` trails `dss` by −2.50 pp (95% CI −3.74 to −1.26).")
    assert reading(Difference(qcrd, dss, ["0", "1", "2"], [-1.0, 0.5, 2.0]), groups) == (
        "`qcrd` cannot be told apart from `dss` (mean Δ +0.50 pp; 95% CI −3.23 to +4.23 includes 0).")
    assert reading(Difference(qcrd, dss, ["1"], [3.0]), groups) == (
        "`qcrd` is +3.00 pp against `dss` on seed 1 alone: with one pair there is no interval, so this does not "
        "tell them apart.")
    assert reading(Difference(qcrd, dss, [], []), groups) == "`qcrd` and `dss` share no seed: no difference."
    # With several tasks the sentence names the task.
    assert reading(Difference(qcrd, dss, ["1"], [3.0]), [*groups, group("dss", "svamp")]).startswith(
        "`qcrd` on synth-arith is +3.00 pp")


def test_palette_gives_a_suites_many_groups_distinct_colours():
    from qcrd_bench.report import palette

    assert len(set(palette(f"v{i}" for i in range(10)).values())) == 10  # matplotlib's default cycle
    many = palette(f"v{i}" for i in range(13))  # synth-noise on two teachers: 13 groups
    assert len(set(many.values())) == 13
    assert palette(["b", "a", "b"]) == {"b": palette(["b"])["b"], "a": palette(["b", "a"])["a"]}


def test_a_seeded_teachers_rationale_sets_are_not_flagged_as_mixed():
    from qcrd_bench.report import Group, mixed_rationale_notes
    from qcrd_bench.tracking import StoredRun

    def group(teacher_seed):
        runs = [StoredRun(f"r{i}", "0", "dss", "FINISHED", 0, {"qcrd.seed": str(i), "qcrd.teacher": "synthetic",
                                                             "qcrd.rationales_sha256": f"sha{i}"},
                          {"teacher.seed": teacher_seed}, {}) for i in range(3)]
        return Group("dss[teacher=dynamic]", "synth-arith", "cfg", runs)

    assert mixed_rationale_notes(group("-1")) == [
        "- `dss[teacher=dynamic]` on synth-arith (`cfg`) trained its seeds on 3 rationale sets: its teacher draws "
        "its samples with each run's seed (`teacher.seed` -1), so seeds differ in them by design."]
    assert mixed_rationale_notes(group("7"))[0].endswith("its seeds did not all train on the same rationales.")
