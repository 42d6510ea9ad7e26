"""The ``qcrd-bench`` command line.  Heavy libraries (torch, transformers, mlflow)
are imported inside command bodies so ``--help`` and ``list`` stay instant."""

from __future__ import annotations

import contextlib
import sys

import click

from . import __version__

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
KINDS = ("tasks", "methods", "teachers", "filters", "negatives", "discriminators", "losses", "students", "presets")


class Failure(click.ClickException):
    """Printed as one ``error: …`` line, exit status 2."""

    exit_code = 2

    def show(self, file=None) -> None:
        from .distributed import MAIN_FAILED

        rank = _rank()
        if rank == "0":
            click.echo(f"error: {self.message}", err=True)
        elif not self.message.startswith(MAIN_FAILED):  # the main process has said it already
            click.echo(f"error (process {rank}): {self.message}", err=True)


def _rank() -> str:
    """This process's rank in a multi-process launch (`accelerate launch`, torchrun, mpirun); "0" alone."""
    import os

    return os.environ.get("RANK") or os.environ.get("OMPI_COMM_WORLD_RANK") or os.environ.get("PMI_RANK") or "0"


def _catalog(plugins_dir):
    from .errors import QcrdError
    from .plugins import load_catalog

    try:
        return load_catalog(plugins_dir)
    except QcrdError as exc:
        raise Failure(str(exc)) from None


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


@contextlib.contextmanager
def _terminate_as_interrupt():
    """A sweep or scheduler stops a job with SIGTERM: raise KeyboardInterrupt so its run ends
    KILLED, not RUNNING.  The previous handler comes back after the command, since the CLI also
    runs in-process (tests, notebooks), where a leftover handler is inherited by every fork."""
    import signal

    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


plugins_dir_option = click.option("--plugins-dir", type=click.Path(file_okay=False), default=None,
                                  help="Also load plugin modules (*.py) from this directory.")


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, "--version", prog_name="qcrd-bench")
def main() -> None:
    """Distil LLM rationales into small students and compare methods, tracked in MLflow.

    \b
    Examples:
      qcrd-bench run --method dss --task svamp --preset smoke
      qcrd-bench ui
      qcrd-bench list methods
      qcrd-bench data check
      qcrd-bench plugins
    """
    from .console import quiet_third_party

    quiet_third_party()


@main.command(context_settings=CONTEXT)
@click.option("--method", "-m", help="Method to run (see `qcrd-bench list methods`).  Required unless --resume.")
@click.option("--task", "-t", help="Task to run on (see `qcrd-bench list tasks`).  Required unless --resume.")
@click.option("--student", help="Student: a built-in name (`list students`), a hub name or a local directory.")
@click.option("--teacher", help="Rationale source (`qcrd-bench list teachers`, or file:PATH for a set written by "
                                "`teach`); default: the method's.")
@click.option("--preset", "-p", help="smoke | cpu | synth | synth-quick | paper (default: the task's, else cpu).")
@click.option("--seed", type=int, help="Seed for data order, sampling and initialisation (default 0).")
@click.option("--limit", type=click.IntRange(min=1), help="Cap every split at N examples (tags the run as smoke).")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Override a config key, e.g. --set train.lr=3e-4 (repeatable).")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="YAML/JSON file of config keys.")
@click.option("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or sqlite:///mlflow.db).")
@click.option("--experiment", help="MLflow experiment (default: qcrd-bench/<task>).")
@click.option("--dry-run", is_flag=True, help="Print the resolved plan and touch nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
@click.option("--resume", metavar="RUN_ID", help="Continue a stopped run from its last checkpoint, in the same "
                                                  "MLflow run, with its own config (only --tracking-uri and "
                                                  "--set train.threads=N may be given with it).")
@click.option("--child-of", hidden=True, help="Parent run id (set by `ablate` for its worker processes).")
@click.option("--variant", hidden=True, help="Variant label of the sweep cell (set by `ablate`).")
@click.option("--child-key", hidden=True, help="Key of the sweep cell (set by `ablate`).")
@plugins_dir_option
def run(method, task, student, teacher, preset, seed, limit, sets, config_file, tracking_uri, experiment,
        dry_run, as_json, resume, child_of, variant, child_key, plugins_dir):
    """Train and evaluate one method on one task, tracked as one MLflow run.  Phases and
    bars go to stderr; the result (in percent, each metric named) and the link to browse
    the run (`qcrd-bench ui`) to stdout.

    \b
    Examples:
      qcrd-bench run --method dss --task svamp --preset smoke
      qcrd-bench run -m finetune -t svamp --seed 1 --set train.steps=500
      qcrd-bench run -m qcrd -t synth-arith   # offline, the synth-quick preset
      qcrd-bench run -m dss -t synth-arith --preset synth --set train.lr_schedule=wsd --set train.lr=3e-3
      qcrd-bench run -m dss -t svamp --student ./my-t5 --dry-run
      qcrd-bench run --resume 3f2a9c...   # after a crash, preemption or Ctrl-C
    """
    from .config import parse_set, read_config_file, resolve, teacher_choice
    from .errors import QcrdError
    from .runner import dumps, plan

    catalog = _catalog(plugins_dir)
    if resume:
        given = [name for name, value in (("--method", method), ("--task", task), ("--student", student),
                                          ("--teacher", teacher), ("--preset", preset), ("--seed", seed),
                                          ("--limit", limit), ("--config", config_file),
                                          ("--experiment", experiment), ("--child-of", child_of))
                 if value is not None]
        given += [f"--set {item}" for item in sets if not item.startswith("train.threads=")]
        if given:
            raise Failure(f"--resume continues the run with its own config: drop {', '.join(given)}")
        return _resume(catalog, resume, sets, tracking_uri, dry_run, as_json)
    missing = [name for name, value in (("--method", method), ("--task", task)) if not value]
    if missing:
        raise click.UsageError(f"Missing option {' and '.join(repr(m) for m in missing)}.")
    try:
        cli_layer = {}
        for option, key, value in (("--student", "student.name", student),
                                   ("--seed", "seed", seed), ("--limit", "limit", limit)):
            if value is not None:
                cli_layer[key] = value
        if teacher is not None:
            cli_layer.update(teacher_choice(teacher))
        cli_layer.update(parse_set(item) for item in sets)
        file_layer = read_config_file(config_file) if config_file else None
        config = resolve(catalog, method, task, preset, file_layer, cli_layer, file_name=config_file)
    except QcrdError as exc:
        raise Failure(str(exc)) from None
    if dry_run:
        from .tracking import scrub

        click.echo(dumps(scrub(plan(config))))
        return

    from .runner import execute
    from .tracking import tracking_uri as resolve_uri

    try:
        sweep = {"mlflow.parentRunId": child_of, "qcrd.variant": variant or method, "qcrd.child_key": child_key}
        uri = resolve_uri(tracking_uri)
        with _terminate_as_interrupt():
            summary = execute(catalog, config, uri, experiment,
                              extra_tags={k: v for k, v in sweep.items() if v} if child_of else None)
    except QcrdError as exc:
        raise Failure(str(exc)) from None
    _echo_summary(summary, as_json, uri)


def _resume(catalog, run_id: str, sets, tracking_uri, dry_run: bool, as_json: bool) -> None:
    from .config import parse_set
    from .errors import QcrdError
    from .runner import dumps, execute, plan, resume_config
    from .tracking import scrub, tracking_uri as resolve_uri

    uri = resolve_uri(tracking_uri)
    try:
        config, experiment = resume_config(uri, run_id)
        for _, value in (parse_set(item) for item in sets):  # only train.threads gets here
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise QcrdError(f"--set train.threads={value}: must be an integer >= 1")
            config["train"]["threads"] = value
        if dry_run:
            click.echo(dumps(scrub(plan(config))))
            return
        with _terminate_as_interrupt():
            summary = execute(catalog, config, uri, experiment, resume=run_id)
    except QcrdError as exc:
        raise Failure(str(exc)) from None
    _echo_summary(summary, as_json, uri)


def _echo_summary(summary: dict | None, as_json: bool, uri: str) -> None:
    from .describe import SMOKE_NOTE, result_line
    from .runner import dumps
    from .tracking import browse_hint

    if summary is None:  # a process other than the main one of a multi-process run
        return
    if as_json:
        click.echo(dumps(summary))
        return
    click.echo(f"run {summary['run_id']} in experiment {summary['experiment']}: {result_line(summary)}")
    if summary["smoke"]:
        click.echo(f"note: {SMOKE_NOTE}")
    click.echo(f"browse: {browse_hint(uri, summary['experiment_id'])}")


@main.command(context_settings=CONTEXT)
@click.option("--suite", help="A suite: benchmarks/suites/<NAME>.yaml, or a path to one.")
@click.option("--method", "-m", help="Comma-separated methods or variants, e.g. dss,qcrd; with --suite, only these "
                                    "of its variants this time (the rest can follow under the same parent).")
@click.option("--task", "-t", help="Comma-separated tasks (with --method; default: svamp).")
@click.option("--seeds", help="Comma-separated seeds (default: the suite's, else 0,1,2).")
@click.option("--teacher", help="Teacher for every variant (NAME or file:PATH); default: each method's.")
@click.option("--teachers", metavar="NAME1,NAME2",
              help="Only these of the suite's teachers (and the methods without one) this time; the rest can "
                   "follow under the same parent.")
@click.option("--vary", multiple=True, metavar="KEY=V1,V2",
              help="Sweep a setting: one variant per value, crossed with the others (repeatable).")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="A setting for every child (repeatable).")
@click.option("--preset", "-p",
              help="smoke | cpu | synth | synth-quick | paper (default: the suite's, else the task's, else cpu).")
@click.option("--limit", type=click.IntRange(min=1), help="Cap every split at N examples (smoke children).")
@click.option("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or sqlite:///mlflow.db).")
@click.option("--experiment", help="MLflow experiment of the parent and its children "
                                   "(default: qcrd-bench/suite/<NAME>, or qcrd-bench/ablate).")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Children run at once, each in its own process with cores/N torch threads; a SQLite store is "
                   "then served to them by a local tracking server on 127.0.0.1.")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="Where children run: here (--workers processes) or as Ray tasks (pip install 'qcrd-bench[ray]').")
@click.option("--ray-address", metavar="ADDR", help="Ray cluster to submit to (e.g. auto, or ray://HOST:10001); "
                                                    "default: a local Ray instance on this machine's cores.")
@click.option("--cpus-per-child", type=click.IntRange(min=1),
              help="Ray: CPUs each child requests, also its torch threads (default: train.threads if set, else 1).")
@click.option("--gpus-per-child", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Ray: GPUs each child requests.")
@click.option("--retries", type=click.IntRange(min=0), default=2, show_default=True,
              help="Ray: times a child whose process died is retried (resuming from its checkpoint).")
@click.option("--dry-run", is_flag=True, help="List the children and stop.")
@plugins_dir_option
def ablate(suite, method, task, seeds, teacher, teachers, vary, sets, preset, limit, tracking_uri, experiment, workers,
           executor, ray_address, cpus_per_child, gpus_per_child, retries, dry_run, plugins_dir):
    """Run a grid of variants × tasks × seeds as one MLflow parent run with a child per
    cell, then log mean and std of test accuracy per variant and task on the parent.

    Re-running the same grid resumes it: cells with a FINISHED child are skipped (more
    seeds can be added later under the same parent).  A failing cell is reported and the
    sweep goes on; the parent then ends FAILED.  Each cell prints its result and run id as
    it ends; the sweep ends with its results and the `qcrd-bench report` command to run next.

    \b
    Examples:
      qcrd-bench ablate --suite cpu-svamp --dry-run
      qcrd-bench ablate --suite synth-noise --teachers clean,dynamic --seeds 0 --workers 2
      qcrd-bench ablate --suite synth-noise --method dss,qcrd --teachers clean --seeds 0,1,2
      qcrd-bench ablate --method dss,qcrd --task svamp --seeds 0,1 --preset smoke
      qcrd-bench ablate --method dss,qcrd --seeds 0,1 --preset smoke --workers 2
      qcrd-bench ablate -m qcrd --teacher mcc-kd --vary negatives.lag=3,5,10 --seeds 0,1,2
      qcrd-bench ablate --suite paper-t5-base --executor ray --ray-address auto \
          --gpus-per-child 1 --tracking-uri http://tracking.internal:5000
    """
    from .ablate import Grid, cells, load_suite, part_of_suite, plan_lines, run_grid, variants_from
    from .config import parse_set
    from .errors import QcrdError
    from .tracking import tracking_uri as resolve_uri

    catalog = _catalog(plugins_dir)
    try:
        if not suite and not method:
            raise Failure("give either --suite NAME or --method M1,M2 (see qcrd-bench ablate --help)")
        if teachers and not suite:
            raise Failure("--teachers picks among a suite's teachers; with --method use --teacher")
        seed_list = _int_list("--seeds", seeds) if seeds else None
        common = dict(parse_set(item) for item in sets)
        if suite:
            grid = load_suite(suite, catalog)
            grid.seeds = seed_list or grid.seeds
            grid.sets.update(common)
            grid.preset = preset or grid.preset
            grid.limit = limit or grid.limit
            if vary or teacher or task:
                raise Failure("--vary, --teacher and --task apply to --method grids; edit the suite file instead")
        else:
            grid = Grid(variants=variants_from(_names(method), teacher, list(vary)), tasks=_names(task or "svamp"),
                        seeds=seed_list or [0, 1, 2], preset=preset, limit=limit, sets=common)
        grid_cells = cells(catalog, grid)
        part = None
        if suite and (method or teachers):
            part = part_of_suite(grid, grid_cells, method and _names(method), teachers and _names(teachers))
        experiment = experiment or (f"qcrd-bench/suite/{grid.suite}" if grid.suite else "qcrd-bench/ablate")
        if dry_run:
            listed = grid_cells if part is None else part
            click.echo(f"{len(listed)} children in experiment {experiment}:")
            click.echo("\n".join(plan_lines(listed)))
            return
        uri = resolve_uri(tracking_uri)
        ray = None
        if executor == "ray":
            from .ray_executor import check_options

            check_options(uri, ray_address)
            ray = {"address": ray_address, "cpus": cpus_per_child, "gpus": gpus_per_child, "retries": retries}
        with _terminate_as_interrupt():  # the children and the parent end KILLED, not RUNNING
            result = run_grid(catalog, grid, grid_cells, uri, experiment, click.echo, workers=workers,
                              plugins_dir=plugins_dir, ray=ray, part=part)
    except QcrdError as exc:
        raise Failure(str(exc)) from None
    _echo_sweep(result, uri)


def _echo_sweep(result: dict, uri: str) -> None:
    """A sweep's results, then what to run next."""
    from .describe import SMOKE_NOTE, aggregate_lines
    from .tracking import browse_hint

    click.echo(f"parent run {result['parent_run_id']} ({result['name']}): {result['ran']} ran, "
               f"{result['skipped']} already finished")
    for line in aggregate_lines(result["results"]):
        click.echo(line)
    if result["smoke"]:
        click.echo(f"note: {SMOKE_NOTE}")
    click.echo(f"report: {result['report']}")
    click.echo(f"browse: {browse_hint(uri, result['experiment_id'])}")
    if result["failed"]:
        raise Failure(f"{len(result['failed'])} child run(s) failed: {', '.join(result['failed'])}")


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _int_list(option: str, text: str) -> list[int]:
    try:
        return [int(part) for part in _names(text)]
    except ValueError:
        raise Failure(f"{option} {text!r}: expected comma-separated integers, e.g. 0,1,2") from None


@main.command(context_settings=CONTEXT)
@click.option("--tracking-uri", help="The store to browse (default: $MLFLOW_TRACKING_URI or sqlite:///mlflow.db).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface to bind; anything but 127.0.0.1 exposes the runs to the network.")
@click.option("--port", type=click.IntRange(1, 65535), default=5000, show_default=True)
@click.option("--open", "open_browser", is_flag=True, help="Open the runs table in the default web browser.")
def ui(tracking_uri, host, port, open_browser):
    """Serve the MLflow UI for the tracking store (Ctrl-C stops it) and print the link to
    the runs table of the newest experiment, with the method, task, seed and accuracy
    columns shown.

    Experiments: qcrd-bench/<task> for single runs, qcrd-bench/suite/<name> and
    qcrd-bench/ablate for sweeps (children nested under their parent: the + beside it),
    qcrd-bench/<task>/teach for rationale sets.

    \b
    Examples:
      qcrd-bench ui
      qcrd-bench ui --port 5001 --open
      qcrd-bench ui --tracking-uri sqlite:///runs/mlflow.db
    """
    from .errors import QcrdError
    import tempfile

    from .tracking import check_port, last_output_line, newest_runs_link, serve, server_command
    from .tracking import tracking_uri as resolve_uri

    uri = resolve_uri(tracking_uri)
    if uri.startswith(("http://", "https://")):
        raise Failure(f"--tracking-uri {uri}: that is already a server; open it in a browser")
    try:
        server_command(uri, host, port)  # a missing store is refused before anything starts
        check_port(host, port)
        link = newest_runs_link(uri, f"http://{host}:{port}")
        click.echo(f"MLflow UI for {uri} at http://{host}:{port} (Ctrl-C to stop); starting …")
        # The server's own log (startup notes, deprecation warnings) is kept out of the way.
        with tempfile.TemporaryFile() as log, _terminate_as_interrupt(), serve(uri, host, port, log) as server:
            click.echo(f"runs: {link}")  # once the server answers, so that the link works
            if open_browser:
                import webbrowser

                webbrowser.open(link)
            status = server.process.wait()
            raise Failure(f"the MLflow server stopped by itself (exit status {status}): {last_output_line(log)}")
    except QcrdError as exc:
        raise Failure(str(exc)) from None
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the server was stopped on the way out
        pass


@main.command(context_settings=CONTEXT)
@click.option("--task", "-t", required=True, help="Task whose training questions are asked (`list tasks`).")
@click.option("--teacher", required=True, help="Rationale source (`list teachers`), e.g. openai, hf, mcc-kd.")
@click.option("--samples", type=click.IntRange(min=1), help="Samples per question (teacher.samples).")
@click.option("--temperature", type=click.FloatRange(min=0), help="Sampling temperature (teacher.temperature).")
@click.option("--limit", type=click.IntRange(min=1), help="Only the first N training questions.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Set a task or teacher parameter, e.g. --set teacher.model=gpt-4o-mini (repeatable).")
@click.option("--output", "-o", type=click.Path(dir_okay=False),
              help="Where to write the set (default: rationales/<task>-<teacher>[-<model>].jsonl).")
@click.option("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or sqlite:///mlflow.db).")
@click.option("--experiment", help="MLflow experiment (default: qcrd-bench/<task>/teach).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
@plugins_dir_option
def teach(task, teacher, samples, temperature, limit, sets, output, tracking_uri, experiment, as_json, plugins_dir):
    """Ask a teacher for rationales of a task's training questions, write them as a
    rationale set (usable by any run as --teacher file:PATH), and report the teacher's
    quality: per-sample and majority-vote accuracy, agreement, parse rate, tokens, time.

    Generations are cached as they arrive ($QCRD_BENCH_GENERATION_CACHE or teacher.cache),
    so an interrupted teach resumes and asks only for what is missing.  An API key is
    read from the environment variable named by teacher.api_key_env, never from --set.

    \b
    Examples:
      qcrd-bench teach --task svamp --teacher mcc-kd
      OPENAI_API_KEY=... qcrd-bench teach -t svamp --teacher openai --set teacher.model=gpt-4o-mini --limit 20
      qcrd-bench teach -t svamp --teacher openai --set teacher.base_url=http://127.0.0.1:8000/v1 \\
          --set teacher.model=Qwen/Qwen2.5-7B-Instruct --samples 5 --temperature 0.7
    """
    from pathlib import Path

    from .config import parse_set, resolve_teach, teacher_choice
    from .errors import QcrdError
    from .runner import dumps
    from .teach import teach as run_teach
    from .tracking import tracking_uri as resolve_uri

    catalog = _catalog(plugins_dir)
    try:
        layer = dict(parse_set(item) for item in sets)
        for key, value in (("teacher.samples", samples), ("teacher.temperature", temperature), ("limit", limit)):
            if value is not None:
                layer[key] = value
        choice = teacher_choice(teacher)
        layer.update({k: v for k, v in choice.items() if k != "teacher.name"})
        config = resolve_teach(catalog, task, choice["teacher.name"], layer)
        summary = run_teach(catalog, config, resolve_uri(tracking_uri), Path(output) if output else None, experiment)
    except QcrdError as exc:
        raise Failure(str(exc)) from None
    if as_json:
        click.echo(dumps(summary))
        return
    click.echo(f"rationale set {summary['path']} (sha256 of content {summary['checksum'][:12]}), "
               f"run {summary['run_id']}")
    for key in ("questions", "samples", "parse_rate", "sample_accuracy", "majority_accuracy", "agreement",
                "valid_frac", "completion_tokens", "requests", "retries", "concurrency", "samples_per_s", "seconds"):
        if f"teacher/{key}" in summary:
            value = summary[f"teacher/{key}"]
            click.echo(f"  {key:<18} {value:.4f}" if isinstance(value, float) and value < 10 else
                       f"  {key:<18} {value:g}")


@main.command(context_settings=CONTEXT)
@click.option("--experiment", help="Report every finished training run of this MLflow experiment.")
@click.option("--run", "run_id", metavar="PARENT_RUN_ID", help="Report the child runs of this parent run (a sweep).")
@click.option("--suite", help="Report the newest parent run tagged qcrd.suite=NAME, in any experiment.")
@click.option("--out", type=click.Path(file_okay=False), help="Output folder (default: reports/<name>).")
@click.option("--baseline", metavar="VARIANT", help="Variant to pair seeds against (default: the parent's "
                                                    "qcrd.baseline tag, else dss if present).")
@click.option("--include-smoke", is_flag=True, help="Keep smoke runs (qcrd.smoke=true), excluded by default.")
@click.option("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or sqlite:///mlflow.db).")
def report(experiment, run_id, suite, out, baseline, include_smoke, tracking_uri):
    """Compare methods from the tracking store: a results table (mean ± std over seeds,
    with the paper's numbers beside ours), paired differences against a baseline with
    95% intervals, and plots.  Writes README.md, results.csv, differences.csv (and, where runs
    logged ground truth from a rationale checker, components.csv) and PNGs to reports/<name>/
    and, for a parent run, logs them to it under report/.

    \b
    Examples:
      qcrd-bench report --suite ablation-svamp
      qcrd-bench report --run 3f2a9c0d1e... --baseline dss --out reports/my-sweep
      qcrd-bench report --experiment qcrd-bench/svamp --include-smoke
    """
    from .errors import QcrdError
    from .report import make_report

    try:
        result = make_report(experiment=experiment, run_id=run_id, suite=suite, out=out, baseline=baseline,
                             include_smoke=include_smoke, uri_option=tracking_uri)
    except QcrdError as exc:
        raise Failure(str(exc)) from None
    logged = f"; logged to run {result['logged_to']} under report/" if result["logged_to"] else ""
    click.echo(f"report {result['out'] / 'README.md'}: {result['groups']} groups from {result['runs']} runs, "
               f"{len(result['plots'])} plots{logged}")


@main.command("list", context_settings=CONTEXT)
@click.argument("kind", required=False, type=click.Choice(KINDS))
@plugins_dir_option
def list_(kind, plugins_dir):
    """List registered components (all kinds, or one).

    \b
    Examples:
      qcrd-bench list
      qcrd-bench list methods
    """
    from .config import PRESETS

    catalog = _catalog(plugins_dir)
    for current in [kind] if kind else KINDS:
        click.echo(f"{current}:")
        if current == "presets":
            rows = [(name, f"student {preset['student']['name']}, {preset['train']['steps']} steps")
                    for name, preset in PRESETS.items()]
        else:
            registry = getattr(catalog, current)
            rows = [(name, _describe(current, registry.get(name)) + f"  ({registry.owners[name]})")
                    for name in registry.names()]
        width = max(len(name) for name, _ in rows)  # the longest name still leaves a gap
        for name, text in rows:
            click.echo(f"  {name:<{width}}  {text}")


def _describe(kind: str, item) -> str:
    if kind == "methods":
        return item.description + f"  [{', '.join(f'{s}={c}' for s, c in item.slots().items())}]"
    return item.description


@main.command(context_settings=CONTEXT)
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@plugins_dir_option
def plugins(as_json, plugins_dir):
    """Show loaded plugins: name, version and the hooks each implements.

    \b
    Example:
      qcrd-bench plugins --json
    """
    import json

    info = _catalog(plugins_dir).plugin_info()
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    for plugin in info:
        click.echo(f"{plugin['name']} {plugin['version'] or ''}: {', '.join(plugin['hooks'])}")


@main.group(context_settings=CONTEXT)
def data():
    """Inspect, verify and download the dataset files.

    Files come from the mirror in $QCRD_BENCH_DATA_DIR when it is set, else from the
    download cache (~/.cache/qcrd-bench/data, $QCRD_BENCH_CACHE_DIR).

    \b
    Examples:
      qcrd-bench data list
      qcrd-bench data check cqa
      qcrd-bench data download anli1
    """


@data.command("list", context_settings=CONTEXT)
@click.argument("task", required=False)
def data_list(task):
    """List each task's files: source, split, size and whether they are here.

    \b
    Example:
      qcrd-bench data list svamp
    """
    from .datacheck import file_groups, format_list, task_names
    from .errors import QcrdError

    try:
        names = [task] if task else task_names()
        if task and task not in task_names():
            raise Failure(f"unknown task {task!r} for `data list`; available: {', '.join(task_names())}")
        click.echo(format_list([g for name in names for g in file_groups(name)]))
    except QcrdError as exc:
        raise Failure(str(exc)) from None


@data.command("check", context_settings=CONTEXT)
@click.argument("task", required=False)
@plugins_dir_option
def data_check(task, plugins_dir):
    """Verify presence and sha256 of every file, rows per split, that each rationale
    file lines up with its input rows (teacher accuracy far above chance), and that no
    rationale of a test question reaches training.  Exits 2 on any problem.

    \b
    Examples:
      qcrd-bench data check
      qcrd-bench data check svamp
    """
    from .datacheck import check, format_check
    from .errors import QcrdError

    catalog = _catalog(plugins_dir)
    try:
        results = check(catalog, [task] if task else None)
    except QcrdError as exc:
        raise Failure(str(exc)) from None
    click.echo(format_check(results))
    problems = [p for r in results for p in r.problems]
    if problems:
        more = f" (and {len(problems) - 1} more above)" if len(problems) > 1 else ""
        raise Failure(f"data check failed: {problems[0]}{more}")
    click.echo(f"data check passed: {len(results)} task(s)")


@data.command("download", context_settings=CONTEXT)
@click.argument("task", required=False)
def data_download(task):
    """Download a task's files (default: all) into the cache, verified against the
    manifest (sha256) or, for the DSS datasets.zip, its git blob id.

    \b
    Example:
      QCRD_BENCH_DATA_DIR= qcrd-bench data download anli1
    """
    from .datacheck import download
    from .errors import QcrdError

    try:
        count = download([task] if task else None, click.echo)
    except QcrdError as exc:
        raise Failure(str(exc)) from None
    click.echo(f"{count} files ready")


if __name__ == "__main__":
    sys.exit(main())
