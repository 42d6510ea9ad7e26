"""``qcrd-bench report``: a comparison read back from the tracking store.

Selects runs (a sweep's children, a suite's newest sweep, or a whole experiment), groups
them by (variant, task, config hash) with one run per seed, and writes ``README.md``
(the results table, paired differences against a baseline, on a task with a rationale
checker the components measured against its labels, plots, notes), ``results.csv``,
``runs.csv`` (each run's own numbers, so the pairs can be redone without the store),
``differences.csv``, ``components.csv`` (where there are components) and PNG plots.
Every number in it is read from the store, except the paper's, which come from
:mod:`qcrd_bench.paper` (docs/method.md §4).
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
# The answer read from the student's own rationale (its last result), on a task with a checker:
# compared like PRIMARY where both sides of a pair logged it.
RATIONALE_ANSWER = "test/rationale_answer_accuracy"
# The share of the test questions whose own rationale the checker labels `valid`: where an
# unfaithful teacher (right answers, wrong steps) shows, which neither answer reading sees.
RATIONALE_VALID = "test/rationale_valid"
JUDGE_AUROC = "train/judge_auroc"
# The mean of a run's validation accuracies over its evaluations (one every train.eval_every
# steps): how fast it learned, where runs that end at the same accuracy got there at different steps.
LEARNING = "val/mean_accuracy"
PAIRED = (PRIMARY, RATIONALE_ANSWER, RATIONALE_VALID, LEARNING)
# What each paired metric reads, in the differences section and the noise plot's note.
READS = {PRIMARY: "the answer the student predicts",
         RATIONALE_ANSWER: "the answer read from the student's own `explain:` rationale, its last result",
         RATIONALE_VALID: "the share of test questions whose own rationale the checker labels `valid`: every step "
                          "right and faithful to the problem",
         LEARNING: "the mean of the run's validation accuracies over its evaluations, how fast it learned"}
# Why a paired metric other than PRIMARY is worth reading, under its heading.
WHY = {RATIONALE_ANSWER: "on a task with a rationale checker the label head may gain nothing from rationales while the "
                         "rationale head does",
       RATIONALE_VALID: "a teacher's unfaithful steps show only in the rationales' validity",
       LEARNING: "runs that end at the same accuracy may have got there at different steps (`val_curves.png` draws "
                 "the curves); runs logged before the trainer recorded it get it from their `val/accuracy` history"}
COVERAGE = "data/rationale_coverage"  # share of training questions with a rationale (after the positive filter)
METRICS = ("test/accuracy", "final/test_accuracy", "test/accuracy_flexible", "eval/parse_rate", "best/val_accuracy")
# runs.csv: every run's own value of these, beside METRICS (blank where a run did not log one).
RUN_METRICS = (*METRICS, RATIONALE_ANSWER, RATIONALE_VALID, LEARNING, "best/step", "time/run_seconds")
SKIP_KINDS = ("teach", "ablate")
SCORED = "negatives/scored_samples.json"
SOURCE_COLUMNS = ("source", "kind")  # a negative's origin, in a run that logs it
# The sources a scored rationale is labelled with, in the order (and so the colours) of every
# score panel; POOLED stands for the negatives of an older table that has no source column.
SOURCES = ("teacher positive", "teacher negative", "student negative")
POOLED = "negatives (source not logged)"
# Everything the report writes: removed first, so a plot skipped this time leaves no stale file.
OUTPUTS = ("README.md", "results.csv", "runs.csv", "differences.csv", "components.csv", "val_curves.png",
           "score_densities.png", "score_by_truth.png", "reliability.png", "diagnostics.png", "train_fraction.png",
           "noise.png", "judge_quality.png", "loss_terms.png")
# The varied setting whose points the noise plot puts on its x axis: `qcrd[teacher=dynamic]`.
TEACHER = "teacher"


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
    Diagnostic(JUDGE_AUROC, "AUROC of the judge's scores of the rationales the checker labels `valid` "
               "against those it does not, over each iteration's batches (0.5: chance; 1: every valid one above "
               "every other)", unit=True),
    Diagnostic("train/neg_student_invalid_frac", "share of the batch's self-play (student) negatives that the "
               "checker labels not `valid`: a valid negative pushes the student away from a right rationale",
               unit=True),
)


@dataclass(frozen=True)
class Component:
    """A column of the components table: a ground-truth metric (the checker's labels), reduced
    to one value per run: ``last`` (its final value), ``first`` or ``mean`` over its steps."""

    header: str  # in README.md
    key: str
    reduce: str
    column: str  # in components.csv
    meaning: str


# The components table (a group is a row where it logged any of these or a label share).
COMPONENTS = (
    Component("teacher valid", "teacher/valid_frac", "last", "teacher_valid_frac",
              "share of the training questions' teacher samples that the checker labels `valid`"),
    Component("filter prec.", "filter/precision", "last", "filter_precision",
              "share of the positives the filter kept that are valid"),
    Component("filter recall", "filter/recall", "last", "filter_recall",
              "share of the valid samples that the filter kept as positives"),
    Component("teacher neg. invalid", "negatives/teacher_invalid_frac", "last", "negatives_teacher_invalid_frac",
              "share of the teacher negatives (the samples outside the majority) that are not valid"),
    Component("student neg. invalid", "train/neg_student_invalid_frac", "mean", "train_neg_student_invalid_frac_mean",
              "share of a batch's self-play negatives that are not valid, averaged over each run's log steps"),
    Component("judge AUROC first", JUDGE_AUROC, "first", "train_judge_auroc_first",
              "AUROC (× 100; 50 is chance) of the judge's scores of valid against not-valid rationales over the "
              "first iteration's batches"),
    Component("judge AUROC last", JUDGE_AUROC, "last", "train_judge_auroc_last", "the same, last iteration"),
    Component("rationale valid", RATIONALE_VALID, "last", "test_rationale_valid",
              "share of the test questions whose own `explain:` rationale checks valid"),
    Component("rationale → answer", RATIONALE_ANSWER, "last", "test_rationale_answer_accuracy",
              "accuracy of the answer read from that rationale (its last result) against gold"),
)
# Share of each checker label, in components.csv: `teacher/label/<label>`, `test/rationale_label/<label>`.
LABEL_PREFIXES = ("teacher/label/", "test/rationale_label/")
# Loss terms that measure the same quantity in every objective that writes them the same
# way (`L_pred`: the label's cross-entropy from `predict: x`), so their curves may share an
# axis across objectives; every other loss curve shares one only within one objective.
SHARED_TERMS = ("train/loss_pred",)
# Rows follow the paper: its methods, then its ablations, then anything else by name.
LEGEND_INSIDE = 8  # legend entries a panel holds inside its axes; more: one legend beside the figure
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
    metric: str = PRIMARY
    why: str = ""  # how ``base`` was chosen, where it is not the group's own setting of the baseline

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
class ComponentRow:
    """A group's ground-truth metrics: by Component.column, and by metric key for the label
    shares, the value of each run that logged it, in %."""

    group: Group
    values: dict[str, list[float]]


@dataclass
class Plot:
    title: str
    file: str | None  # None: skipped, ``note`` says why
    note: str = ""


@dataclass(frozen=True)
class VariantOrder:
    """The variants in the sweep's order: the parent's ``variants`` param, then any other
    in the results table's order.  ``source`` says which, for the report's text."""

    labels: tuple[str, ...]
    source: str

    def rank(self, variant: str) -> int:
        return self.labels.index(variant) if variant in self.labels else len(self.labels)

    def settings(self, key: str) -> list[str]:
        """The values of varied setting ``key`` in the labels, in order, each once."""
        return list(dict.fromkeys(v for v in (setting_of(label, key) for label in self.labels) if v is not None))


@dataclass
class Report:
    selection: Selection
    groups: list[Group]
    replaced: list[tuple[StoredRun, StoredRun]]
    baseline: str | None
    baseline_why: str
    differences: list[Difference]
    order: VariantOrder = VariantOrder((), "the results table's order")
    components: list[ComponentRow] = field(default_factory=list)
    plots: list[Plot] = field(default_factory=list)


def make_report(*, experiment: str | None = None, run_id: str | None = None, suite: str | None = None,
                out: str | None = None, baseline: str | None = None, include_smoke: bool = False,
                uri_option: str | None = None) -> dict:
    """Select, group, compare, plot and write; returns what the CLI prints."""
    uri = tracking_uri(uri_option)
    store = Store(uri)
    selection = select(store, experiment, run_id, suite, include_smoke)
    fill_mean_validation(store, selection.runs)
    groups, replaced = group_runs(selection.runs)
    chosen, why = choose_baseline(baseline, selection.parent, groups)
    order = variant_order(selection.parent, groups)
    paired = [d for metric in PAIRED for d in differences(groups, chosen, order, metric)] if chosen else []
    report = Report(selection, groups, replaced, chosen, why, paired, order, component_rows(store, groups))
    folder = Path(out) if out else Path("reports") / selection.name
    _check_folder(folder)
    folder.mkdir(parents=True, exist_ok=True)
    command = command_line(experiment=experiment, run_id=run_id, suite=suite, baseline=baseline, out=out,
                           include_smoke=include_smoke, uri_option=uri_option)
    # Everything is written beside the folder first and moved in at the end, so a failure
    # leaves the previous report whole rather than half replaced.
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=f".{folder.name}.") as tmp:
        stage = Path(tmp)
        report.plots = make_plots(store, groups, stage, order)
        (stage / "README.md").write_text(markdown(report, command, uri), encoding="utf-8")
        write_results_csv(groups, stage / "results.csv")
        write_runs_csv(groups, stage / "runs.csv")
        write_differences_csv(report.differences, stage / "differences.csv")
        if report.components:
            write_components_csv(report.components, stage / "components.csv")
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


def fill_mean_validation(store: Store, runs: list[StoredRun]) -> None:
    """Give a run logged before the trainer recorded ``LEARNING`` the same figure from its
    ``val/accuracy`` history (the last value logged at each step, as a resumed run re-logs)."""
    for run in runs:
        if LEARNING not in run.metrics and "val/accuracy" in run.metrics:
            by_step = dict(store.history(run.run_id, "val/accuracy"))
            run.metrics[LEARNING] = statistics.mean(by_step.values())


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
    ``qcrd[negatives.lag=3,loss.scheme=mean]`` → ("qcrd", ("negatives.lag=3", "loss.scheme=mean"));
    a suite with teachers and ``vary`` adds a second bracket: ``dss[teacher=clean][loss.alpha=0.3]``."""
    found = re.fullmatch(r"([^\[]*)((?:\[[^\]]*\])+)", label)
    if not found:
        return label, ()
    groups = re.findall(r"\[([^\]]*)\]", found.group(2))
    return found.group(1), tuple(p for group in groups for p in group.split(",") if p)


def split_labels(text: str) -> list[str]:
    """A comma-separated list of labels (a parent's ``variants`` param), where a label's
    ``[...]`` may hold commas of its own: ``a[x=1,y=2],b`` → ["a[x=1,y=2]", "b"]."""
    labels, depth, current = [], 0, ""
    for char in text:
        if char == "," and depth == 0:
            labels.append(current)
            current = ""
            continue
        depth += {"[": 1, "]": -1}.get(char, 0)
        current += char
    return [found.strip() for found in [*labels, current] if found.strip()]


def setting_of(label: str, key: str) -> str | None:
    """The value of varied setting ``key`` in a label (``qcrd[teacher=dynamic]``, "teacher"
    → "dynamic"), or None where the label does not vary it."""
    for part in split_label(label)[1]:
        name, sep, value = part.partition("=")
        if sep and name == key:
            return value
    return None


def without_setting(label: str, key: str) -> str:
    """The label with varied setting ``key`` removed: ``qcrd[teacher=dynamic]`` → ``qcrd``."""
    base, point = split_label(label)
    rest = [p for p in point if p.partition("=")[0] != key]
    return base + (f"[{','.join(rest)}]" if rest else "")


def without_fraction(label: str) -> str:
    """The label with a varied ``task.train_fraction`` removed (the fraction is read from params)."""
    return without_setting(label, "task.train_fraction")


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


def variant_order(parent: StoredRun | None, groups: list[Group]) -> VariantOrder:
    listed = split_labels(parent.params.get("variants", "")) if parent is not None else []
    labels = tuple(dict.fromkeys([*listed, *(g.variant for g in groups)]))
    return VariantOrder(labels, "the order of the parent run's `variants` param" if listed
                        else "the results table's order")


def differences(groups: list[Group], baseline: str, order: VariantOrder | None = None,
                metric: str = PRIMARY) -> list[Difference]:
    """Each non-baseline group against a baseline group (see ``baseline_group``), paired by
    seed, in ``metric``; for a metric other than PRIMARY, only where both groups logged it."""
    result, order = [], order or variant_order(None, groups)
    for group in groups:
        if is_baseline(group, baseline):
            continue
        found = baseline_group(group, groups, baseline, order)
        if found is None:
            continue
        base, why = found
        if metric != PRIMARY and not all(any(metric in r.metrics for r in g.runs) for g in (group, base)):
            continue
        shared = [s for s in group.seeds
                  if s in base.by_seed and metric in group.by_seed[s].metrics and metric in base.by_seed[s].metrics]
        diffs = [100 * (group.by_seed[s].metrics[metric] - base.by_seed[s].metrics[metric]) for s in shared]
        result.append(Difference(group, base, shared, diffs, metric, why))
    return result


def baseline_group(group: Group, groups: list[Group], baseline: str,
                   order: VariantOrder) -> tuple[Group, str] | None:
    """(the baseline group ``group`` is compared with, how it was chosen where that is not
    obvious), or None.  It has the same task, preset and train fraction, and is the one
    labelled exactly ``baseline`` or else the one with the same varied settings
    (``qcrd[teacher=dynamic]`` pairs with ``dss[teacher=dynamic]``); among several, the one
    sharing the most seeds.  A group that varies nothing (``finetune`` in a sweep that
    crosses the other methods with teachers), where the baseline has no plain group, pairs
    with the baseline's setting that comes first in ``order``."""
    point = split_label(group.variant)[1]
    same = [b for b in groups if is_baseline(b, baseline) and b.task == group.task and b.preset == group.preset
            and b.train_fraction == group.train_fraction]
    candidates = [b for b in same if b.variant == baseline or split_label(b.variant)[1] == point]
    if candidates:
        return max(candidates, key=lambda b: (b.variant == baseline, len(set(b.seeds) & set(group.seeds)),
                                              b.runs[0].start_time)), ""
    if point or not same:
        return None
    base = min(same, key=lambda b: (order.rank(b.variant), -len(set(b.seeds) & set(group.seeds))))
    return base, (f"`{_cell(group.variant)}` varies no setting and no plain `{_cell(baseline)}` group ran, so it "
                  f"is paired with `{_cell(base.variant)}`, the first `{_cell(baseline)}` setting in "
                  f"{order.source}")


def component_rows(store: Store, groups: list[Group]) -> list[ComponentRow]:
    """A row per group that logged any ground-truth metric (COMPONENTS, LABEL_PREFIXES)."""
    rows = []
    for group in groups:
        values = {c.column: component_values(store, group, c) for c in COMPONENTS}
        labels = sorted({k for r in group.runs for k in r.metrics if k.startswith(LABEL_PREFIXES)})
        values.update({key: group.values(key) for key in labels})
        if any(values.values()):
            rows.append(ComponentRow(group, values))
    return rows


def component_values(store: Store, group: Group, component: Component) -> list[float]:
    """The component of each run that logged it, in %."""
    if component.reduce == "last":
        return group.values(component.key)
    found = []
    for run in (r for r in group.runs if component.key in r.metrics):
        steps = [v for _, v in store.history(run.run_id, component.key)] or [run.metrics[component.key]]
        found.append(100 * (steps[0] if component.reduce == "first" else statistics.mean(steps)))
    return found


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
    if report.components:
        lines += ["", *components_section(report.components)]
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
             "row were not trained on the same rationales as ours, or docs/method.md does not say whose they were. "
             "`config` is the runs' `qcrd.config_hash` (the resolved config without the seed): rows with "
             "different hashes are different settings. `test acc.` is `test/accuracy` at the best "
             "validation step, `final` is `final/test_accuracy`, `flexible` is `test/accuracy_flexible`, "
             "`parse` is `eval/parse_rate`.",
             "",
             "**Paper columns** are the QCRD paper's published numbers (docs/method.md §4, `qcrd_bench/paper.py`) for the "
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
             "paired with the baseline's run of the same seed on the same task, preset and train fraction and, where "
             "the labels vary settings, the same settings (`qcrd[teacher=dynamic]` against `dss[teacher=dynamic]`); "
             "mean Δ and a 95% t-interval (mean ± t₀.₉₇₅,ₙ₋₁ · s/√n) over the pairs. Under each table, a line per "
             "comparison reads its numbers: a method beats or trails the baseline where the interval excludes 0.", ""]
    if not report.differences:
        return lines + ["No group has a baseline group of the same task, preset, train fraction and settings."]
    for metric in PAIRED:
        found = [d for d in report.differences if d.metric == metric]
        if not found:
            continue
        if metric != PRIMARY:
            lines += ["", f"### The same in `{metric}`", "",
                      f"{READS[metric][0].upper()}{READS[metric][1:]}, for the pairs whose both sides logged it: "
                      f"{WHY[metric]}.", ""]
        lines += differences_table(found) + ["", *(f"- {reading(d, report.groups)}" for d in found)]
    return lines


def differences_table(diffs: list[Difference]) -> list[str]:
    lines = ["| method | baseline | task | config | baseline config | pairs | seeds | mean Δ (pp) | 95% CI (pp) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for d in diffs:
        interval = d.interval()
        ci = (f"[{interval[0]:+.2f}, {interval[1]:+.2f}]" if interval else
              "no interval (n < 2)" if d.diffs else "no shared seeds")
        mean = f"{d.mean:+.2f}" if d.diffs else "–"
        lines.append(f"| `{_cell(d.group.variant)}` | `{_cell(d.base.variant)}` | {d.group.task} | "
                     f"`{d.group.config_hash}` | `{d.base.config_hash}` | {len(d.diffs)} | {' '.join(d.seeds) or '–'} "
                     f"| {mean} | {ci} |")
    return lines


def reading(d: Difference, groups: list[Group]) -> str:
    """One sentence that reads a paired difference from its numbers alone."""
    method, base = _name(d.group, groups), _name(d.base, groups)
    if len({g.task for g in groups}) > 1:
        method += f" on {d.group.task}"
    why = f" ({d.why}.)" if d.why else ""
    if not d.diffs:
        return f"{method} and {base} share no seed: no difference.{why}"
    interval = d.interval()
    if interval is None:
        return (f"{method} is {_signed(d.mean)} pp against {base} on seed {d.seeds[0]} alone: with one pair there is "
                f"no interval, so this does not tell them apart.{why}")
    ci = f"95% CI {_signed(interval[0])} to {_signed(interval[1])}"
    if interval[0] > 0:
        return f"{method} beats {base} by {_signed(d.mean)} pp ({ci}).{why}"
    if interval[1] < 0:
        return f"{method} trails {base} by {_signed(d.mean)} pp ({ci}).{why}"
    return f"{method} cannot be told apart from {base} (mean Δ {_signed(d.mean)} pp; {ci} includes 0).{why}"


def _name(group: Group, groups: list[Group]) -> str:
    """The group's variant, with its config hash where another group on its task has the same variant."""
    twins = [g for g in groups if g.variant == group.variant and g.task == group.task]
    return f"`{_cell(group.variant)}`" + (f" (`{group.config_hash}`)" if len(twins) > 1 else "")


def _signed(value: float) -> str:
    """+2.10, −1.20 (a minus sign, as in running text)."""
    return f"{value:+.2f}".replace("-", "−")


def components_section(rows: list[ComponentRow]) -> list[str]:
    lines = ["## Components against ground truth", "",
             "On a task with a rationale checker every rationale has a label (`valid`, or what is wrong with it), so "
             "each part of a method can be measured against the truth and not only through the final accuracy. One "
             "row per setting that logged any of it; in %, mean ± sample std over seeds, – where not logged. "
             + " ".join(f"`{c.header}` (`{c.key}`{', mean' if c.reduce == 'mean' else ''}): {c.meaning}."
                        for c in COMPONENTS)
             + " `components.csv` has the same, with the share of each checker label (`teacher/label/<label>`, "
               "`test/rationale_label/<label>`).", "",
             "| method | task | config | n | " + " | ".join(c.header for c in COMPONENTS) + " |",
             "|---|---|---|---|" + "---|" * len(COMPONENTS)]
    for row in rows:
        g = row.group
        cells = [f"`{_cell(g.variant)}`", g.task, f"`{g.config_hash}`", str(len(g.runs)),
                 *(fmt_mean_std(row.values[c.column]) for c in COMPONENTS)]
        lines.append("| " + " | ".join(cells) + " |")
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


def mixed_rationale_notes(g: Group) -> list[str]:
    """A line where a group's seeds trained on different teachers or rationale sets; a teacher
    that draws its samples with each run's seed (`teacher.seed` -1) is said to, not flagged."""
    lines = []
    for tag in ("qcrd.teacher", "qcrd.rationales_sha256"):
        found = sorted({r.tags.get(tag, "?") for r in g.runs})
        if len(found) < 2:
            continue
        where = f"`{_cell(g.variant)}` on {g.task} (`{g.config_hash}`)"
        if tag == "qcrd.rationales_sha256" and all(r.params.get("teacher.seed") == "-1" for r in g.runs):
            lines.append(f"- {where} trained its seeds on {len(found)} rationale sets: its teacher draws its "
                         f"samples with each run's seed (`teacher.seed` -1), so seeds differ in them by design.")
        else:
            lines.append(f"- {where} mixes `{tag}` values {', '.join(found)}: its seeds did not all train on "
                         f"the same rationales.")
    return lines


def notes_section(report: Report) -> list[str]:
    lines = ["## Notes", ""]
    for reason, runs in sorted(report.selection.excluded.items()):
        lines.append(f"- Excluded {len(runs)} run(s), {reason}: {_names(runs)}.")
    for old, new in report.replaced:
        lines.append(f"- Seed {old.tags.get('qcrd.seed')} of `{_cell(variant_of(old))}` on {old.tags['qcrd.task']} "
                     f"ran more than once: run `{new.run_id}` (newest) is used, `{old.run_id}` is not.")
    for g in report.groups:
        lines += mixed_rationale_notes(g)
    for marker, note in dict.fromkeys(teacher_notes(report.groups).values()):
        lines.append(f"- {marker} {note}")
    if report.baseline:
        unmatched = {id(d.group) for d in report.differences}
        for g in report.groups:
            if not is_baseline(g, report.baseline) and id(g) not in unmatched:
                lines.append(f"- No `{_cell(report.baseline)}` runs with the preset, train fraction and varied "
                             f"settings of `{_cell(g.variant)}` on {g.task} (`{g.config_hash}`): no paired "
                             "difference.")
    if not report.components:
        lines.append("- No run logged a ground-truth metric (" + ", ".join(f"`{c}`" for c in
                     dict.fromkeys(c.key for c in COMPONENTS)) + "; only runs on a task with a rationale checker "
                     "do): no components table, no `components.csv`.")
    lines.append("- Every number above is read from the tracking store, except the paper columns "
                 "(`qcrd_bench/paper.py`, from docs/method.md §4) and the paper's teachers in the notes (from §2, §3).")
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


def write_runs_csv(groups: list[Group], path: Path) -> None:
    """One row per run of the report's groups, in the results table's order, seed by seed."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["method", "task", "teacher", "config_hash", "seed", "run_id",
                         *(m.replace("/", "_") for m in RUN_METRICS)])
        for g in groups:
            for seed, run in g.by_seed.items():
                writer.writerow([g.variant, g.task, run.tags.get("qcrd.teacher", ""), g.config_hash, seed, run.run_id,
                                 *(_num(run.metrics.get(m)) for m in RUN_METRICS)])


def write_differences_csv(diffs: list[Difference], path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["metric", "method", "task", "config_hash", "baseline", "baseline_config_hash", "pairs",
                         "seeds", "mean_diff_pp", "ci95_low_pp", "ci95_high_pp"])
        for d in diffs:
            interval = d.interval() or (None, None)
            writer.writerow([d.metric, d.group.variant, d.group.task, d.group.config_hash, d.base.variant,
                             d.base.config_hash, len(d.diffs), " ".join(d.seeds), _num(d.mean), _num(interval[0]),
                             _num(interval[1])])


def write_components_csv(rows: list[ComponentRow], path: Path) -> None:
    labels = sorted({key for row in rows for key in row.values if key.startswith(LABEL_PREFIXES)})
    columns = [(c.column, c.column) for c in COMPONENTS] + [(key, key.replace("/", "_")) for key in labels]
    header = ["method", "task", "teacher", "config_hash", "n", "seeds"]
    for _, stem in columns:
        header += [f"{stem}_mean_pct", f"{stem}_std_pct", f"{stem}_n"]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for row in rows:
            g = row.group
            cells = [g.variant, g.task, g.teacher, g.config_hash, len(g.runs), " ".join(g.seeds)]
            for key, _ in columns:
                values = row.values.get(key, [])
                mean, std = mean_std(values)
                cells += [_num(mean), _num(std), len(values)]
            writer.writerow(cells)


def _num(value: float | None) -> str:
    return "" if value is None else repr(float(value))


def _float(text: str | None, default: float) -> float:
    try:
        return float(text) if text not in (None, "", "None") else default
    except ValueError:
        return default


# Plots

def make_plots(store: Store, groups: list[Group], folder: Path, order: VariantOrder) -> list[Plot]:
    scored = read_scored(store, groups)
    return [plot_val_curves(store, groups, folder), plot_score_densities(store, groups, folder, scored),
            plot_score_by_truth(groups, scored, folder), plot_reliability(groups, scored, folder),
            plot_diagnostics(store, groups, folder), plot_train_fraction(groups, folder),
            plot_noise(groups, order, folder), plot_judge_quality(groups, folder), plot_loss_terms(store, groups, folder)]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    return plt


def _figure(panels: int, title: str, cols: int = 3):
    plt = _pyplot()
    cols = min(panels, cols)
    rows = math.ceil(panels / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.8 * rows), squeeze=False)
    for ax in axes.flat[panels:]:
        ax.set_visible(False)
    fig.suptitle(title)
    return fig, list(axes.flat[:panels])


def _save(fig, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")  # "tight" keeps a legend placed beside the axes
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
    """One colour per name, the same in every panel and plot of a report; past the default
    cycle's ten, tab20's twenty, so that a suite's many groups (synth-noise) do not share one."""
    from matplotlib.colors import to_hex

    names = list(dict.fromkeys(names))
    plt = _pyplot()
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    if len(names) > len(cycle):
        cycle = [to_hex(c) for c in plt.get_cmap("tab20").colors]
    return {name: cycle[i % len(cycle)] for i, name in enumerate(names)}


def _legends(fig, axes) -> None:
    """A legend inside each panel; where a panel has more entries than fit without hiding its
    lines, one legend beside the figure instead (a name has one colour in every panel, from
    ``palette``, so one key serves them all)."""
    entries = [ax.get_legend_handles_labels() for ax in axes]
    if max((len(labels) for _, labels in entries), default=0) <= LEGEND_INSIDE:
        for ax, (_, labels) in zip(axes, entries):
            if labels:
                ax.legend(fontsize=7)
        return
    merged = {}
    for handles, labels in entries:
        for handle, text in zip(handles, labels):
            merged.setdefault(text, handle)
    fig.legend(list(merged.values()), list(merged), fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 0.95))


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
    panels = val_panels(shown)
    fig, axes = _figure(len(panels), "val/accuracy (mean ± std over seeds)")
    # Within a teacher's panel the teacher goes without saying: one colour per method across panels.
    names = {id(g): without_setting(label(g, groups), TEACHER) for g in shown}
    colors = palette(names[id(g)] for g in shown)
    for ax, (name, members) in zip(axes, panels):
        for g in members:
            _curve_panel(ax, *mean_curve(series[id(g)]), names[id(g)], colors[names[id(g)]], scale=100)
        ax.set(title=name, xlabel="step", ylabel="validation accuracy (%)")
        _cap_at_100(ax)
    _legends(fig, axes)
    split = len(panels) > len({g.task for g in shown})
    return Plot(title, _save(fig, folder / "val_curves.png"), "Shaded: ± one sample std over seeds."
                + (" One panel per task and teacher (the `teacher=` of the labels), each with the methods that "
                   "use no teacher (`finetune`) for reference." if split else ""))


def _cap_at_100(ax) -> None:
    """A percentage axis ends near 100: a ± std band or bar past it is no value a run had."""
    ax.set_ylim(top=min(ax.get_ylim()[1], 102))


def val_panels(groups: list[Group]) -> list[tuple[str, list[Group]]]:
    """(title, groups) per panel of the validation curves: one per task, or, where labels name
    teachers (synth-noise's 25 settings), one per task and teacher, each with the task's groups
    that name none."""
    by_point: dict[str, dict[str | None, list[Group]]] = {}
    for g in groups:
        by_point.setdefault(g.task, {}).setdefault(setting_of(g.variant, TEACHER), []).append(g)
    panels = []
    for task, by_teacher in by_point.items():
        plain = by_teacher.pop(None, [])
        panels += [(f"{task}, teacher={t}", members + plain) for t, members in by_teacher.items()] or [(task, plain)]
    return panels


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
    _legends(fig, axes)
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
    _legends(fig, axes)
    keys = dict.fromkeys(key for key, _, _ in panels)
    shared = ", ".join(f"`{k}`" for k in SHARED_TERMS)
    note = ("One panel per metric and objective, so that one axis never holds different objectives: `train/loss` "
            "(the total) and each term share a panel only among runs with the same `qcrd.loss` formula (the title's "
            f"second line), except {shared}, which share one wherever the formula writes the term the same way "
            "(a term with a qualifier, `L_pred[…]`, is another quantity and gets its own). "
            f"Shaded: ± one sample std over seeds. Metrics: {', '.join(f'`{k}`' for k in keys)}.")
    return Plot(title, _save(fig, folder / "loss_terms.png"), note)


@dataclass
class Scored:
    """The scored-rationale tables (SCORED) with a score column, of each group's runs that have
    any, by ``id(group)``; and the runs whose table could not be read, with why."""

    tables: dict[int, list[dict[str, list]]]
    unreadable: list[str]

    def none_note(self) -> str:
        """Why a plot of scores has nothing to draw, where no group has a table."""
        return (f"could not read `{SCORED}` of {', '.join(self.unreadable)}." if self.unreadable else
                f"no run logged `{SCORED}` (only methods with a discriminator and negatives do).")

    def missing_note(self) -> str:
        """The runs whose table could not be read, where a plot has others to draw."""
        return f" Could not read the table of {', '.join(self.unreadable)}." if self.unreadable else ""


def read_scored(store: Store, groups: list[Group]) -> Scored:
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
    return Scored(scored, unreadable)


def plot_score_densities(store: Store, groups: list[Group], folder: Path, scored: Scored | None = None) -> Plot:
    """The paper's Fig. 6 as far as the runs logged it: discriminator scores of negatives."""
    title = "Discriminator score densities (Fig. 6)"
    scored = read_scored(store, groups) if scored is None else scored
    shown = [g for g in groups if id(g) in scored.tables]
    if not shown:
        return Plot(title, None, scored.none_note())
    by_source = {id(g): _scores_by_source(scored.tables[id(g)]) for g in shown}
    colors = source_colors(s for found in by_source.values() for s in found)
    fig, axes = _figure(len(shown), "discriminator scores by source")
    many_tasks = len({g.task for g in groups}) > 1
    for ax, g in zip(axes, shown):
        for source, scores in sorted(by_source[id(g)].items(), key=lambda item: list(colors).index(item[0])):
            _density(ax, scores, colors[source], source)
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
              "training." + scored.missing_note())
    return Plot(title, _save(fig, folder / "score_densities.png"), note)


def _density(ax, scores: list[float], color: str, name: str) -> None:
    """A histogram (density) of scores in [0, 1], outlined, lightly filled, with its n in the legend."""
    from matplotlib.colors import to_rgba

    ax.hist(scores, bins=20, range=(0, 1), density=True, histtype="stepfilled", linewidth=1.4, edgecolor=color,
            facecolor=to_rgba(color, 0.2), label=f"{name} (n={len(scores)})")


# The two sides of a scored rationale's truth, in the by-truth plot (a colour-blind-safe pair).
TRUTH_COLORS = {"valid": "#1b9e77", "not valid": "#d95f02"}


def truth_rows(tables: list[dict[str, list]]) -> list[tuple[float, str]]:
    """(score, the checker's label) of every row of the tables that have a ``truth`` column."""
    rows = []
    for table in (t for t in tables if "truth" in t):
        for score, truth in zip(table["score"], table["truth"]):
            if isinstance(score, (int, float)) and math.isfinite(score) and isinstance(truth, str):
                rows.append((float(score), truth))
    return rows


def _no_truth_note(scored: Scored) -> str:
    if not scored.tables:
        return scored.none_note()
    return (f"no run's `{SCORED}` has a `truth` column (the checker's label of each rationale: only runs on a task "
            "with a rationale checker log one).")


def plot_score_by_truth(groups: list[Group], scored: Scored, folder: Path) -> Plot:
    """Fig. 6 split by truth: the judge's scores of the rationales the checker labels valid,
    and of the others, whatever their source."""
    title = "Discriminator scores by truth"
    rows = {id(g): truth_rows(scored.tables.get(id(g), [])) for g in groups}
    shown = [g for g in groups if rows[id(g)]]
    if not shown:
        return Plot(title, None, _no_truth_note(scored))
    fig, axes = _figure(len(shown), "discriminator scores by truth (the checker's label)")
    many_tasks = len({g.task for g in groups}) > 1
    for ax, g in zip(axes, shown):
        for side, color in TRUTH_COLORS.items():
            scores = [score for score, truth in rows[id(g)] if (truth == "valid") == (side == "valid")]
            if scores:
                _density(ax, scores, color, side)
        ax.set(title=label(g, groups, with_task=many_tasks), xlabel="discriminator score", ylabel="density")
        ax.legend(fontsize=7)
    note = ("The rows of each run's `" + SCORED + "` (teacher positives, teacher and student negatives alike), pooled "
            "over seeds, one panel per setting, by their `truth` column: the checker's label `valid` against any "
            "other. A judge that tells right from wrong rationales, and not only positives from negatives, puts the "
            "two apart." + scored.missing_note())
    return Plot(title, _save(fig, folder / "score_by_truth.png"), note)


@dataclass(frozen=True)
class Bin:
    """A bin of the reliability plot."""

    low: float
    high: float
    mean_score: float
    valid_share: float
    count: int


def reliability_bins(rows: list[tuple[float, bool]], bins: int = 10) -> list[Bin]:
    """(score, valid) pairs into ``bins`` equal bins of [0, 1], each closed below (a score of
    1 in the last); per non-empty bin, the mean score, the share of valid and the count."""
    members: dict[int, list[tuple[float, bool]]] = defaultdict(list)
    for score, valid in rows:
        members[min(max(math.floor(score * bins), 0), bins - 1)].append((score, valid))
    return [Bin(i / bins, (i + 1) / bins, statistics.mean(s for s, _ in found),
                sum(v for _, v in found) / len(found), len(found)) for i, found in sorted(members.items())]


def plot_reliability(groups: list[Group], scored: Scored, folder: Path) -> Plot:
    """Is a judge score a probability of being valid?  The share of valid rationales per
    score bin, against the bin's mean score."""
    title = "Judge reliability against ground truth"
    rows = {id(g): [(score, truth == "valid") for score, truth in truth_rows(scored.tables.get(id(g), []))]
            for g in groups}
    shown = [g for g in groups if rows[id(g)]]
    if not shown:
        return Plot(title, None, _no_truth_note(scored))
    tasks = list(dict.fromkeys(g.task for g in shown))
    bins = {id(g): reliability_bins(rows[id(g)]) for g in shown}
    largest = max(b.count for found in bins.values() for b in found)
    fig, axes = _figure(len(tasks), "share of valid rationales per judge-score bin")
    colors = palette(label(g, groups) for g in groups)
    for ax, task in zip(axes, tasks):
        ax.plot([0, 1], [0, 1], linestyle=":", color="grey", linewidth=1, label="share valid = score")
        for g in (g for g in shown if g.task == task):
            name, found = label(g, groups), bins[id(g)]
            xs, ys = [b.mean_score for b in found], [b.valid_share for b in found]
            ax.plot(xs, ys, color=colors[name], linewidth=1.2, label=f"{name} (n={len(rows[id(g)])})")
            ax.scatter(xs, ys, s=[6 + 110 * b.count / largest for b in found], color=colors[name], alpha=0.6,
                       edgecolors="white", linewidths=0.5, zorder=3)
        ax.set(title=task, xlabel="judge score (the bin's mean)", ylabel="share valid", xlim=(0, 1),
               ylim=(-0.05, 1.05))
        ax.legend(fontsize=7, loc="lower right")  # a judge worth its name leaves that corner empty
    note = ("The rows of each run's `" + SCORED + "` (teacher positives, teacher and student negatives alike), pooled "
            "over seeds: their judge scores in 10 equal bins of [0, 1]; y is the share of a bin's rationales whose "
            "`truth` (the checker's label) is `valid`, x the bin's mean score, and a marker's area grows with the "
            f"bin's count (the largest bin holds {largest} rationales); empty bins are left out. One line per "
            "setting, one panel per task. On the dotted diagonal a score would read as the chance that the rationale is valid; the "
            "judge learns to tell the positives from the negatives, so a line away from it shows where that is not "
            "the same as telling right from wrong." + scored.missing_note())
    return Plot(title, _save(fig, folder / "reliability.png"), note)


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
    _legends(fig, axes)
    return Plot(title, _save(fig, folder / "train_fraction.png"),
                "Dotted: the paper's Fig. 4 (T5-base), where it has the method and task.")


@dataclass
class NoiseLines:
    """What the noise plot draws: the teachers on its x axis, in order; by (method, task) the
    group at each teacher; the groups whose runs used no teacher (a horizontal line each); and
    the groups it leaves out, with why."""

    teachers: list[str]
    lines: dict[tuple[str, str], dict[str, Group]]
    flat: list[Group]
    left_out: list[tuple[Group, str]]


def noise_lines(groups: list[Group], order: VariantOrder) -> NoiseLines:
    """Groups whose labels set ``teacher=<name>`` make a line per method (the label without the
    teacher) and task; the x axis is the teachers in ``order``."""
    lines: dict[tuple[str, str], dict[str, Group]] = defaultdict(dict)
    left_out = []
    for g in groups:
        teacher = setting_of(g.variant, TEACHER)
        if teacher is None:
            continue
        line = lines[(without_setting(g.variant, TEACHER), g.task)]
        if teacher in line:
            left_out.append((g, f"a second setting of `{_cell(line[teacher].variant)}` on {g.task}"))
        else:
            line[teacher] = g
    tasks = {task for _, task in lines}
    flat = [g for g in groups if g.task in tasks and setting_of(g.variant, TEACHER) is None and g.teacher == "none"]
    left_out += [(g, "no `teacher=` in its label, but its runs used one") for g in groups
                 if g.task in tasks and setting_of(g.variant, TEACHER) is None and g.teacher != "none"]
    present = {t for line in lines.values() for t in line}
    return NoiseLines([t for t in order.settings(TEACHER) if t in present], dict(lines), flat, left_out)


def plot_noise(groups: list[Group], order: VariantOrder, folder: Path) -> Plot:
    """Accuracy against the teacher a method distilled from: one line per method, the teachers
    in the sweep's order; a second panel for the answer read from the student's rationale."""
    title = "Accuracy against teacher noise"
    found = noise_lines(groups, order)
    if not found.lines:
        return Plot(title, None, "no group's label has a `teacher=` point (a suite that crosses methods with "
                                 "teachers has them, e.g. `synth-noise`: `qcrd[teacher=dynamic]`).")
    drawn = [g for line in found.lines.values() for g in line.values()] + found.flat
    metrics = [m for m in PAIRED if m == PRIMARY or any(m in r.metrics for g in drawn for r in g.runs)]
    tasks = list(dict.fromkeys(task for _, task in found.lines))
    fig, axes = _figure(len(tasks) * len(metrics), "accuracy against the teacher (mean ± std over seeds)",
                        cols=len(metrics))
    colors = palette([*(name for name, _ in found.lines), *(g.variant for g in found.flat)])
    x = {teacher: i for i, teacher in enumerate(found.teachers)}
    for row, task in enumerate(tasks):
        keys = [key for key in found.lines if key[1] == task]
        for col, metric in enumerate(metrics):
            ax = axes[row * len(metrics) + col]
            for i, key in enumerate(keys):
                offset = (i - (len(keys) - 1) / 2) * 0.06  # sideways, so that error bars do not hide each other
                points = sorted((x[t], mean_std(g.values(metric))) for t, g in found.lines[key].items()
                                if g.values(metric))
                if points:
                    ax.errorbar([p + offset for p, _ in points], [m for _, (m, _) in points],
                                yerr=[s or 0 for _, (_, s) in points], marker="o", capsize=3, label=key[0],
                                color=colors[key[0]])
            for g in (g for g in found.flat if g.task == task):
                mean, std = mean_std(g.values(metric))
                if mean is not None:
                    ax.axhline(mean, linestyle="--", linewidth=1.2, color=colors[g.variant],
                               label=f"{g.variant} (no teacher)")
                    if std:
                        ax.axhspan(mean - std, mean + std, color=colors[g.variant], alpha=0.12, linewidth=0)
            ax.set_xticks(range(len(found.teachers)), found.teachers)
            ax.set_xlim(-0.5, len(found.teachers) - 0.5)
            _cap_at_100(ax)
            ax.set(title=f"{task}: {metric}", xlabel="teacher", ylabel=f"{metric} (%)")
    _legends(fig, axes)
    reads = [f"`{metric}` ({READS[metric]})" for metric in metrics]
    panels = (f"One panel per task, reading {reads[0]}; no run logged `{RATIONALE_ANSWER}`." if len(metrics) == 1
              else f"The panels of a task read, left to right, {'; '.join(reads)}. On a task with a checker the "
                   "label head may gain nothing from rationales while the rationale head does, and a teacher whose "
                   f"answers are right but whose steps are not shows in `{RATIONALE_VALID}` only.")
    note = (f"x: the teacher of each setting (the `teacher=` in its label), in {order.source}: "
            f"{', '.join(found.teachers)}. A line per method (the label without its teacher), mean over seeds with "
            "± one sample std as bars, moved a little sideways so that the bars do not hide each other. Dashed, with "
            "a shaded ± std band: methods whose runs used no teacher, which do not depend on it (in a panel whose "
            "metric they logged). " + panels
            + (" Not drawn: " + "; ".join(f"`{_cell(g.variant)}` on {g.task} ({why})" for g, why in found.left_out)
               + "." if found.left_out else ""))
    return Plot(title, _save(fig, folder / "noise.png"), note)


def judge_points(groups: list[Group]) -> list[tuple[Group, list[tuple[float, float]]]]:
    """Per group, (judge AUROC at the last iteration, test accuracy) of each run that logged
    both, in %; groups without such a run are left out."""
    found = [(g, [(100 * r.metrics[JUDGE_AUROC], 100 * r.metrics[PRIMARY]) for r in g.runs
                  if JUDGE_AUROC in r.metrics and PRIMARY in r.metrics]) for g in groups]
    return [(g, points) for g, points in found if points]


def rank_correlation(points: list[tuple[float, float]]) -> str:
    """Spearman's rho over the points, in words (none below three points or for a constant axis)."""
    from scipy.stats import spearmanr

    xs, ys = [x for x, _ in points], [y for _, y in points]
    if len(points) < 3 or len(set(xs)) < 2 or len(set(ys)) < 2:
        return f"too few distinct points ({len(points)}) for a rank correlation"
    rho, p_value = spearmanr(xs, ys)
    return f"Spearman's ρ = {rho:+.2f} over {len(points)} runs (p = {p_value:.2g})"


def plot_judge_quality(groups: list[Group], folder: Path) -> Plot:
    """How much the result depends on the judge's quality: one point per run, its judge's AUROC
    against ground truth at the last iteration against its test accuracy."""
    title = "Judge quality against accuracy"
    found = judge_points(groups)
    if not found:
        return Plot(title, None, f"no run logged `{JUDGE_AUROC}` (only methods with a judge do, on a task with a "
                                 "rationale checker).")
    tasks = list(dict.fromkeys(g.task for g, _ in found))
    fig, axes = _figure(len(tasks), "test accuracy against the judge's AUROC (one point per run)")
    names = [label(g, groups) for g, _ in found]
    colors = palette(names)
    correlations = []
    for ax, task in zip(axes, tasks):
        for name, (g, points) in zip(names, found):
            if g.task == task:
                ax.scatter([x for x, _ in points], [y for _, y in points], color=colors[name], label=name, s=28)
        ax.axvline(50, linestyle=":", color="grey", linewidth=1)
        ax.set(title=task, xlabel="judge AUROC, last iteration (%)", ylabel="test accuracy (%)")
        correlations.append(f"{task}: {rank_correlation([p for g, ps in found if g.task == task for p in ps])}")
    note = (f"x: the judge's AUROC (`{JUDGE_AUROC}`, its last value: the last iteration's batches) of its scores of "
            "the rationales the checker labels `valid` against the others; dotted, chance (50). y: `test/accuracy`. "
            "Across every run with a judge, whatever its setting: " + "; ".join(correlations) + ".")
    _legends(fig, axes)
    return Plot(title, _save(fig, folder / "judge_quality.png"), note)


# Params that differ between the runs of one line: the seed, the fraction itself, and a
# config-built student's size, whose tokenizer learns the (smaller) training text.
NOT_SETTING = ("seed", "task.train_fraction", "student.seed", "student.n_params", "student.vocab_size")


def _setting(group: Group) -> tuple:
    """The group's params apart from seed and train fraction: which groups form one line."""
    return tuple(sorted((k, v) for k, v in group.runs[0].params.items() if k not in NOT_SETTING))
