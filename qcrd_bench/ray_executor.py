"""``ablate --executor ray``: each child of a sweep is a Ray task that runs ``qcrd-bench run``.

Ray schedules the tasks by their resource request (``--cpus-per-child``, ``--gpus-per-child``)
on a local instance or on the cluster at ``--ray-address``.  A task whose process dies
(a lost node, a crashed worker, a run that exits with a crash) is retried by Ray; the
retry looks the child up in the tracking store first and, when the dead attempt left a
checkpoint, resumes that run instead of starting over.  Bad input (exit status 2) is not
retried.  Children write to the tracking server every node can reach; a SQLite store is
served from this machine on 127.0.0.1, which only a local instance can reach.

The task imports nothing of Ray's beyond ``ray.remote``: the worker runs the CLI in a
subprocess, so a child's torch threads, signals and MLflow state are its own.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from .ablate import Cell, Grid, cell_label, cell_settings, child_argv, child_result, last_line, resumable_children
from .errors import ConfigError
from .tracking import redact_url

# Passed to the workers' environment (never API keys: children train, they do not call teachers).
FORWARDED_ENV = ("QCRD_BENCH_DATA_DIR", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HF_HOME", "TOKENIZERS_PARALLELISM")
USER_ERROR = 2  # `qcrd-bench run`'s exit status for bad input: retrying cannot help


class ChildCrashed(RuntimeError):
    """A child process that died or exited with a crash: Ray retries the task."""


def run_child(grid: Grid, cell: Cell, uri: str, experiment: str, parent_id: str, threads: int,
              plugins_dir: str | None) -> tuple[int, str]:
    """Body of a Ray task: run one cell (resuming its stopped run when there is one);
    returns (exit status, the last line worth showing)."""
    import mlflow

    from .tracking import ParentRun

    client = mlflow.MlflowClient(tracking_uri=uri)
    children = ParentRun(client, parent_id, client.get_run(parent_id).info.experiment_id).children()
    resume = resumable_children(children, {cell.key}).get(cell.key)
    for run in children:
        # An earlier attempt of this task whose process died, and that left nothing to
        # resume from: Ray runs one attempt at a time, so it is not training any more.
        if (run.data.tags.get("qcrd.child_key") == cell.key and run.info.status == "RUNNING"
                and run.info.run_id != resume):
            client.set_terminated(run.info.run_id, "FAILED")
    with tempfile.TemporaryDirectory() as tmp:
        config_file = Path(tmp) / "cell.json"
        config_file.write_text(json.dumps(cell_settings(grid, cell.variant)))
        argv = child_argv(grid, cell, uri, experiment, parent_id, threads, plugins_dir, resume, config_file)
        proc = subprocess.Popen([sys.executable, "-m", "qcrd_bench.cli", *argv], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            out, err = proc.communicate()
        except BaseException:  # the task was cancelled: the child ends its run KILLED
            proc.send_signal(signal.SIGTERM)
            proc.wait()
            raise
    if proc.returncode not in (0, USER_ERROR):
        raise ChildCrashed(f"exit {proc.returncode}: {last_line(err)}")
    return proc.returncode, child_result(out) if proc.returncode == 0 else last_line(err)


class RayExecutor:
    """Submits the cells as Ray tasks, echoes each as it ends, and returns the failed keys."""

    def __init__(self, grid: Grid, uri: str, experiment: str, parent_id: str, plugins_dir: str | None,
                 echo: Callable[[str], None], address: str | None = None, cpus: int | None = None,
                 gpus: float = 0.0, retries: int = 2):
        self.grid, self.uri, self.experiment, self.parent_id = grid, uri, experiment, parent_id
        self.plugins_dir, self.echo, self.address = plugins_dir, echo, address
        self.cpus = int(cpus or grid.sets.get("train.threads") or 1)
        self.gpus, self.retries = gpus, retries

    def run(self, todo: list[Cell], resumable: dict[str, str]) -> list[str]:
        from . import tracking

        ray = _import_ray()
        started_here = not ray.is_initialized()
        if started_here:
            env = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
            # A local instance advertises the loopback address (its services still listen
            # on Ray's own terms, behind the token authentication Ray enables by default).
            local = {} if self.address else {"_node_ip_address": "127.0.0.1"}
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False,
                     runtime_env={"env_vars": env} if env else None, **local)
        try:
            with tracking.local_server(self.uri, self.echo) as uri:
                return self._submit_and_wait(ray, todo, uri)
        finally:
            if started_here:
                ray.shutdown()

    def _submit_and_wait(self, ray, todo: list[Cell], uri: str) -> list[str]:
        task = ray.remote(run_child).options(num_cpus=self.cpus, num_gpus=self.gpus, max_retries=self.retries,
                                            retry_exceptions=[ChildCrashed])
        resources = ray.cluster_resources()
        self.echo(f"ray: {len(todo)} children, {self.cpus} CPU(s){f' and {self.gpus} GPU(s)' if self.gpus else ''} "
                  f"each, on a cluster of {resources.get('CPU', 0):g} CPUs and {resources.get('GPU', 0):g} GPUs; "
                  f"store at {redact_url(uri)}")
        pending = {task.remote(self.grid, cell, uri, self.experiment, self.parent_id, self.cpus, self.plugins_dir):
                   (number, cell) for number, cell in enumerate(todo, 1)}
        failed: list[str] = []
        started = time.monotonic()
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                number, cell = pending.pop(done[0])
                label = cell_label(number, len(todo), cell)
                try:
                    status, line = ray.get(done[0])
                except Exception as exc:  # noqa: BLE001 - retries exhausted: one failed cell, the sweep goes on
                    status, line = 1, str(exc).strip().splitlines()[-1]
                if status != 0:
                    failed.append(cell.key)
                self.echo(f"{label}: {'failed: ' if status else ''}{line} ({time.monotonic() - started:.0f} s)")
        except BaseException:
            for ref in pending:  # Ctrl-C or SIGTERM: each child ends its run KILLED ...
                ray.cancel(ref)
            # ... through the tracking server, which must outlive them.
            ray.wait(list(pending), num_returns=len(pending), timeout=60)
            raise
        return failed


def check_options(uri: str, address: str | None) -> None:
    """Refuse, before any run opens, a sweep whose children could not reach its store."""
    _import_ray()
    if address and uri.startswith("sqlite:"):
        raise ConfigError(f"--ray-address {address}: the children on the cluster cannot reach the SQLite store "
                          f"{uri}; give --tracking-uri http://HOST:PORT of a shared tracking server")


def _import_ray():
    try:
        import ray
    except ImportError:
        raise ConfigError("--executor ray needs Ray: pip install 'qcrd-bench[ray]'") from None
    return ray

