"""``qcrd-bench report``: a comparison read back from the tracking store.

Selects runs (a sweep's children, a suite's newest sweep, or a whole experiment), groups
them by (variant, task, config hash) with one run per seed, and writes ``README.md``
(the results table, paired differences against a baseline, plots, notes),
``results.csv``, ``differences.csv`` and PNG plots.  Every number in it is read from
the store, except the paper's, which come from :mod:`qcrd_bench.paper` (METHOD.md §4).
"""

from __future__ import annotations

import csv
import os
import math
import re
import shlex
import statistics
import tempfile
import textwrap
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from . import __version__, paper
from .errors import ConfigError, QcrdError
from .tracking import Store, StoredRun, tracking_uri

PRIMARY = "test/accuracy"
COVERAGE = "data/rationale_coverage"  # share of training questions with a rationale (after the positive filter)
METRICS = ("test/accuracy", "final/test_accuracy", "test/accuracy_flexible", "eval/parse_rate", "best/val_accuracy")
SKIP_KINDS = ("teach", "ablate")
SCORED = "negatives/scored_samples.json"
SOURCE_COLUMNS = ("source", "kind")  # a negative's origin, in a run that logs it
# The sources a scored rationale is labelled with, in the order (and so the colours) of every
# score panel; POOLED stands for the negatives of an older table that has no source column.
SOURCES = ("teacher positive", "teacher negative", "student negative")
POOLED = "negatives (source not logged)"
# Everything the report writes: removed first, so a plot skipped this time leaves no stale file.
OUTPUTS = ("README.md", "results.csv", "differences.csv", "val_curves.png", "score_densities.png",
           "diagnostics.png", "train_fraction.png", "loss_terms.png")


@dataclass(frozen=True)
class Diagnostic:
    """A per-step metric of the judge or the negatives, and what it means."""

    key: str
    meaning: str
    unit: bool = False  # a share or score in [0, 1]: drawn on a fixed 0–1 axis, so saturation shows


# The diagnostics figure: one panel each, for the runs that logged it (add a line to add one).
DIAGNOSTICS = (
    Diagnostic("train/neg_active_frac", "share of the examples with negatives whose negative term is non-zero: a "
               "negative it uses has CE < δ and a judge weight 1 − s_neg > 0 (MinMax uses the negative of highest "
               "CE, so every negative must be below δ)", unit=True),
    Diagnostic("train/score_pos", "the judge's mean score of the batch's positives", unit=True),
    Diagnostic("train/score_neg", "the judge's mean score of the batch's negatives", unit=True),
    Diagnostic("train/disc_acc", "the judge's accuracy at 0.5 (positives above, negatives at or below)", unit=True),
    Diagnostic("train/margin", "mean CE of the chosen negative minus that of the chosen positive (token-mean "
               "nats; all of them under Mean and W-mean)"),
    # Against ground truth: logged only on a task with a rationale checker (synth-arith).
    Diagnostic("train/judge_auroc", "AUROC of the judge's scores of the rationales the checker labels `valid` "
               "against those it does not, over each iteration's batches (0.5: chance; 1: every valid one above "
               "every other)", unit=True),
    Diagnostic("train/neg_student_invalid_frac", "share of the batch's self-play (student) negatives that the "
               "checker labels not `valid`: a valid negative pushes the student away from a right rationale",
               unit=True),
)
# Loss terms that measure the same quantity in every objective that writes them the same
# way (`L_pred`: the label's cross-entropy from `predict: x`), so their curves may share an
# axis across objectives; every other loss curve shares one only within one objective.
SHARED_TERMS = ("train/loss_pred",)
# Rows follow the paper: its methods, then its ablations, then anything else by name.
ORDER = ("finetune", "cot", "dss", "mi", "qcrd", *paper.SVAMP_STUDIES)


@dataclass
class Selection:
    name: str  # the default folder under reports/
    title: str
    parent: StoredRun | None
    runs: list[StoredRun]
    excluded: dict[str, list[StoredRun]]


@dataclass
class Group:
    """The runs of one setting: one per seed, by seed."""

    variant: str
    task: str
    config_hash: str
    runs: list[StoredRun]

    @property
    def preset(self) -> str:
        return self.runs[0].tags.get("qcrd.preset", "")

    @property
    def teacher(self) -> str:
        """The rationale source(s) of the runs; the notes flag a group that mixes them."""
        return ",".join(sorted({r.tags.get("qcrd.teacher", "?") for r in self.runs}))

    @property
    def seeds(self) -> list[str]:
        return [r.tags.get("qcrd.seed", "?") for r in self.runs]

    @property
    def by_seed(self) -> dict[str, StoredRun]:
        return dict(zip(self.seeds, self.runs))

    @property
    def train_fraction(self) -> float:
        return _float(self.runs[0].params.get("task.train_fraction"), 1.0)

    def values(self, metric: str) -> list[float]:
        """The metric of each run, in % (runs without it are left out)."""
        return [100 * r.metrics[metric] for r in self.runs if metric in r.metrics]


@dataclass
class Difference:
    group: Group
    base: Group
    seeds: list[str]
    diffs: list[float]  # percentage points, one per shared seed

    @property
    def mean(self) -> float | None:
        return statistics.mean(self.diffs) if self.diffs else None

    def interval(self) -> tuple[float, float] | None:
        """95% t-interval of the mean paired difference (None below two pairs)."""
        if len(self.diffs) < 2:
            return None
        from scipy.stats import t

        half = t.ppf(0.975, len(self.diffs) - 1) * statistics.stdev(self.diffs) / math.sqrt(len(self.diffs))
        return self.mean - half, self.mean + half


@dataclass
class Plot:
    title: str
    file: str | None  # None: skipped, ``note`` says why
    note: str = ""


@dataclass
class Report:
    selection: Selection
    groups: list[Group]
    replaced: list[tuple[StoredRun, StoredRun]]
    baseline: str | None
    baseline_why: str
    differences: list[Difference]
    plots: list[Plot] = field(default_factory=list)


def make_report(*, experiment: str | None = None, run_id: str | None = None, suite: str | None = None,
                out: str | None = None, baseline: str | None = None, include_smoke: bool = False,
                uri_option: str | None = None) -> dict:
    """Select, group, compare, plot and write; returns what the CLI prints."""
    uri = tracking_uri(uri_option)
    store = Store(uri)
    selection = select(store, experiment, run_id, suite, include_smoke)
    groups, replaced = group_runs(selection.runs)
    chosen, why = choose_baseline(baseline, selection.parent, groups)
    report = Report(selection, groups, replaced, chosen, why, differences(groups, chosen) if chosen else [])
    folder = Path(out) if out else Path("reports") / selection.name
    _check_folder(folder)
    folder.mkdir(parents=True, exist_ok=True)
    command = command_line(experiment=experiment, run_id=run_id, suite=suite, baseline=baseline, out=out,
                           include_smoke=include_smoke, uri_option=uri_option)
    # Everything is written beside the folder first and moved in at the end, so a failure
    # leaves the previous report whole rather than half replaced.
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=f".{folder.name}.") as tmp:
        stage = Path(tmp)
        report.plots = make_plots(store, groups, stage)
        (stage / "README.md").write_text(markdown(report, command, uri), encoding="utf-8")
        write_results_csv(groups, stage / "results.csv")
        write_differences_csv(report.differences, stage / "differences.csv")
        for name in OUTPUTS:
            (folder / name).unlink(missing_ok=True)
        for made in stage.iterdir():
            os.replace(made, folder / made.name)
    logged_to = None
    if selection.parent is not None:
        store.log_files(selection.parent.run_id, [folder / n for n in OUTPUTS if (folder / n).exists()], "report")
        logged_to = selection.parent.run_id
    return {"out": folder, "groups": len(groups), "runs": sum(len(g.runs) for g in groups),
            "plots": [p.file for p in report.plots if p.file], "logged_to": logged_to}


def _check_folder(folder: Path) -> None:
    """Refuse to overwrite a README.md that a report did not write (e.g. --out .)."""
    readme = folder / "README.md"
    if readme.is_file() and not readme.read_text(encoding="utf-8", errors="replace").startswith("# Report: "):
        raise ConfigError(f"--out {folder}: it holds a README.md that is not a qcrd-bench report; "
                          "choose another folder")


def command_line(*, experiment, run_id, suite, baseline, out, include_smoke, uri_option) -> str:
    parts = ["qcrd-bench", "report"]
    for flag, value in (("--experiment", experiment), ("--run", run_id), ("--suite", suite),
                        ("--baseline", baseline), ("--out", out), ("--tracking-uri", uri_option)):
        if value:
            parts += [flag, str(value)]
    if include_smoke:
        parts.append("--include-smoke")
    return shlex.join(parts)


# Selecting runs

def select(store: Store, experiment: str | None, run_id: str | None, suite: str | None,
           include_smoke: bool) -> Selection:
    given = [flag for flag, value in (("--experiment", experiment), ("--run", run_id), ("--suite", suite)) if value]
    if len(given) != 1:
        raise ConfigError("give exactly one of --experiment NAME, --run PARENT_RUN_ID or --suite NAME"
                          + (f" (got {' and '.join(given)})" if given else ""))
    if experiment:
        experiment_id = store.experiment_id(experiment)
        if experiment_id is None:
            raise ConfigError(f"--experiment {experiment!r}: no such experiment in {store.uri}")
        runs = store.search([experiment_id])
        return _selection(_safe_name(experiment), f"experiment `{experiment}`", None, runs, include_smoke,
                          f"experiment {experiment!r}")
    if suite:
        parent = _suite_parent(store, suite)
        name, what = _safe_name(suite), f"suite {suite!r} (newest parent run {parent.run_id})"
    else:
        parent = store.run(run_id)
        if parent is None:
            raise ConfigError(f"--run {run_id!r}: no such run in {store.uri}")
        name, what = f"run-{parent.run_id[:8]}", f"run {parent.run_id} (--run)"
    children = store.search([parent.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.run_id}'")
    if not children:
        raise ConfigError(f"{what} has no child runs: give the parent run of a sweep (`qcrd-bench ablate`), "
                          "or --experiment NAME")
    title = f"{'suite `' + suite + '`, ' if suite else ''}parent run `{parent.run_id}` ({parent.name})"
    return _selection(name, title, parent, children, include_smoke, what)


def _suite_parent(store: Store, suite: str) -> StoredRun:
    if "'" in suite or "\\" in suite:
        raise ConfigError(f"--suite {suite!r}: suite names with quotes or backslashes cannot be searched for")
    # A parent is not itself a child: skip children that carry the suite tag too.
    found = [r for r in store.search(store.experiment_ids(), f"tags.`qcrd.suite` = '{suite}'")
             if "mlflow.parentRunId" not in r.tags]
    if not found:
        raise ConfigError(f"--suite {suite!r}: no run tagged qcrd.suite={suite} in {store.uri}")
    return found[0]


def _selection(name: str, title: str, parent: StoredRun | None, runs: list[StoredRun], include_smoke: bool,
               what: str) -> Selection:
    kept, excluded = [], defaultdict(list)
    for run in runs:
        reason = _exclusion(run, include_smoke)
        if reason:
            excluded[reason].append(run)
        else:
            kept.append(run)
    if not kept:
        smoke = [r for reason, rs in excluded.items() if reason.startswith("smoke") for r in rs]
        hint = f"; {len(smoke)} smoke run(s) excluded (--include-smoke keeps them)" if smoke else ""
        raise ConfigError(f"{what} has no finished training runs to report{hint}")
    return Selection(name, title, parent, kept, dict(excluded))


def _exclusion(run: StoredRun, include_smoke: bool) -> str | None:
    kind = run.tags.get("qcrd.kind")
    if kind in SKIP_KINDS:
        return f"not a training run (`qcrd.kind` = {kind})"
    if "qcrd.task" not in run.tags or not variant_of(run):
        return "not a qcrd-bench training run (no `qcrd.task` / `qcrd.variant` tag)"
    if run.status != "FINISHED":
        return f"not finished (status {run.status})"
    if PRIMARY not in run.metrics:
        return f"no `{PRIMARY}` metric"
    if run.tags.get("qcrd.smoke") == "true" and not include_smoke:
        return "smoke run (`qcrd.smoke` = true; --include-smoke keeps it)"
    return None


def variant_of(run: StoredRun) -> str:
    return run.tags.get("qcrd.variant") or run.tags.get("qcrd.method", "")


def split_label(label: str) -> tuple[str, tuple[str, ...]]:
    """An ablate label into its variant and varied settings:
    ``qcrd[negatives.lag=3,loss.scheme=mean]`` → ("qcrd", ("negatives.lag=3", "loss.scheme=mean"))."""
    found = re.fullmatch(r"(.*?)\[(.*)\]", label)
    return (found.group(1), tuple(p for p in found.group(2).split(",") if p)) if found else (label, ())


def without_fraction(label: str) -> str:
    """The label with a varied ``task.train_fraction`` removed (the fraction is read from params)."""
    base, point = split_label(label)
    rest = [p for p in point if not p.startswith("task.train_fraction=")]
    return base + (f"[{','.join(rest)}]" if rest else "")


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "report"


# Grouping and comparing

def group_runs(runs: list[StoredRun]) -> tuple[list[Group], list[tuple[StoredRun, StoredRun]]]:
    """Groups by (variant, task, config hash), one run per seed: the newest where a seed
    repeats.  Also returns (older run, the run that replaced it) pairs."""
    seeds: dict[tuple[str, str, str], dict[str, StoredRun]] = defaultdict(dict)
    replaced = []
    for run in sorted(runs, key=lambda r: r.start_time, reverse=True):
        key = (variant_of(run), run.tags["qcrd.task"], run.tags.get("qcrd.config_hash", "?"))
        seed = run.tags.get("qcrd.seed", "?")
        if seed in seeds[key]:
            replaced.append((run, seeds[key][seed]))
        else:
            seeds[key][seed] = run
    groups = [Group(*key, [by_seed[s] for s in sorted(by_seed, key=_seed_order)]) for key, by_seed in seeds.items()]
    return sorted(groups, key=_group_order), replaced


def _seed_order(seed: str):
    return (0, int(seed), "") if re.fullmatch(r"-?\d+", seed) else (1, 0, seed)


def _group_order(group: Group):
    tasks = paper.TASKS
    base = split_label(group.variant)[0]
    variant_rank = ORDER.index(base) if base in ORDER else len(ORDER)
    return (tasks.index(group.task) if group.task in tasks else len(tasks), group.task, variant_rank, group.variant,
            group.preset, group.train_fraction, group.config_hash)


def choose_baseline(option: str | None, parent: StoredRun | None, groups: list[Group]) -> tuple[str | None, str]:
    """(baseline variant or None, why it was chosen)."""
    variants = sorted({g.variant for g in groups})
    known = set(variants) | {split_label(v)[0] for v in variants}
    if option:
        if option not in known:
            raise ConfigError(f"--baseline {option!r}: no runs of that variant in this report; "
                              f"variants: {', '.join(variants)}")
        return option, "chosen with --baseline"
    tag = parent.tags.get("qcrd.baseline", "") if parent else ""
    if tag in known:
        return tag, "the parent run's `qcrd.baseline` tag"
    missing = f"the parent's `qcrd.baseline` tag names `{tag}`, which has no runs here; " if tag else ""
    if "dss" in known:
        return "dss", missing + "`dss`, the default baseline"
    return None, missing + "no baseline: no `--baseline` given and no `dss` runs"


def is_baseline(group: Group, baseline: str) -> bool:
    return baseline in (group.variant, split_label(group.variant)[0])


def differences(groups: list[Group], baseline: str) -> list[Difference]:
    """Each non-baseline group against a baseline group of the same task, preset and train
    fraction, paired by seed.  The baseline group is the one labelled exactly ``baseline``,
    else the one with the same varied settings (``qcrd[task.train_fraction=0.5]`` pairs with
    ``dss[task.train_fraction=0.5]``); among several, the one sharing the most seeds."""
    result = []
    for group in groups:
        if is_baseline(group, baseline):
            continue
        point = split_label(group.variant)[1]
        candidates = [b for b in groups if is_baseline(b, baseline) and b.task == group.task
                      and b.preset == group.preset and b.train_fraction == group.train_fraction
                      and (b.variant == baseline or split_label(b.variant)[1] == point)]
        if not candidates:
            continue
        base = max(candidates, key=lambda b: (b.variant == baseline, len(set(b.seeds) & set(group.seeds)),
                                              b.runs[0].start_time))
        shared = [s for s in group.seeds if s in base.by_seed]
        diffs = [100 * (group.by_seed[s].metrics[PRIMARY] - base.by_seed[s].metrics[PRIMARY]) for s in shared]
        result.append(Difference(group, base, shared, diffs))
    return result


def mean_std(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else None


def paper_values(group: Group) -> tuple[paper.PaperValue | None, paper.PaperValue | None]:
    """(T5-base, T5-small) published numbers for the group's variant, task and train fraction."""
    name = without_fraction(group.variant)
    return (paper.lookup(name, group.task, "t5-base", group.train_fraction),
            paper.lookup(name, group.task, "t5-small", group.train_fraction))


def teacher_note(group: Group) -> str | None:
    """Why the paper's numbers beside the group may rest on other rationales than its runs'
    (``qcrd.teacher``), or None where they do not or the row shows no paper number."""
    if not any(paper_values(group)):
        return None
    name = without_fraction(group.variant)
    known = paper.teacher(name)
    ours = sorted({r.tags.get("qcrd.teacher", "?") for r in group.runs})
    used = f"`{_cell(name)}` trained on {', '.join(f'`{_cell(t)}`' for t in ours)}"
    if known.name == paper.UNKNOWN:
        return f"{used}; the teacher behind the paper's numbers for it is not known ({known.where})."
    if set(ours) <= set(known.ours):
        return None
    paper_used = f"the paper's numbers for it used {known.name}, per {known.where}"
    if set(ours) <= set(known.ours + known.nearest):
        return f"{used}; {paper_used}. These are the nearest set here, by assumption: not the paper's own samples."
    nearest = f"; the nearest set here is {', '.join(f'`{t}`' for t in known.nearest)}" if known.nearest else ""
    return f"{used}, but {paper_used}{nearest}."


def teacher_notes(groups: list[Group]) -> dict[int, tuple[str, str]]:
    """(marker, note) by ``id(group)``: one numbered marker per distinct note."""
    markers: dict[str, str] = {}
    found = {}
    for g in groups:
        note = teacher_note(g)
        if note:
            marker = markers.setdefault(note, _superscript(len(markers) + 1))
            found[id(g)] = (marker, note)
    return found


def _superscript(number: int) -> str:
    return str(number).translate(str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹"))


# Writing

def markdown(report: Report, command: str, uri: str) -> str:
    sel = report.selection
    lines = [f"# Report: {sel.title}", "", "Produced by:", "", "```bash", command, "```", "",
             f"Tracking store `{uri}`; generated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} "
             f"by qcrd-bench {__version__}. {sum(len(g.runs) for g in report.groups)} runs in "
             f"{len(report.groups)} groups (variant × task × config hash)."]
    if sel.parent is not None:
        lines.append(f"This folder is also logged to the parent run `{sel.parent.run_id}` under `report/`.")
        lines += ["", *sweep_origin(sel.parent)]
    lines += ["", *results_section(report.groups)]
    lines += ["", *differences_section(report)]
    lines += ["", *plots_section(report.plots)]
    lines += ["", *notes_section(report)]
    return "\n".join(lines) + "\n"


def sweep_origin(parent: StoredRun) -> list[str]:
    """How the parent's runs were made, from its tags and params, so a reader can re-run them."""
    suite = parent.tags.get("qcrd.suite")
    if suite:
        return [f"The runs come from `qcrd-bench ablate --suite {suite}` (`benchmarks/suites/{suite}.yaml`)."]
    grid = ", ".join(f"{key} {parent.params[key]}" for key in ("variants", "tasks", "seeds", "preset")
                     if parent.params.get(key))
    return [f"The runs come from `qcrd-bench ablate` ({grid})."] if grid else []


def results_section(groups: list[Group]) -> list[str]:
    lines = ["## Results", "",
             "Accuracy in %, mean ± sample std over seeds (one run per seed; the newest where a seed repeats); "
             "↑ higher is better. `teacher` is where the runs' rationales came from (`none`: the method "
             "uses none). `rationales` is `data/rationale_coverage`: the share of training questions left with at "
             "least one rationale after the positive filter (under `self-consistency`, one in the majority), "
             "mean over the runs (– where the runs used none); the other questions train without a rationale "
             "target. A superscript on `teacher` points to a note under Notes: the paper's numbers beside that "
             "row were not trained on the same rationales as ours, or METHOD.md does not say whose they were. "
             "`config` is the runs' `qcrd.config_hash` (the resolved config without the seed): rows with "
             "different hashes are different settings. `test acc.` is `test/accuracy` at the best "
             "validation step, `final` is `final/test_accuracy`, `flexible` is `test/accuracy_flexible`, "
             "`parse` is `eval/parse_rate`.",
             "",
             "**Paper columns** are the QCRD paper's published numbers (METHOD.md §4, `qcrd_bench/paper.py`) for the "
             "same method and task: T5-base from Table 1 (the SVAMP ablation tables 4, 5 and the negatives table for "
             "`qcrd-*` variants; Fig. 4 below 100% of train), T5-small from Table 2. They are shown beside ours "
             "whatever the preset, for orientation only: the paper's students, budget and seeds are not ours "
             "(`paper` preset: T5-v1.1-base, 10k steps; `cpu`: MiniLM; `smoke`: a tiny T5), so a gap is not by "
             "itself a failed reproduction.",
             "",
             "| method | task | teacher | rationales | preset | train | config | n | seeds | test acc. ↑ | final ↑ "
             "| flexible ↑ | parse | paper T5-base | paper T5-small |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    notes = teacher_notes(groups)
    for g in groups:
        base, small = paper_values(g)
        marker = f" {notes[id(g)][0]}" if id(g) in notes else ""
        cells = [f"`{_cell(g.variant)}`", g.task, f"`{_cell(g.teacher)}`{marker}", fmt_mean(g.values(COVERAGE)),
                 g.preset or "–", f"{g.train_fraction:.0%}", f"`{g.config_hash}`", str(len(g.runs)),
                 " ".join(g.seeds), fmt_mean_std(g.values(PRIMARY)),
                 fmt_mean_std(g.values("final/test_accuracy")), fmt_mean_std(g.values("test/accuracy_flexible")),
                 fmt_mean_std(g.values("eval/parse_rate")), fmt_paper(base), fmt_paper(small)]
        lines.append("| " + " | ".join(cells) + " |")
    if len({g.task for g in groups}) > 1:
        lines += ["", *pivot(groups)]
    return lines


def pivot(groups: list[Group]) -> list[str]:
    """Methods × tasks at a glance: test accuracy, mean ± std (n)."""
    tasks = list(dict.fromkeys(g.task for g in groups))
    variants = list(dict.fromkeys(g.variant for g in sorted(groups, key=lambda g: _group_order(g)[2:])))
    lines = ["Methods × tasks (`test/accuracy` %, mean ± std (n); a cell with several settings names each "
             "config hash):", "", "| method | " + " | ".join(tasks) + " |", "|---|" + "---|" * len(tasks)]
    for variant in variants:
        cells = []
        for task in tasks:
            found = [g for g in groups if g.variant == variant and g.task == task]
            text = [f"{fmt_mean_std(g.values(PRIMARY))} ({len(g.runs)})" + (f" `{g.config_hash}`" if len(found) > 1
                                                                             else "") for g in found]
            cells.append("<br>".join(text) or "–")
        lines.append(f"| `{_cell(variant)}` | " + " | ".join(cells) + " |")
    return lines


def differences_section(report: Report) -> list[str]:
    if report.baseline is None:
        return ["## Paired differences", "", f"None computed: {report.baseline_why}. "
                "Pass `--baseline VARIANT` to compare against one."]
    lines = [f"## Paired differences vs `{_cell(report.baseline)}`", "",
             f"Baseline: {report.baseline_why}. Per seed, Δ = method − baseline in `{PRIMARY}` (percentage points), "
             "paired with the baseline's run of the same seed on the same task, preset and train fraction; mean Δ "
             "and a 95% t-interval (mean ± t₀.₉₇₅,ₙ₋₁ · s/√n) over the pairs.", ""]
    if not report.differences:
        return lines + ["No group has a baseline group of the same task, preset and train fraction."]
    lines += ["| method | task | config | baseline config | pairs | seeds | mean Δ (pp) | 95% CI (pp) |",
              "|---|---|---|---|---|---|---|---|"]
    for d in report.differences:
        interval = d.interval()
        ci = (f"[{interval[0]:+.2f}, {interval[1]:+.2f}]" if interval else
              "no interval (n < 2)" if d.diffs else "no shared seeds")
        mean = f"{d.mean:+.2f}" if d.diffs else "–"
        lines.append(f"| `{_cell(d.group.variant)}` | {d.group.task} | `{d.group.config_hash}` | "
                     f"`{d.base.config_hash}` | {len(d.diffs)} | {' '.join(d.seeds) or '–'} | {mean} | {ci} |")
    return lines


def plots_section(plots: list[Plot]) -> list[str]:
    lines = ["## Plots", ""]
    for plot in plots:
        if plot.file:
            lines += [f"### {plot.title}", "", f"![{plot.title}]({plot.file})", ""]
            if plot.note:
                lines += [plot.note, ""]
    skipped = [p for p in plots if not p.file]
    if skipped:
        lines += ["Skipped:", ""] + [f"- {p.title}: {p.note}" for p in skipped]
    while lines[-1] == "":
        lines.pop()
    return lines


def notes_section(report: Report) -> list[str]:
    lines = ["## Notes", ""]
    for reason, runs in sorted(report.selection.excluded.items()):
        lines.append(f"- Excluded {len(runs)} run(s), {reason}: {_names(runs)}.")
    for old, new in report.replaced:
        lines.append(f"- Seed {old.tags.get('qcrd.seed')} of `{_cell(variant_of(old))}` on {old.tags['qcrd.task']} "
                     f"ran more than once: run `{new.run_id}` (newest) is used, `{old.run_id}` is not.")
    for g in report.groups:
        for tag in ("qcrd.teacher", "qcrd.rationales_sha256"):
            found = sorted({r.tags.get(tag, "?") for r in g.runs})
            if len(found) > 1:
                lines.append(f"- `{_cell(g.variant)}` on {g.task} (`{g.config_hash}`) mixes `{tag}` values "
                             f"{', '.join(found)}: its seeds did not all train on the same rationales.")
    for marker, note in dict.fromkeys(teacher_notes(report.groups).values()):
        lines.append(f"- {marker} {note}")
    if report.baseline:
        unmatched = {id(d.group) for d in report.differences}
        for g in report.groups:
            if not is_baseline(g, report.baseline) and id(g) not in unmatched:
                lines.append(f"- No `{_cell(report.baseline)}` runs with the preset and train fraction of "
                             f"`{_cell(g.variant)}` on {g.task} (`{g.config_hash}`): no paired difference.")
    lines.append("- Every number above is read from the tracking store, except the paper columns "
                 "(`qcrd_bench/paper.py`, from METHOD.md §4) and the paper's teachers in the notes (from §2, §3).")
    return lines


def _names(runs: list[StoredRun], most: int = 10) -> str:
    text = ", ".join(f"`{r.name}` ({r.run_id[:8]})" if r.name else f"`{r.run_id}`" for r in runs[:most])
    return text + (f" and {len(runs) - most} more" if len(runs) > most else "")


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def fmt_mean_std(values: list[float]) -> str:
    mean, std = mean_std(values)
    if mean is None:
        return "–"
    return f"{mean:.2f}" if std is None else f"{mean:.2f} ± {std:.2f}"


def fmt_mean(values: list[float]) -> str:
    return f"{statistics.mean(values):.2f}" if values else "–"


def fmt_paper(value: paper.PaperValue | None) -> str:
    if value is None:
        return "–"
    # As printed in the paper: one decimal where that is exact, else two.
    return f"{value.value:.1f}" if round(value.value, 1) == value.value else f"{value.value:.2f}"


def write_results_csv(groups: list[Group], path: Path) -> None:
    header = ["method", "task", "teacher", "rationale_coverage_mean_pct", "rationale_coverage_n", "preset",
              "train_fraction", "config_hash", "n", "seeds", "run_ids"]
    for metric in METRICS:
        stem = metric.replace("/", "_")
        header += [f"{stem}_mean_pct", f"{stem}_std_pct", f"{stem}_n"]
    header += ["paper_t5_base_pct", "paper_t5_base_source", "paper_t5_small_pct", "paper_t5_small_source",
               "paper_teacher", "teacher_note"]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for g in groups:
            coverage = g.values(COVERAGE)
            row = [g.variant, g.task, g.teacher, _num(mean_std(coverage)[0]), len(coverage), g.preset,
                   g.train_fraction, g.config_hash, len(g.runs), " ".join(g.seeds), " ".join(r.run_id for r in g.runs)]
            for metric in METRICS:
                values = g.values(metric)
                mean, std = mean_std(values)
                row += [_num(mean), _num(std), len(values)]
            for value in paper_values(g):
                row += [_num(value.value if value else None), value.source if value else ""]
            row += [paper.teacher(without_fraction(g.variant)).name if any(paper_values(g)) else "",
                    teacher_note(g) or ""]
            writer.writerow(row)


def write_differences_csv(diffs: list[Difference], path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["method", "task", "config_hash", "baseline", "baseline_config_hash", "pairs", "seeds",
                         "mean_diff_pp", "ci95_low_pp", "ci95_high_pp"])
        for d in diffs:
            interval = d.interval() or (None, None)
            writer.writerow([d.group.variant, d.group.task, d.group.config_hash, d.base.variant, d.base.config_hash,
                             len(d.diffs), " ".join(d.seeds), _num(d.mean), _num(interval[0]), _num(interval[1])])


def _num(value: float | None) -> str:
    return "" if value is None else repr(float(value))


def _float(text: str | None, default: float) -> float:
    try:
        return float(text) if text not in (None, "", "None") else default
    except ValueError:
        return default


# Plots

def make_plots(store: Store, groups: list[Group], folder: Path) -> list[Plot]:
    return [plot_val_curves(store, groups, folder), plot_score_densities(store, groups, folder),
            plot_diagnostics(store, groups, folder), plot_train_fraction(groups, folder),
            plot_loss_terms(store, groups, folder)]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    return plt


def _figure(panels: int, title: str):
    plt = _pyplot()
    cols = min(panels, 3)
    rows = math.ceil(panels / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.8 * rows), squeeze=False)
    for ax in axes.flat[panels:]:
        ax.set_visible(False)
    fig.suptitle(title)
    return fig, list(axes.flat[:panels])


def _save(fig, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)
    return path.name


def label(group: Group, groups: list[Group], with_task: bool = False) -> str:
    """The variant, told apart from its siblings on the same task by train fraction or hash."""
    text = group.variant
    siblings = [g for g in groups if g.variant == group.variant and g.task == group.task and g is not group]
    if siblings:
        fractions = {g.train_fraction for g in siblings}
        text += (f" ({group.train_fraction:.0%} train)" if group.train_fraction not in fractions
                 else f" [{group.config_hash[:6]}]")
    return f"{text} · {group.task}" if with_task else text


def palette(names) -> dict[str, str]:
    """One colour per name, the same in every panel and plot of a report."""
    cycle = _pyplot().rcParams["axes.prop_cycle"].by_key()["color"]
    return {name: cycle[i % len(cycle)] for i, name in enumerate(dict.fromkeys(names))}


def mean_curve(histories: list[dict[int, float]]) -> tuple[list[int], list[float], list[float]]:
    """Mean and sample std over runs at each step any of them logged (std 0 below two)."""
    steps = sorted({s for h in histories for s in h})
    means, stds = [], []
    for step in steps:
        values = [h[step] for h in histories if step in h]
        means.append(statistics.mean(values))
        stds.append(statistics.stdev(values) if len(values) > 1 else 0.0)
    return steps, means, stds


def _curve_panel(ax, steps, means, stds, name: str, color: str, scale: float = 1.0) -> None:
    means, stds = [scale * m for m in means], [scale * s for s in stds]
    ax.plot(steps, means, label=name, linewidth=1.4, color=color)
    if any(stds):
        ax.fill_between(steps, [m - s for m, s in zip(means, stds)], [m + s for m, s in zip(means, stds)],
                        color=color, alpha=0.15, linewidth=0)


def _histories(store: Store, group: Group, key: str) -> list[dict[int, float]]:
    return [h for h in (dict(store.history(r.run_id, key)) for r in group.runs if key in r.metrics) if h]


def plot_val_curves(store: Store, groups: list[Group], folder: Path) -> Plot:
    title = "Validation accuracy per method"
    series = {id(g): _histories(store, g, "val/accuracy") for g in groups}
    shown = [g for g in groups if series[id(g)]]
    if not shown:
        return Plot(title, None, "no run logged `val/accuracy`.")
    tasks = list(dict.fromkeys(g.task for g in shown))
    fig, axes = _figure(len(tasks), "val/accuracy (mean ± std over seeds)")
    colors = palette(label(g, groups) for g in groups)
    for ax, task in zip(axes, tasks):
        for g in (g for g in shown if g.task == task):
            _curve_panel(ax, *mean_curve(series[id(g)]), label(g, groups), colors[label(g, groups)], scale=100)
        ax.set(title=task, xlabel="step", ylabel="validation accuracy (%)")
        ax.legend(fontsize=7)
    return Plot(title, _save(fig, folder / "val_curves.png"), "Shaded: ± one sample std over seeds.")


def diagnostic_panels(groups: list[Group]) -> list[tuple[Diagnostic, list[Group]]]:
    """(diagnostic, the groups that logged it) per panel of the diagnostics figure."""
    panels = [(d, [g for g in groups if any(d.key in r.metrics for r in g.runs)]) for d in DIAGNOSTICS]
    return [(d, members) for d, members in panels if members]


def plot_diagnostics(store: Store, groups: list[Group], folder: Path) -> Plot:
    """Whether QCRD's parts did anything: the judge's scores and accuracy, the negatives' margin
    and how often their term was active, over training."""
    title = "Judge and negatives diagnostics"
    panels = diagnostic_panels(groups)
    keys = ", ".join(f"`{d.key}`" for d in DIAGNOSTICS)
    if not panels:
        return Plot(title, None, f"no run logged {keys} (only methods with a judge or negatives do; the "
                                  "ground-truth ones only on a task with a rationale checker).")
    fig, axes = _figure(len(panels), "judge and negatives (mean ± std over seeds)")
    many_tasks = len({g.task for g in groups}) > 1
    colors = palette(label(g, groups, with_task=many_tasks) for g in groups)
    for ax, (diagnostic, members) in zip(axes, panels):
        for g in members:
            name = label(g, groups, with_task=many_tasks)
            _curve_panel(ax, *mean_curve(_histories(store, g, diagnostic.key)), name, colors[name])
        if diagnostic.unit:
            ax.set_ylim(-0.05, 1.05)
        ax.set(title=diagnostic.key, xlabel="step")
        ax.legend(fontsize=7)
    shown = {d.key for d, _ in panels}
    missing = [f"`{d.key}`" for d in DIAGNOSTICS if d.key not in shown]
    note = ("One panel per metric, a line per setting that logged it (mean over seeds, shaded ± one sample std); "
            "shares and scores on a fixed 0–1 axis. "
            + " ".join(f"`{d.key}`: {d.meaning}." for d, _ in panels)
            + " A judge that scores positives ≈ 1 and negatives ≈ 0 throughout is saturated: its weights in L_cl "
              "(s_pos, 1 − s_neg) are then ≈ 1 everywhere, as without a judge."
            + (f" No run logged {', '.join(missing)}." if missing else ""))
    return Plot(title, _save(fig, folder / "diagnostics.png"), note)


def objective(group: Group) -> str:
    """The group's objective as its runs are tagged (``qcrd.loss``, a formula)."""
    found = sorted({r.tags.get("qcrd.loss", "") for r in group.runs})
    return " | ".join(found) if found != [""] else f"`{group.variant}`, no `qcrd.loss` tag"


def loss_axis(group: Group, key: str) -> str:
    """What the group's curve of loss metric ``key`` measures: curves share an axis only where
    this is the same.  A term in SHARED_TERMS is its symbol as the formula writes it (with any
    qualifier, e.g. ``L_pred[...]``); anything else, the total included, is the whole formula."""
    formula = objective(group)
    return (key in SHARED_TERMS and _term(key, formula)) or formula


def _term(key: str, formula: str) -> str | None:
    """The symbol of loss metric ``key`` (``train/loss_pred``: ``L_pred``) as ``formula`` first
    writes it, with any qualifier (``L_pred[...]``); None where it does not."""
    symbol = "L_" + key.removeprefix("train/loss_")
    found = re.search(rf"(?<!\w){re.escape(symbol)}(?!\w)(\[[^\]]*\])?", formula)
    return found.group(0) if found else None


def loss_panels(groups: list[Group]) -> list[tuple[str, str, list[Group]]]:
    """(metric, what it measures, the groups that logged it) per panel of the loss plot: one
    panel per ``train/loss*`` metric and per distinct ``loss_axis``."""
    keys = sorted({k for g in groups for r in g.runs for k in r.metrics if k.startswith("train/loss")})
    panels: dict[tuple[str, str], list[Group]] = {}
    for key in keys:
        for g in groups:
            if any(key in r.metrics for r in g.runs):
                panels.setdefault((key, loss_axis(g, key)), []).append(g)
    return [(key, axis, members) for (key, axis), members in panels.items()]


def plot_loss_terms(store: Store, groups: list[Group], folder: Path) -> Plot:
    title = "Loss terms over training"
    panels = loss_panels(groups)
    if not panels:
        return Plot(title, None, "no run logged `train/loss*` metrics.")
    fig, axes = _figure(len(panels), "loss terms (mean ± std over seeds)")
    many_tasks = len({g.task for g in groups}) > 1
    colors = palette(label(g, groups, with_task=many_tasks) for g in groups)
    for ax, (key, axis, members) in zip(axes, panels):
        for g in members:
            histories = _histories(store, g, key)
            name = label(g, groups, with_task=many_tasks)
            if histories:
                _curve_panel(ax, *mean_curve(histories), name, colors[name])
        shared = key in SHARED_TERMS and _term(key, axis) == axis
        what = f"= {axis}" if key == "train/loss" else f"{axis}, in any objective" if shared else f"a term of {axis}"
        ax.set_title(f"{key}\n{textwrap.fill(what, 60)}", fontsize=8)
        ax.set(xlabel="step")
        ax.legend(fontsize=7)
    keys = dict.fromkeys(key for key, _, _ in panels)
    shared = ", ".join(f"`{k}`" for k in SHARED_TERMS)
    note = ("One panel per metric and objective, so that one axis never holds different objectives: `train/loss` "
            "(the total) and each term share a panel only among runs with the same `qcrd.loss` formula (the title's "
            f"second line), except {shared}, which share one wherever the formula writes the term the same way "
            "(a term with a qualifier, `L_pred[…]`, is another quantity and gets its own). "
            f"Shaded: ± one sample std over seeds. Metrics: {', '.join(f'`{k}`' for k in keys)}.")
    return Plot(title, _save(fig, folder / "loss_terms.png"), note)


def plot_score_densities(store: Store, groups: list[Group], folder: Path) -> Plot:
    """The paper's Fig. 6 as far as the runs logged it: discriminator scores of negatives."""
    title = "Discriminator score densities (Fig. 6)"
    scored, unreadable = {}, []
    for g in groups:
        tables = []
        # Only runs with a discriminator and negatives log scores (`train/score_neg` with them).
        for run in (r for r in g.runs if "train/score_neg" in r.metrics):
            try:
                tables.append(store.table(run.run_id, SCORED))
            except (QcrdError, OSError) as exc:  # e.g. an artifact store that is not reachable from here
                why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                unreadable.append(f"`{run.name or run.run_id}` ({why})")
        tables = [t for t in tables if t and t.get("score")]
        if tables:
            scored[id(g)] = tables
    shown = [g for g in groups if id(g) in scored]
    missing = f" Could not read the table of {', '.join(unreadable)}." if unreadable else ""
    if not shown:
        return Plot(title, None, (f"could not read `{SCORED}` of {', '.join(unreadable)}." if unreadable else
                                  f"no run logged `{SCORED}` (only methods with a discriminator and negatives do)."))
    from matplotlib.colors import to_rgba

    by_source = {id(g): _scores_by_source(scored[id(g)]) for g in shown}
    colors = source_colors(s for found in by_source.values() for s in found)
    fig, axes = _figure(len(shown), "discriminator scores by source")
    many_tasks = len({g.task for g in groups}) > 1
    for ax, g in zip(axes, shown):
        for source, scores in sorted(by_source[id(g)].items(), key=lambda item: list(colors).index(item[0])):
            ax.hist(scores, bins=20, range=(0, 1), density=True, histtype="stepfilled", linewidth=1.4,
                    edgecolor=colors[source], facecolor=to_rgba(colors[source], 0.2),
                    label=f"{source} (n={len(scores)})")
        positives = [v for r in g.runs for _, v in store.history(r.run_id, "train/score_pos")]
        if positives:
            ax.axvline(statistics.mean(positives), linestyle="--", linewidth=1, color=colors[SOURCES[0]],
                       label="positives: mean of train/score_pos")
        ax.set(title=label(g, groups, with_task=many_tasks), xlabel="discriminator score", ylabel="density")
        ax.legend(fontsize=7)
    pooled = [label(g, groups, with_task=many_tasks) for g in shown if POOLED in by_source[id(g)]]
    note = ("Histograms (density) of the `score` column of each run's `" + SCORED + "`, pooled over seeds, one "
            "panel per setting, one colour per source in every panel (its `source` column: "
            + ", ".join(SOURCES) + ")."
            + (f" The tables of {', '.join(f'`{_cell(p)}`' for p in pooled)} (older runs) do not say where a "
               f"rationale came from: their teacher and student negatives are pooled as '{POOLED}'." if pooled else "")
            + " The dashed line is the mean of `train/score_pos` (batch means of the positives' scores) over "
              "training." + missing)
    return Plot(title, _save(fig, folder / "score_densities.png"), note)


def source_colors(found) -> dict[str, str]:
    """One colour per source of a scored rationale, the same in every panel: the known
    sources first, in SOURCES order, whether or not a panel has them."""
    return palette([*SOURCES, POOLED, *sorted(set(found) - {*SOURCES, POOLED})])


def _scores_by_source(tables: list[dict[str, list]]) -> dict[str, list[float]]:
    """Scores by source (POOLED for a table without a source column); other columns are ignored."""
    result: dict[str, list[float]] = defaultdict(list)
    for table in tables:
        column = next((c for c in SOURCE_COLUMNS if c in table), None)
        sources = table[column] if column else [None] * len(table["score"])
        for source, score in zip(sources, table["score"]):
            if isinstance(score, (int, float)):
                result[POOLED if source is None else str(source)].append(float(score))
    return dict(result)


def plot_train_fraction(groups: list[Group], folder: Path) -> Plot:
    """Fig. 4: test accuracy against the fraction of the training set."""
    title = "Accuracy vs train fraction (Fig. 4)"
    lines: dict[tuple[str, str, tuple], list[Group]] = defaultdict(list)
    for g in groups:  # an ablate sweep labels each fraction as a variant of its own
        lines[(without_fraction(g.variant), g.task, _setting(g))].append(g)
    lines = {k: sorted(v, key=lambda g: g.train_fraction) for k, v in lines.items()
             if len({g.train_fraction for g in v}) > 1}
    if not lines:
        return Plot(title, None, "every setting ran at a single `task.train_fraction`.")
    tasks = list(dict.fromkeys(task for _, task, _ in lines))
    fig, axes = _figure(len(tasks), "test/accuracy vs train fraction (mean ± std over seeds)")
    same_variant = defaultdict(int)
    for variant, t, _ in lines:
        same_variant[(variant, t)] += 1
    names = {key: key[0] + (f" [{line[0].config_hash[:6]}…]" if same_variant[key[:2]] > 1 else "")
             for key, line in lines.items()}
    colors = palette([*names.values(), *(v for v, _, _ in lines)])
    for ax, task in zip(axes, tasks):
        for key, line in lines.items():
            if key[1] != task:
                continue
            stats = [mean_std(g.values(PRIMARY)) for g in line]
            ax.errorbar([100 * g.train_fraction for g in line], [m for m, _ in stats],
                        yerr=[s or 0 for _, s in stats], marker="o", capsize=3, label=names[key],
                        color=colors[names[key]])
        for variant in dict.fromkeys(v for v, t, _ in lines if t == task):
            points = paper.data_size_curve(variant, task)
            if points:
                ax.plot([100 * f for f, _ in points], [v for _, v in points], linestyle=":", marker="x",
                        color=colors[variant], label=f"{variant}, paper T5-base")
        ax.set(title=task, xlabel="train fraction (%)", ylabel="test accuracy (%)")
        ax.legend(fontsize=7)
    return Plot(title, _save(fig, folder / "train_fraction.png"),
                "Dotted: the paper's Fig. 4 (T5-base), where it has the method and task.")


# Params that differ between the runs of one line: the seed, the fraction itself, and a
# config-built student's size, whose tokenizer learns the (smaller) training text.
NOT_SETTING = ("seed", "task.train_fraction", "student.seed", "student.n_params", "student.vocab_size")


def _setting(group: Group) -> tuple:
    """The group's params apart from seed and train fraction: which groups form one line."""
    return tuple(sorted((k, v) for k, v in group.runs[0].params.items() if k not in NOT_SETTING))
