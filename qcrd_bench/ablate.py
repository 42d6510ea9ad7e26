"""``qcrd-bench ablate``: a grid of variants × tasks × seeds as one MLflow parent run
with one child run per cell, resumable, with per-variant aggregates on the parent.

A *variant* is a method plus settings: ``dss``, ``qcrd`` with ``teacher: mcc-kd``, or a
point of ``--vary negatives.lag=3,5,10`` (label ``qcrd[negatives.lag=3]``).  Every cell
has a key (a hash of what defines it); a re-run with the same grid finds its parent
by the grid's key and runs only the cells that have no FINISHED child yet.

Suites are YAML files (``benchmarks/suites/<name>.yaml``)::

    name: cpu-svamp
    description: ...
    preset: cpu
    tasks: [svamp]
    seeds: [0, 1, 2]
    baseline: dss                     # what `report` compares against
    variants:
      - finetune
      - {method: dss, teacher: mcc-kd}
      - {method: qcrd, teacher: mcc-kd, set: {train.steps: 1000}}
    vary: {}                          # optional: {key: [values]}, crossed with every variant
    teachers: {}                      # optional: {name: {key: value}}, crossed with every variant
                                      # whose method has a teacher (label dss[teacher=NAME])
    set: {}                           # optional: settings for every cell
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .config import parse_set, resolve, teacher_choice
from .describe import cell_line, report_command, sweep_description, sweep_name
from .errors import ConfigError, QcrdError
from .plugins import Catalog

SUITE_DIRS = (Path("benchmarks/suites"), Path(__file__).resolve().parents[1] / "benchmarks" / "suites")
_METRIC_UNSAFE = re.compile(r"[^\w\-./ ]")


@dataclass(frozen=True)
class Variant:
    label: str
    method: str
    sets: tuple[tuple[str, Any], ...] = ()  # flat config keys, applied after the grid's common settings
    teacher: str = ""  # the suite teacher it was crossed with (``teachers:``), if any


@dataclass
class Grid:
    variants: list[Variant]
    tasks: list[str]
    seeds: list[int]
    preset: str | None = None
    limit: int | None = None
    sets: dict[str, Any] = field(default_factory=dict)
    suite: str = ""
    baseline: str = ""
    teachers: list[str] = field(default_factory=list)  # a suite's teacher names, in its order

    def key(self) -> str:
        """The parent run's identity.  A suite's variants may grow, as its seeds may: a variant
        added to the file runs under the same parent (its cells have keys of their own), so the
        suite stays one sweep with one report.  Elsewhere the variants define the sweep."""
        variants = [] if self.suite else [(v.label, v.method, list(v.sets)) for v in self.variants]
        payload = [variants, self.tasks, self.preset, self.limit, sorted(self.sets.items()), self.suite]
        return hashlib.sha256(json.dumps(payload, default=str).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Cell:
    variant: Variant
    task: str
    seed: int
    config: dict

    @property
    def key(self) -> str:
        from .config import config_hash

        return f"{self.variant.label}|{self.task}|{config_hash(self.config)}|{self.seed}"


# ---------------------------------------------------------------- building the grid


def variants_from(methods: list[str], teacher: str | None, vary: list[str]) -> list[Variant]:
    """Variants for ``--method a,b [--teacher T] [--vary KEY=V1,V2 ...]``."""
    base = [Variant(m, m, tuple(teacher_choice(teacher).items()) if teacher else ()) for m in methods]
    return cross(base, dict(_vary_option(v) for v in vary))


def _vary_option(item: str) -> tuple[str, list[Any]]:
    key, sep, values = item.partition("=")
    if not sep or not key.strip() or not values.strip():
        raise ConfigError(f"--vary {item!r}: expected KEY=V1,V2,..., e.g. --vary negatives.lag=3,5,10")
    return key.strip(), [parse_set(f"{key}={v}")[1] for v in values.split(",")]


def cross(variants: list[Variant], vary: dict[str, list[Any]]) -> list[Variant]:
    if not vary:
        return variants
    keys = list(vary)
    out = []
    for variant in variants:
        for values in itertools.product(*(vary[k] for k in keys)):
            point = tuple(zip(keys, values))
            label = variant.label + "[" + ",".join(f"{k}={v}" for k, v in point) + "]"
            out.append(Variant(label, variant.method, variant.sets + point, variant.teacher))
    return out


def cells(catalog: Catalog, grid: Grid) -> list[Cell]:
    """Every (variant, task, seed) with its resolved config; any bad setting fails here,
    before a run is opened."""
    out = []
    labels = [v.label for v in grid.variants]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"variants must differ: {labels}")
    for variant in grid.variants:
        for task in grid.tasks:
            for seed in grid.seeds:
                layer = {**cell_settings(grid, variant), "seed": seed}
                if grid.limit:
                    layer["limit"] = grid.limit
                try:
                    config = resolve(catalog, variant.method, task, grid.preset, None, layer)
                except ConfigError as exc:
                    raise ConfigError(f"variant {variant.label!r} on {task}: {exc}") from None
                out.append(Cell(variant, task, seed, config))
    return out


def part_of_suite(grid: Grid, grid_cells: list[Cell], methods: list[str] | None,
                  teachers: list[str] | None) -> list[Cell]:
    """The cells of the suite's variants ``methods`` (their labels before any ``[...]``) and
    teachers ``teachers`` (a method without a teacher stays with any teacher); None keeps all.
    The grid, and so its parent run, stays the whole suite's: the other cells can be run later
    under the same parent."""
    keep = grid_cells
    if methods:
        known = list(dict.fromkeys(_base(v.label) for v in grid.variants))
        _check_names("--method", methods, known, f"variant in suite {grid.suite!r}")
        keep = [c for c in keep if _base(c.variant.label) in methods]
    if teachers:
        if not grid.teachers:
            raise ConfigError(f"--teachers: suite {grid.suite!r} names no teachers")
        _check_names("--teachers", teachers, grid.teachers, f"teacher in suite {grid.suite!r}")
        keep = [c for c in keep if not c.variant.teacher or c.variant.teacher in teachers]
    return keep


def _base(label: str) -> str:
    return label.split("[", 1)[0]


def _check_names(option: str, names: list[str], known: list[str], what: str) -> None:
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(f"{option}: no {what} named {', '.join(map(repr, unknown))}; it has {', '.join(known)}")


def cell_settings(grid: Grid, variant: Variant) -> dict[str, Any]:
    """The config keys a cell sets besides method, task, preset, seed and limit."""
    return {**grid.sets, **dict(variant.sets)}


def load_suite(name: str, catalog: Catalog | None = None) -> Grid:
    """A suite by name (``benchmarks/suites/<name>.yaml``) or by path.  ``catalog`` tells
    which methods have a teacher, for a suite that crosses its variants with ``teachers``."""
    import yaml

    candidates = [Path(name)] if name.endswith((".yaml", ".yml")) else [d / f"{name}.yaml" for d in SUITE_DIRS]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        known = sorted({p.stem for d in SUITE_DIRS if d.is_dir() for p in d.glob("*.yaml")})
        raise ConfigError(f"--suite {name!r}: no such suite; available: {', '.join(known) or 'none'}")
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read suite: {exc}") from None
    return grid_from_spec(spec, path, catalog)


def grid_from_spec(spec: Any, where: Path | str, catalog: Catalog | None = None) -> Grid:
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: a suite is a mapping (name, tasks, seeds, variants, ...)")
    unknown = set(spec) - {"name", "description", "preset", "tasks", "seeds", "variants", "vary", "teachers", "set",
                           "baseline", "limit"}
    if unknown:
        raise ConfigError(f"{where}: unknown suite field(s) {', '.join(sorted(unknown))}")
    for required in ("name", "tasks", "seeds", "variants"):
        if not spec.get(required):
            raise ConfigError(f"{where}: field {required!r} is required")
    variants = [_variant(item, where) for item in spec["variants"]]
    if spec.get("teachers"):
        variants = cross_teachers(variants, spec["teachers"], where, catalog)
    return Grid(variants=cross(variants, {k: list(v) for k, v in (spec.get("vary") or {}).items()}),
                tasks=[str(t) for t in spec["tasks"]], seeds=[int(s) for s in spec["seeds"]],
                preset=spec.get("preset"), limit=spec.get("limit"), sets=dict(spec.get("set") or {}),
                suite=str(spec["name"]), baseline=str(spec.get("baseline") or ""),
                teachers=[str(t) for t in spec.get("teachers") or {}])


def cross_teachers(variants: list[Variant], teachers: Any, where, catalog: Catalog | None) -> list[Variant]:
    """Each variant whose method has a teacher, once per named teacher setting (label
    ``dss[teacher=dynamic]``); a variant without one (finetune) stays as it is."""
    if not isinstance(teachers, dict) or not all(isinstance(v, dict) or v is None for v in teachers.values()):
        raise ConfigError(f"{where}: 'teachers' maps a name to teacher settings, e.g. "
                          f"{{clean: {{}}, dynamic: {{teacher.p_dynamic: 0.4}}}}")
    if catalog is None:
        raise ConfigError(f"{where}: a suite with 'teachers' needs the plugin catalog to be loaded")
    out = []
    for variant in variants:
        if catalog.methods.get(variant.method).teacher == "none":
            out.append(variant)
            continue
        for name, settings in teachers.items():
            out.append(Variant(f"{variant.label}[teacher={name}]", variant.method,
                               variant.sets + tuple((settings or {}).items()), str(name)))
    return out


def _variant(item: Any, where) -> Variant:
    if isinstance(item, str):
        return Variant(item, item)
    if not isinstance(item, dict) or "method" not in item or set(item) - {"method", "teacher", "set", "label"}:
        raise ConfigError(f"{where}: a variant is a method name or {{method, teacher?, set?, label?}}, got {item!r}")
    sets = dict(teacher_choice(item["teacher"])) if item.get("teacher") else {}
    sets.update(item.get("set") or {})
    return Variant(str(item.get("label") or item["method"]), str(item["method"]), tuple(sets.items()))


# ---------------------------------------------------------------- running


def plan_lines(grid_cells: list[Cell]) -> list[str]:
    from .config import config_hash

    return [f"{c.variant.label:<32} {c.task:<8} seed {c.seed}  config {config_hash(c.config)}" for c in grid_cells]


def run_grid(catalog: Catalog, grid: Grid, grid_cells: list[Cell], uri: str, experiment: str,
             echo: Callable[[str], None], workers: int = 1, plugins_dir: str | None = None,
             ray: dict[str, Any] | None = None, part: list[Cell] | None = None) -> dict[str, Any]:
    """Run the cells that have no FINISHED child under this grid's parent, then log the
    aggregates.  Returns {parent_run_id, ran, skipped, failed, aggregates}.  ``ray``
    (options of ``RayExecutor``) runs the children as Ray tasks instead of here.  ``part``
    (``part_of_suite``) runs only those cells; the parent's tags, description and aggregates
    still cover the whole grid, so a suite run in parts reads as one sweep."""
    from . import tracking
    from .config import is_smoke

    parent_tags = {"qcrd.kind": "ablate", "qcrd.grid_key": grid.key(), "qcrd.suite": grid.suite,
                   "qcrd.baseline": grid.baseline, "qcrd.children": str(len(grid_cells))}
    smoke = all(is_smoke(c.config) for c in grid_cells)
    name = sweep_name([v.label for v in grid.variants], grid.tasks, grid.seeds, grid.suite, smoke)
    parent = tracking.open_parent(uri, experiment, name, parent_tags,
                                  {"variants": ",".join(v.label for v in grid.variants), "tasks": ",".join(grid.tasks),
                                   "seeds": ",".join(map(str, grid.seeds)), "preset": grid.preset or "",
                                   "limit": grid.limit or 0})
    report = report_command(uri, parent=parent.run_id, smoke=smoke)
    try:
        done = parent.finished_children()
        chosen = grid_cells if part is None else part
        todo = [c for c in chosen if c.key not in done]
        existing = parent.children()
        resumable = resumable_children(existing, {c.key for c in todo})
        stale = stale_children(existing, set(resumable.values()))
        parent.end_children(stale, "KILLED")
        if stale:
            echo(f"{len(stale)} child run{'s' * (len(stale) != 1)} left RUNNING by a process that died: marked KILLED")
        echo(f"parent run {parent.run_id} ({name}) in {experiment}: {len(chosen) - len(todo)} of "
             f"{len(chosen)} children already finished"
             + (f" (this part of the grid's {len(grid_cells)})" if part is not None else "")
             + (f", {len(resumable)} to resume from a checkpoint" if resumable else ""))
        if ray is not None and todo:
            from .ray_executor import RayExecutor

            failed = RayExecutor(grid, uri, experiment, parent.run_id, plugins_dir, echo, **ray).run(todo, resumable)
        elif workers > 1 and len(todo) > 1:
            failed = Workers(grid, uri, experiment, parent.run_id, workers, plugins_dir, echo).run(todo, resumable)
        else:
            failed = _run_here(catalog, todo, uri, experiment, parent.run_id, echo, resumable)
        # Only this grid's cells: children of an older version (another config hash) stay out.
        keys = {c.key for c in grid_cells}
        children = [r for r in parent.children() if r.data.tags.get("qcrd.child_key") in keys]
        rows = results(children)
        aggregates = aggregate(rows)
        parent.log_metrics(aggregates)
        finished = len({r.data.tags["qcrd.child_key"] for r in children if r.info.status == "FINISHED"})
        parent.describe(sweep_description(name, rows, len(grid_cells), finished, len(failed), report, smoke))
    except BaseException as exc:
        parent.end("KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        raise
    parent.end("FAILED" if failed else "FINISHED")
    return {"parent_run_id": parent.run_id, "name": name, "experiment": experiment,
            "experiment_id": parent.experiment_id, "ran": len(todo), "skipped": len(chosen) - len(todo),
            "failed": failed, "results": rows, "aggregates": aggregates, "smoke": smoke, "report": report}


def resumable_children(children, keys: set[str]) -> dict[str, str]:
    """Cell key -> id of its latest unfinished child that left a checkpoint (a sweep
    killed mid-cell continues that cell rather than starting it over)."""
    found: dict[str, str] = {}
    for run in sorted(children, key=lambda r: r.info.start_time):
        tags = run.data.tags
        folder = tags.get("qcrd.checkpoint_dir")
        if (tags.get("qcrd.child_key") in keys and run.info.status != "FINISHED" and folder
                and (Path(folder) / "checkpoint.pt").is_file()):
            found[tags["qcrd.child_key"]] = run.info.run_id
    return found


def stale_children(children, resuming: set[str]) -> list[str]:
    """Ids of the children still marked RUNNING whose process died (no one holds their
    checkpoint folder's lock) and that this sweep does not continue: a cell killed before its
    first checkpoint starts again as a new run, and the old one would stay RUNNING for ever.
    A child without a checkpoint folder (``train.checkpoint_every=0``) cannot be told apart
    from a live one and is left alone."""
    from .checkpoint import Checkpoints

    return [run.info.run_id for run in children
            if run.info.status == "RUNNING" and run.info.run_id not in resuming
            and "qcrd.checkpoint_dir" in run.data.tags and Checkpoints.abandoned(Path(run.data.tags["qcrd.checkpoint_dir"]))]


def _run_here(catalog: Catalog, todo: list[Cell], uri: str, experiment: str, parent_id: str,
              echo: Callable[[str], None], resumable: dict[str, str]) -> list[str]:
    from .runner import execute

    failed = []
    for number, cell in enumerate(todo, 1):
        resume = resumable.get(cell.key)
        label = cell_label(number, len(todo), cell)
        echo(label + (f" (resuming run {resume})" if resume else ""))
        tags = {"mlflow.parentRunId": parent_id, "qcrd.variant": cell.variant.label, "qcrd.child_key": cell.key}
        try:
            summary = execute(catalog, cell.config, uri, experiment, extra_tags=tags, resume=resume)
        except Exception as exc:  # one failing cell does not stop the sweep; the parent ends FAILED
            failed.append(cell.key)
            echo(f"{label}: failed: {exc if isinstance(exc, QcrdError) else f'{type(exc).__name__}: {exc}'}")
            continue
        echo(f"{label}: {cell_line(summary)}")
    return failed


def cell_label(number: int, total: int, cell: Cell) -> str:
    return f"[{number}/{total}] {cell.variant.label} {cell.task} seed {cell.seed}"


def child_result(out: str) -> str:
    """What a child process's run ended with: its result and run id (from the JSON that
    ``run --json`` ends its output with), else its last line."""
    lines = out.splitlines()
    starts = [i for i, line in enumerate(lines) if line == "{"]
    try:
        return cell_line(json.loads("\n".join(lines[starts[-1]:])))
    except (IndexError, ValueError, KeyError, TypeError):
        return last_line(out)


def last_line(text: str) -> str:
    """What to show of a child process's output: its last ``error:`` line, else its last line."""
    lines = [line for line in text.strip().splitlines() if line.startswith("error:")] or text.strip().splitlines()
    return lines[-1] if lines else ""


def child_argv(grid: Grid, cell: Cell, uri: str, experiment: str, parent_id: str, threads: int,
               plugins_dir: str | None, resume: str | None, config_file: Path) -> list[str]:
    """The ``qcrd-bench`` arguments that run one cell in a process of its own: the cell's
    settings (``cell_settings``, written to ``config_file``), or ``--resume`` of its
    stopped child run."""
    argv = ["run", "--tracking-uri", uri]
    if resume:
        argv += ["--resume", resume, "--set", f"train.threads={threads}"]
    else:
        argv += ["-m", cell.variant.method, "-t", cell.task, "--seed", str(cell.seed), "--config", str(config_file),
                 "--set", f"train.threads={threads}", "--experiment", experiment, "--child-of", parent_id,
                 "--variant", cell.variant.label, "--child-key", cell.key]
        argv += ["--preset", grid.preset] if grid.preset else []
        argv += ["--limit", str(grid.limit)] if grid.limit else []
    argv += ["--json"]  # the summary, read back by child_result
    return argv + (["--plugins-dir", plugins_dir] if plugins_dir else [])


class Workers:
    """Children in ``n`` worker processes (``qcrd-bench run`` with the cell's settings),
    each with cores // n torch threads.  A SQLite store is served to them through a local
    tracking server, so concurrent writers never meet SQLite's file lock."""

    def __init__(self, grid: Grid, uri: str, experiment: str, parent_id: str, n: int, plugins_dir: str | None,
                 echo: Callable[[str], None]):
        self.grid, self.uri, self.experiment, self.parent_id, self.n = grid, uri, experiment, parent_id, n
        self.plugins_dir, self.echo = plugins_dir, echo
        # Split the cores among the workers, unless the grid sets the threads itself.
        self.threads = int(grid.sets.get("train.threads") or max(1, (os.cpu_count() or 1) // n))
        self._procs: list[subprocess.Popen] = []
        self._stopping = False
        self._lock = threading.Lock()

    def run(self, todo: list[Cell], resumable: dict[str, str]) -> list[str]:
        from . import tracking

        with tracking.local_server(self.uri, self.echo) as uri, tempfile.TemporaryDirectory() as tmp:
            self.echo(f"{self.n} workers, {self.threads} torch thread(s) each, store served at {uri}")
            jobs = [(number, cell, uri, Path(tmp), resumable.get(cell.key)) for number, cell in enumerate(todo, 1)]
            pool = ThreadPoolExecutor(self.n)
            try:
                outcomes = list(pool.map(lambda job: self._child(*job, total=len(todo)), jobs))
            except BaseException:
                # Stop the children first: shutting the pool down waits for them to finish.
                self._stop_all()
                raise
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
        return [key for key in outcomes if key]

    def _child(self, number: int, cell: Cell, uri: str, tmp: Path, resume: str | None, total: int) -> str | None:
        """Run one cell in a process; returns its key when it failed."""
        config_file = tmp / f"cell{number}.json"
        config_file.write_text(json.dumps(cell_settings(self.grid, cell.variant)))
        command = [sys.executable, "-m", "qcrd_bench.cli",
                   *child_argv(self.grid, cell, uri, self.experiment, self.parent_id, self.threads, self.plugins_dir,
                               resume, config_file)]
        with self._lock:
            if self._stopping:
                return cell.key
            proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            self._procs.append(proc)
        out, err = proc.communicate()
        label = cell_label(number, total, cell)
        if proc.returncode == 0:
            self.echo(f"{label}: {child_result(out) or 'done'}")
            return None
        self.echo(f"{label}: failed: {last_line(err) or f'exit {proc.returncode}'}")
        return cell.key

    def _stop_all(self) -> None:
        """Ctrl-C or SIGTERM: stop the children too (each ends its run KILLED)."""
        with self._lock:
            self._stopping = True
            for proc in self._procs:
                if proc.poll() is None:
                    proc.terminate()
            for proc in self._procs:
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()


def results(children) -> list[tuple[str, float, float, int]]:
    """(``<variant>/<task>``, mean, std, n) of ``test/accuracy`` over FINISHED children."""
    groups: dict[str, list[float]] = {}
    for run in children:
        if run.info.status != "FINISHED" or "test/accuracy" not in run.data.metrics:
            continue
        label = f"{run.data.tags.get('qcrd.variant', '')}/{run.data.tags.get('qcrd.task', '')}"
        groups.setdefault(label, []).append(run.data.metrics["test/accuracy"])
    return [(label, statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0, len(values))
            for label, values in sorted(groups.items())]


def aggregate(rows: list[tuple[str, float, float, int]]) -> dict[str, float]:
    """The parent's metrics: ``<variant>/<task>/test/accuracy_mean`` (and ``_std``, ``_n``),
    with what MLflow refuses in a metric name (``[``, ``=``) written as ``_``."""
    out = {}
    for label, mean, std, n in rows:
        prefix = _METRIC_UNSAFE.sub("_", label)
        out[f"{prefix}/test/accuracy_mean"], out[f"{prefix}/test/accuracy_std"] = mean, std
        out[f"{prefix}/test/accuracy_n"] = float(n)
    return out
