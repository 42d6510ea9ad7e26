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


def _tags(variant: str, seed: int, parent: str, **extra) -> dict[str, str]:
    base = variant.split("[")[0]
    return {"mlflow.parentRunId": parent, "qcrd.method": base, "qcrd.variant": variant, "qcrd.task": "svamp",
            "qcrd.seed": str(seed), "qcrd.preset": "paper", "qcrd.config_hash": HASH.get(variant, variant),
            "qcrd.smoke": "false", "qcrd.teacher": {"qcrd": "mcc-kd", "finetune": "none"}.get(base, "dss-palm"),
            "qcrd.loss": LOSS[base], "qcrd.rationales_sha256": "abc", **extra}


def _scored(sources: bool) -> dict[str, list]:
    """A run's negatives/scored_samples.json: 8 positives, 4 teacher and 8 student negatives,
    with a source column and a column the report does not know (``truth``), or, as an older
    run logged it, negatives only and no source."""
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
           sources: bool = True) -> str:
    """A finished training run with summary metrics, per-step curves of its loss terms and,
    for qcrd, the judge's diagnostics and scored rationales (by source unless ``sources`` is False)."""
    from mlflow.entities import Metric, Param

    run = client.create_run(experiment, start_time=start, tags=tags,
                            run_name=f"{tags['qcrd.variant']}-svamp-s{tags['qcrd.seed']}")
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
    client.log_batch(run_id, metrics=metrics, params=[Param("task.train_fraction", str(fraction)),
                                                      Param("seed", str(seed))])
    if qcrd:
        # Through the client: the fluent API would carry the active experiment of an earlier test.
        client.log_table(run_id, _scored(sources), artifact_file="negatives/scored_samples.json")
    client.set_terminated(run_id, "FINISHED", end_time=start + 1000)
    return run_id


def _parent(client, experiment: str, suite: str, baseline: str) -> str:
    run = client.create_run(experiment, start_time=1_000, run_name=f"ablate-{suite}",
                            tags={"qcrd.kind": "ablate", "qcrd.suite": suite, "qcrd.baseline": baseline})
    client.set_terminated(run.info.run_id, "FINISHED")
    return run.info.run_id


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One store for the module: a 2 variants × 2 seeds sweep (plus a stale duplicate, a
    smoke run and a teach run), a data-size sweep, a sweep of finetune, cot and dss (no
    judge, three objectives), and an empty experiment."""
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
    finally:
        mlflow.set_tracking_uri(previous)
    return {"uri": uri, "client": client, "parent": parent, "kept": kept, "smoke": smoke,
            "teach": teach.info.run_id, "sizes_parent": sizes_parent, "objectives_parent": objectives_parent}


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
            "(METHOD.md §2 and §4 do not say).") in notes
    assert ("- ² `qcrd` trained on `mcc-kd`; the paper's numbers for it used GPT-3.5-turbo samples (K = 5, "
            "τ = 0.7), per METHOD.md §3. These are the nearest set here, by assumption") in notes

    # Paired differences against dss (the default baseline), with a 95% t-interval.
    from scipy.stats import t

    diffs = [100 * (ACCURACY[("qcrd", s)] - ACCURACY[("dss", s)]) for s in (0, 1)]
    half = t.ppf(0.975, 1) * statistics.stdev(diffs) / 2 ** 0.5
    (diff,) = table(readme, "method | task | config | baseline config")
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

    # The folder was logged to the parent run.
    logged = {Path(f.path).name for f in client.list_artifacts(store["parent"], "report")}
    assert {"README.md", "results.csv", "differences.csv", "val_curves.png", "score_densities.png",
            "diagnostics.png"} <= logged


def test_smoke_runs_on_request_and_baseline_option(store, tmp_path):
    out = tmp_path / "out"
    result = invoke("--run", store["parent"], "--out", str(out), "--tracking-uri", store["uri"], "--include-smoke",
                    "--baseline", "qcrd")
    assert result.exit_code == 0, result.output
    readme = (out / "README.md").read_text()
    rows = {row["method"].strip("`"): row for row in table(readme, "method")}
    assert rows["dss"]["n"] == "3" and rows["dss"]["seeds"] == "0 1 2"
    (diff,) = table(readme, "method | task | config | baseline config")
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
            "samples (K = 5, τ = 0.7), per METHOD.md §3; the nearest set here is `mcc-kd`.")
    assert readme.split("## Notes")[1].count(note) == 1
    diffs = {row["method"].strip("`"): row for row in table(readme, "method | task | config | baseline config")}
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
