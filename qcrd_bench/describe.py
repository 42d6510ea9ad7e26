"""What qcrd-bench says about a run or a sweep, in words: the summary a command prints,
the description a run shows in the MLflow UI (Markdown), a sweep's name.  Plain text
from plain data: nothing here touches MLflow or torch.

Accuracies are shown in percent everywhere, named by their metric (``test/accuracy``),
though the store keeps them as fractions."""

from __future__ import annotations

from typing import Any

from .tracking import DEFAULT_URI, redact_url

PRIMARY = "test/accuracy"
SMOKE_NOTE = ("a smoke run (the smoke preset, or --limit) trains a tiny model for a few steps to check that the "
              "pipeline works: its accuracy is not meaningful, and often 0%")


def percent(value: float) -> str:
    return f"{100 * value:.1f}%"


def result_line(summary: dict[str, Any]) -> str:
    """``test/accuracy 12.5% (best-validation step 250), final/test_accuracy 11.0%, ...``"""
    return (f"{PRIMARY} {percent(summary[PRIMARY])} (best-validation step {summary['best/step']}), "
            f"final/test_accuracy {percent(summary['final/test_accuracy'])}, "
            f"test/accuracy_flexible {percent(summary['test/accuracy_flexible'])}, "
            f"eval/parse_rate {percent(summary['eval/parse_rate'])}")


def cell_line(summary: dict[str, Any]) -> str:
    """A sweep cell's result as it ends: ``test/accuracy 12.5% (best step 250), run 3f2a...``."""
    return f"{PRIMARY} {percent(summary[PRIMARY])} (best step {summary['best/step']}), run {summary['run_id']}"


def uri_option(uri: str) -> str:
    """`` --tracking-uri URI`` where a command needs it to find the store, else nothing."""
    return "" if uri == DEFAULT_URI else f" --tracking-uri {redact_url(uri)}"


def report_command(uri: str, *, parent: str | None = None, experiment: str | None = None, smoke: bool) -> str:
    target = f"--run {parent}" if parent else f"--experiment {experiment}"
    return f"qcrd-bench report {target}" + (" --include-smoke" if smoke else "") + uri_option(uri)


# ---------------------------------------------------------------- a run


def running_description(config: dict, tags: dict[str, Any], run_id: str, uri: str) -> str:
    """A run's description while it trains, and after it if it never finishes."""
    every = config["train"]["checkpoint_every"]
    if "qcrd.child_key" in tags:  # a sweep's cell
        resume = ("re-run the same `qcrd-bench ablate` command: it runs the cells that did not finish"
                  + (", this one from its last checkpoint" if every else ""))
    elif every:
        resume = (f"continue it from its last checkpoint (one every {every} steps) with "
                  f"`qcrd-bench run --resume {run_id}{uri_option(uri)}`")
    else:
        resume = "run the command again (this run keeps no checkpoints: `train.checkpoint_every` is 0)"
    return (f"**{tags['qcrd.variant']}** on **{tags['qcrd.task']}**, seed {tags['qcrd.seed']}: training "
            f"({_setting(config, tags)}).\n\nIf it stops before it finishes, {resume}.")


def run_description(config: dict, tags: dict[str, Any], summary: dict[str, Any], uri: str) -> str:
    """A finished run's description: its result first, then what made it, then what next."""
    lines = [f"**{PRIMARY} {percent(summary[PRIMARY])}** at the best-validation step {summary['best/step']} "
             f"of {config['train']['steps']} (final step {percent(summary['final/test_accuracy'])}); "
             f"flexible {percent(summary['test/accuracy_flexible'])}, parse rate "
             f"{percent(summary['eval/parse_rate'])}"
             + (f", best val/accuracy {percent(summary['best/val_accuracy'])}" if "best/val_accuracy" in summary
                else "") + ".",
             "",
             f"**{tags['qcrd.variant']}** on **{tags['qcrd.task']}**, seed {tags['qcrd.seed']}: "
             f"{_setting(config, tags)}; {summary['time/run_seconds'] / 60:.1f} min.",
             ""]
    smoke = tags.get("qcrd.smoke") == "true"
    if smoke:
        lines += [f"Note: {SMOKE_NOTE}.", ""]
    if tags.get("mlflow.parentRunId"):
        # A sweep's cell (perhaps written through a temporary server): its parent has the command.
        compare = "this run is a cell of a sweep: its parent run's description has the results and the report command"
    else:
        report = report_command(uri, experiment=summary["experiment"], smoke=smoke)
        compare = f"compare it with the experiment's other runs: `{report}`"
    # MLflow sorts the Model metrics tab's sections by name, so the single values come first.
    lines += [f"Predictions: the Artifacts tab, `predictions/test.json`; {compare}. Curves: the Model metrics "
              f"tab, sections `train` and `val` (the sections above them hold single values)."]
    return "\n".join(lines)


def _setting(config: dict, tags: dict[str, Any]) -> str:
    train = config["train"]
    return (f"preset {config['preset']} (student {config['student']['name']}, {train['steps']} steps × "
            f"{train['batch_size']}), teacher {config['teacher']['name']}, loss {tags.get('qcrd.loss', '?')}")


# ---------------------------------------------------------------- a sweep


def sweep_name(labels: list[str], tasks: list[str], seeds: list[int], suite: str = "", smoke: bool = False) -> str:
    """``dss,qcrd × svamp × seeds 0-1 (smoke)``; many variants are counted, not listed."""
    variants = ",".join(labels) if len(labels) <= 4 else f"{len(labels)} variants"
    name = f"{variants} × {','.join(tasks)} × {_seeds(seeds)}" + (" (smoke)" if smoke else "")
    return f"{suite}: {name}" if suite else name


def _seeds(seeds: list[int]) -> str:
    ordered = sorted(seeds)
    if len(ordered) == 1:
        return f"seed {ordered[0]}"
    if ordered == list(range(ordered[0], ordered[-1] + 1)):
        return f"seeds {ordered[0]}-{ordered[-1]}"
    return "seeds " + ",".join(map(str, ordered))


def aggregate_lines(rows: list[tuple[str, float, float, int]]) -> list[str]:
    """The console's table of a sweep's results: (variant/task, mean, std, n) rows."""
    if not rows:
        return [f"no finished child has {PRIMARY} yet"]
    width = max(len(label) for label, *_ in rows)
    return [f"{PRIMARY} (best-validation checkpoint), mean ± std over seeds:"] + [
        f"  {label:<{width}}  {percent(mean)} ± {percent(std)}  (n={n})" for label, mean, std, n in rows]


def sweep_description(name: str, rows: list[tuple[str, float, float, int]], children: int, finished: int, failed: int,
                      report: str, smoke: bool) -> str:
    """A sweep parent's description: its results table, then what next."""
    lines = [f"**Sweep** {name}: {children} children, {finished} finished"
             + (f", {failed} failed" if failed else "") + ".", ""]
    if rows:
        lines += [f"{PRIMARY} at each child's best-validation step, mean ± std over seeds:", "",
                  f"| variant / task | {PRIMARY} | n |", "|---|---|---|"]
        lines += [f"| {label} | {percent(mean)} ± {percent(std)} | {n} |" for label, mean, std, n in rows]
        lines.append("")
    if smoke:
        lines += [f"Note: {SMOKE_NOTE}.", ""]
    lines += [f"The children are nested under this run in the runs table (the + beside its name). "
              f"Report: `{report}`. Running the same `qcrd-bench ablate` command again resumes the sweep: "
              f"only children without a finished run are run."]
    return "\n".join(lines)
