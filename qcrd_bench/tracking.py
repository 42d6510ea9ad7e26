"""MLflow tracking.  This is the only module that imports mlflow.

Layout: experiment ``qcrd-bench/<task>``; one run per (method, task, seed) with the
grouping keys as ``qcrd.*`` tags; params logged once; metrics namespaced
``train/``, ``val/``, ``test/``, ``final/``, ``best/``, ``data/``, ``eval/``.
A run that raises is ended FAILED (KILLED on Ctrl-C), never left RUNNING.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import urlsplit, urlunsplit

from .files import file_lock

DEFAULT_URI = "sqlite:///mlflow.db"
UI_PORT = 5000  # `qcrd-bench ui`'s default port, which the links printed by `run` and `ablate` assume
DESCRIPTION_TAG = "mlflow.note.content"  # the Markdown the UI shows as a run's Description

# The runs table MLflow 3.x shows by default has no metric, parameter or tag.  Its "shared
# view" (an experiment tag ``mlflow.sharedViewState.<key>`` holding the table's state as
# JSON, opened by ``viewStateShareKey=<key>`` in the page's URL) sets the columns, their
# order and widths; the links qcrd-bench prints open it.  ``workflowType=machine_learning``
# opens the runs table rather than the GenAI overview, which MLflow 3.17 shows first
# whatever the experiment's tags.
VIEW_KEY = "qcrd-bench"
VIEW_TAG = f"mlflow.sharedViewState.{VIEW_KEY}"
TRAINING_COLUMNS = ("metrics.`test/accuracy`", "metrics.`best/val_accuracy`", "tags.`qcrd.method`",
                    "tags.`qcrd.task`", "tags.`qcrd.seed`", "tags.`qcrd.preset`")
TEACH_COLUMNS = ("metrics.`teacher/majority_accuracy`", "metrics.`teacher/sample_accuracy`",
                 "metrics.`teacher/parse_rate`", "tags.`qcrd.task`", "tags.`qcrd.teacher`")
_RUN_NAME, _TABLE_COLUMNS = "attributes.`Run Name`", ("runDateAndNestInfo", "duration")  # as the table's grid names them


def tracking_uri(option: str | None) -> str:
    return option or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_URI


class TrackedRun:
    """A thin handle on the active MLflow run.  A resumed run drops the metric steps its
    earlier life already logged, so no step is ever logged twice."""

    def __init__(self, run):
        self.run_id, self.experiment_id = run.info.run_id, run.info.experiment_id
        self.tags = dict(run.data.tags)
        self.logged = _last_steps(run) if run.data.metrics else {}

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> dict[str, float]:
        """Log ``metrics`` at ``step``; returns those logged (not logged before at that step)."""
        import mlflow

        new = {k: float(v) for k, v in metrics.items() if step is None or step > self.logged.get(k, -1)}
        if new:
            mlflow.log_metrics(new, step=step)
        return new

    def set_tags(self, tags: dict[str, str]) -> None:
        import mlflow

        mlflow.set_tags(tags)

    def describe(self, markdown: str) -> None:
        """The run's description in the UI (its Overview tab)."""
        self.set_tags({DESCRIPTION_TAG: markdown})

    def log_dict(self, obj: Any, path: str) -> None:
        import mlflow

        mlflow.log_dict(scrub(obj), path)

    def log_table(self, rows: list[dict[str, Any]], path: str) -> None:
        """A table the MLflow UI shows in its artifact viewer (``.json`` table format)."""
        import mlflow

        if rows:
            mlflow.log_table({key: [row[key] for row in rows] for key in rows[0]}, artifact_file=path)

    def log_artifact(self, file: Path, path: str) -> None:
        import mlflow

        mlflow.log_artifact(str(file), artifact_path=path)

    def log_artifacts(self, directory: Path, path: str) -> None:
        import mlflow

        mlflow.log_artifacts(str(directory), artifact_path=path)


@contextlib.contextmanager
def store_lock(uri: str) -> Iterator[None]:
    """Hold an exclusive lock beside a SQLite store (``<file>.lock``) while a process
    creates its tables or an experiment: runs started at once on a new store otherwise
    race in MLflow's schema migration ("duplicate column name")."""
    path = sqlite_path(uri)
    if path is None:
        yield
        return
    with file_lock(Path(f"{path}.lock")):
        yield


@contextlib.contextmanager
def open_run(uri: str, experiment: str, run_name: str, tags: dict[str, Any],
             params: dict[str, Any], resume: str | None = None,
             start_time: float | None = None) -> Iterator[TrackedRun]:
    """Start a run (or reopen run ``resume``), yield it, and end it FINISHED, FAILED or KILLED.
    ``start_time`` (seconds since the epoch) dates a new run from when its command started,
    so that the UI's Duration counts the loading done before the run opened, as
    ``time/run_seconds`` does."""
    import mlflow

    from .errors import ConfigError

    try:
        with store_lock(uri):
            mlflow.set_tracking_uri(uri)
            found = mlflow.set_experiment(experiment)
            set_runs_view(mlflow.MlflowClient(), found, TEACH_COLUMNS if tags.get("qcrd.kind") == "teach"
                          else TRAINING_COLUMNS)
    except mlflow.exceptions.MlflowException as exc:
        raise ConfigError(f"tracking store {uri!r}, experiment {experiment!r}: {str(exc).splitlines()[0]}") from None
    except OSError as exc:  # the store's folder (or its lock file) cannot be made, e.g. under a regular file
        where = f": {exc.filename}" if exc.filename else ""
        raise ConfigError(f"tracking store {uri!r}: cannot create or open it: {exc.strerror or exc}{where}") from None
    status = "FAILED"
    try:
        # A signal between creating the run and this try would leave it RUNNING: held until then.
        with _signals_held():
            if resume:
                run = mlflow.start_run(run_id=resume)
            else:
                run = _start_run(found.experiment_id, run_name, {k: str(v) for k, v in tags.items()}, start_time)
        if not resume:
            mlflow.log_params({k: _param(scrub(v)) for k, v in params.items()})
        yield TrackedRun(run)
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        with _signals_held():  # e.g. the SIGTERM a launcher sends when another process of the run failed
            if mlflow.active_run() is not None:  # none when creating it failed
                mlflow.end_run(status=status)


def _start_run(experiment_id: str, run_name: str, tags: dict[str, str], start_time: float | None):
    """A new active run, created with ``start_time`` (``mlflow.start_run`` takes none) and
    the context tags (source, user, git commit) that ``mlflow.start_run`` would add."""
    import mlflow
    from mlflow.tracking.context import registry
    from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME

    if start_time is None:
        return mlflow.start_run(run_name=run_name, tags=tags)
    created = mlflow.MlflowClient().create_run(experiment_id, start_time=int(start_time * 1000), run_name=run_name,
                                               tags=registry.resolve_tags({**tags, MLFLOW_RUN_NAME: run_name}))
    return mlflow.start_run(run_id=created.info.run_id)


def set_runs_view(client, experiment, columns: tuple[str, ...]) -> None:
    """Write the experiment's runs view (see VIEW_KEY) unless it holds these columns already:
    run name (wide enough for a sweep's), created, duration, then ``columns`` in order."""
    state = json.dumps({
        "selectedColumns": [*columns, "attributes.`Duration`"],
        # The grid applies widths only with an order, which must then name every column.
        "columnOrder": [_RUN_NAME, *_TABLE_COLUMNS, *columns],
        "columnWidths": {_RUN_NAME: 300, **{c: 140 for c in columns if c.startswith("metrics.")}},
        "orderByKey": "attributes.start_time", "orderByAsc": False})
    if experiment.tags.get(VIEW_TAG) != state:
        client.set_experiment_tag(experiment.experiment_id, VIEW_TAG, state)


def runs_link(base_url: str, experiment_id: str, view: bool = True) -> str:
    """The UI's runs table of an experiment: the machine-learning workflow, with qcrd-bench's
    columns when the experiment has its view (``view``)."""
    query = "workflowType=machine_learning" + (f"&viewStateShareKey={VIEW_KEY}" if view else "")
    return f"{base_url.rstrip('/')}/#/experiments/{experiment_id}/runs?{query}"


def browse_hint(uri: str, experiment_id: str) -> str:
    """Where to see an experiment's runs: the link, and the `ui` command that serves it
    when the store is not a tracking server already."""
    if uri.startswith(("http://", "https://")):
        return f"open {runs_link(redact_url(uri), experiment_id)}"
    command = "qcrd-bench ui" + ("" if uri == DEFAULT_URI else f" --tracking-uri {redact_url(uri)}")
    return f"{command}, then open {runs_link(f'http://127.0.0.1:{UI_PORT}', experiment_id)}"


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM while the block runs, then deliver them: a signal in the
    middle of ending a run would leave it RUNNING."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = {signum: signal.signal(signum, lambda signum, frame: received.append(signum))
                for signum in (signal.SIGINT, signal.SIGTERM) if signal.getsignal(signum) is not None}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if received:
            signal.raise_signal(received[0])


def _last_steps(run) -> dict[str, int]:
    """The last step logged of each of a run's metrics."""
    import mlflow

    client = mlflow.MlflowClient()
    return {key: max(m.step for m in client.get_metric_history(run.info.run_id, key)) for key in run.data.metrics}


def find_run(uri: str, run_id: str):
    """The stored run ``run_id`` (ConfigError when the store has none)."""
    import mlflow

    from .errors import ConfigError

    try:
        return mlflow.MlflowClient(tracking_uri=uri).get_run(run_id)
    except mlflow.exceptions.MlflowException as exc:
        raise ConfigError(f"--resume {run_id}: no such run in {redact_url(uri)} "
                          f"({str(exc).splitlines()[0]})") from None


def run_artifact_json(uri: str, run_id: str, path: str) -> Any:
    import json

    import mlflow

    from .errors import ConfigError

    try:
        local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=path, tracking_uri=uri)
    except Exception as exc:  # noqa: BLE001 - any store error means the artifact is not there
        raise ConfigError(f"run {run_id}: cannot read its {path} ({str(exc).splitlines()[0]})") from None
    return json.loads(Path(local).read_text(encoding="utf-8"))


def _param(value: Any) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= 500 else text[:497] + "..."


_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s\"']+")


def redact_url(url: str) -> str:
    """The URL without user:password (``https://***@host/...``)."""
    try:
        parts = urlsplit(url)
        if parts.username is None and parts.password is None:
            return url
        netloc = "***@" + (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
    except ValueError:  # not a URL after all
        return url
    return urlunsplit(parts._replace(netloc=netloc))


def scrub(obj: Any) -> Any:
    """``obj`` with credentials removed from every URL in it (a teacher's base_url may
    carry them); what MLflow and rationale-set headers receive."""
    if isinstance(obj, str):
        return _URL.sub(lambda m: redact_url(m.group(0)), obj)
    if isinstance(obj, dict):
        return {k: scrub(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(scrub(v) for v in obj)
    return obj


class ParentRun:
    """The parent run of a sweep, driven through the client so that children can be
    ordinary (fluent) runs; children carry ``mlflow.parentRunId``, which the UI nests by."""

    def __init__(self, client, run_id: str, experiment_id: str):
        self.client, self.run_id, self.experiment_id = client, run_id, experiment_id

    def children(self) -> list:
        return self.client.search_runs([self.experiment_id], f"tags.`mlflow.parentRunId` = '{self.run_id}'",
                                       max_results=50000)

    def end_children(self, run_ids: list[str], status: str) -> None:
        for run_id in run_ids:
            self.client.set_terminated(run_id, status)

    def finished_children(self) -> set[str]:
        return {r.data.tags.get("qcrd.child_key", "") for r in self.children() if r.info.status == "FINISHED"}

    def log_metrics(self, metrics: dict[str, float]) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, 0) for k, v in metrics.items()]
        for start in range(0, len(items), 1000):  # the store's batch limit
            self.client.log_batch(self.run_id, metrics=items[start:start + 1000])

    def log_artifacts(self, directory: Path, path: str) -> None:
        self.client.log_artifacts(self.run_id, str(directory), artifact_path=path)

    def describe(self, markdown: str) -> None:
        self.client.set_tag(self.run_id, DESCRIPTION_TAG, markdown)

    def end(self, status: str) -> None:
        self.client.set_terminated(self.run_id, status)


def open_parent(uri: str, experiment: str, run_name: str, tags: dict[str, Any], params: dict[str, Any]) -> ParentRun:
    """The sweep's parent run: the existing one with the same ``qcrd.grid_key`` (set RUNNING
    again, so an interrupted sweep resumes under it), else a new one."""
    import mlflow

    from .errors import ConfigError

    try:
        with store_lock(uri):  # MlflowClient creates a new store's tables as it is made
            client = mlflow.MlflowClient(uri)
            found = client.get_experiment_by_name(experiment)
            experiment_id = found.experiment_id if found else client.create_experiment(experiment)
            set_runs_view(client, found or client.get_experiment(experiment_id), TRAINING_COLUMNS)
        previous = client.search_runs([experiment_id], f"tags.`qcrd.grid_key` = '{tags['qcrd.grid_key']}'",
                                      order_by=["attributes.start_time DESC"], max_results=1)
    except mlflow.exceptions.MlflowException as exc:
        raise ConfigError(f"tracking store {uri!r}, experiment {experiment!r}: {str(exc).splitlines()[0]}") from None
    if previous:
        run_id = previous[0].info.run_id
        client.update_run(run_id, status="RUNNING", name=run_name)  # the name says its seeds, which may grow
        for key, value in tags.items():  # and so may the number of children
            client.set_tag(run_id, key, str(value))
        return ParentRun(client, run_id, experiment_id)
    run = client.create_run(experiment_id, run_name=run_name, tags={k: str(v) for k, v in tags.items()})
    for key, value in params.items():
        client.log_param(run.info.run_id, key, _param(scrub(value)))
    return ParentRun(client, run.info.run_id, experiment_id)


# Reading a store back (`qcrd-bench report`): plain data, so callers never touch mlflow.

@dataclass
class StoredRun:
    run_id: str
    experiment_id: str
    name: str
    status: str
    start_time: int  # ms since the epoch
    tags: dict[str, str]
    params: dict[str, str]
    metrics: dict[str, float]  # the latest value of each


class Store:
    """Read access to an existing tracking store, and logging files to one of its runs."""

    def __init__(self, uri: str):
        import mlflow

        from .errors import ConfigError

        path = sqlite_path(uri)
        if path is not None and not path.exists():
            # Opening a missing SQLite store would silently create an empty one.
            raise ConfigError(f"--tracking-uri {uri!r}: no tracking store there ({path} does not exist)")
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        self.uri, self.client = uri, mlflow.MlflowClient(uri)

    def run(self, run_id: str) -> StoredRun | None:
        import mlflow

        try:
            return _stored(self.client.get_run(run_id))
        except mlflow.exceptions.MlflowException as exc:
            if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                return None
            raise self._error(exc) from None

    def experiment_id(self, name: str) -> str | None:
        found = self._call(self.client.get_experiment_by_name, name)
        return found.experiment_id if found else None

    def experiment_name(self, experiment_id: str) -> str:
        return self._call(self.client.get_experiment, experiment_id).name

    def experiment_ids(self) -> list[str]:
        return [e.experiment_id for e in self._call(self.client.search_experiments)]

    def search(self, experiment_ids: list[str], filter_string: str = "") -> list[StoredRun]:
        """Every run matching an MLflow filter, newest first."""
        runs, token = [], None
        while True:
            page = self._call(self.client.search_runs, experiment_ids, filter_string,
                              order_by=["attributes.start_time DESC"], max_results=1000, page_token=token)
            runs += [_stored(r) for r in page]
            token = page.token
            if not token:
                return runs

    def history(self, run_id: str, key: str) -> list[tuple[int, float]]:
        """(step, value) of every logged value of a metric, by step."""
        return sorted((m.step, m.value) for m in self._call(self.client.get_metric_history, run_id, key))

    def table(self, run_id: str, path: str) -> dict[str, list] | None:
        """A table logged with ``log_table`` as {column: values}, or None where the run has none."""
        import json
        import tempfile

        folder = path.rsplit("/", 1)[0] if "/" in path else None
        if path not in {f.path for f in self._call(self.client.list_artifacts, run_id, folder)}:
            return None
        with tempfile.TemporaryDirectory() as tmp:
            local = self._call(self.client.download_artifacts, run_id, path, tmp)
            data = json.loads(Path(local).read_text(encoding="utf-8"))
        columns, rows = data.get("columns"), data.get("data")
        if not isinstance(columns, list) or not isinstance(rows, list):
            return None
        return {c: [row[i] for row in rows] for i, c in enumerate(columns)}

    def log_files(self, run_id: str, files: list[Path], path: str) -> None:
        for file in files:
            self._call(self.client.log_artifact, run_id, str(file), path)

    def _call(self, fn, *args, **kwargs):
        import mlflow

        try:
            return fn(*args, **kwargs)
        except mlflow.exceptions.MlflowException as exc:
            raise self._error(exc) from None

    def _error(self, exc: Exception):
        from .errors import ConfigError

        return ConfigError(f"tracking store {self.uri!r}: {str(exc).splitlines()[0]}")


def sqlite_path(uri: str) -> Path | None:
    if not uri.startswith("sqlite:///") or uri.endswith(":memory:"):
        return None
    return Path(uri[len("sqlite:///"):])


def _stored(run) -> StoredRun:
    return StoredRun(run.info.run_id, run.info.experiment_id, run.info.run_name or "", run.info.status,
                     run.info.start_time or 0, dict(run.data.tags), dict(run.data.params), dict(run.data.metrics))


def server_command(uri: str, host: str, port: int) -> tuple[list[str], dict[str, str]]:
    """The command and environment of an MLflow server over ``uri`` (one worker; the job
    runner, which needs extra services, off).  A missing SQLite store is an error, not a
    new empty one."""
    import sys

    from .errors import ConfigError

    path = sqlite_path(uri)
    if path is not None and not path.exists():
        raise ConfigError(f"--tracking-uri {uri!r}: no tracking store there ({path} does not exist)")
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri, "--host", host,
               "--port", str(port), "--workers", "1"]
    return command, {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def check_port(host: str, port: int) -> None:
    """ConfigError, before a server is started, when ``host:port`` cannot be bound (a port
    in use makes the MLflow server print an error and exit 0)."""
    import errno
    import socket

    from .errors import ConfigError

    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds
            probe.bind(address)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(f"--port {port}: {host}:{port} is already in use (another `qcrd-bench ui` or "
                              f"server?); stop it or pick another port, e.g. --port {port + 1}") from None
        raise ConfigError(f"--host {host} --port {port}: cannot listen there: {exc.strerror or exc}") from None


@dataclass
class Server:
    url: str
    process: Any  # subprocess.Popen; replaced when the server is started again


@contextlib.contextmanager
def serve(uri: str, host: str, port: int, log=None, timeout_s: float = 120.0,
          on_restart: Callable[[str], None] | None = None) -> Iterator[Server]:
    """An MLflow server over ``uri`` for the duration, once it answers.  ``log``: a file
    for its output (default: this process's).  It is stopped, with the workers it starts,
    when the block ends.  With ``on_restart`` (told why), a server that stops before then
    is started again on the same port (``keep_alive``)."""
    import threading

    command, env = server_command(uri, host, port)
    server = Server(f"http://{host}:{port}", _start_server(command, env, log))
    stop = threading.Event()
    watcher = threading.Thread(target=keep_alive, args=(server, command, env, log, stop, on_restart), daemon=True)
    try:
        _wait_until_up(server, uri, log, timeout_s)
        if on_restart is not None:
            watcher.start()
        yield server
    finally:
        stop.set()
        if watcher.is_alive():
            watcher.join()
        _stop_server(server.process)


def _start_server(command: list[str], env: dict[str, str], log):
    import subprocess

    return subprocess.Popen(command, stdout=log, stderr=log, env=env, start_new_session=True)


def _wait_until_up(server: Server, uri: str, log, timeout_s: float) -> None:
    import time
    import urllib.request

    from .errors import ConfigError

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            # Asked only while this server runs: another one on the same port may answer.
            if server.process.poll() is None:
                urllib.request.urlopen(f"{server.url}/health", timeout=2).read()
                return
            raise OSError("the server exited")
        except OSError:
            if server.process.poll() is not None or time.monotonic() > deadline:
                raise ConfigError(f"could not start an MLflow server for {redact_url(uri)} at {server.url}: "
                                  f"{last_output_line(log)}") from None
            time.sleep(0.3)


def _stop_server(process) -> None:
    import subprocess

    with contextlib.suppress(ProcessLookupError):  # it may have stopped by itself
        os.killpg(process.pid, 15)  # the server runs its workers in its own process group
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)


def keep_alive(server: Server, command: list[str], env: dict[str, str], log, stop, on_restart,
               poll_s: float = 1.0, max_restarts: int = 5) -> None:
    """Start the server again whenever it stops while still needed (killed by hand, out of
    memory).  Its clients, a sweep's workers, retry a failed request for minutes: with the
    server back on the same port they carry on, where before they waited out their retries
    on every call and the sweep seemed to hang."""
    restarts = 0
    while not stop.wait(poll_s):
        code = server.process.poll()
        if code is None:
            continue
        if restarts == max_restarts:
            on_restart(f"the tracking server at {server.url} stopped again (exit {code}) after {restarts} "
                       f"restarts; not starting it again: {last_output_line(log)}")
            return
        restarts += 1
        _stop_server(server.process)  # its workers, which may still hold the port
        on_restart(f"the tracking server at {server.url} stopped (exit {code}); starting it again")
        server.process = _start_server(command, env, log)


def last_output_line(log) -> str:
    """The last line a server wrote to ``log`` (a binary file), for an error message."""
    if log is None:
        return "see its output above"
    log.flush()
    log.seek(0)
    return (log.read().decode(errors="replace").strip().splitlines()[-1:] or ["no output"])[0]


@contextlib.contextmanager
def local_server(uri: str, echo: Callable[[str], None] | None = None) -> Iterator[str]:
    """A tracking server on 127.0.0.1 over a SQLite store, for the duration (several
    processes then write through it instead of locking the file); other URIs pass through.
    With ``echo``, a server that stops is started again (``keep_alive``) and ``echo`` says so."""
    import socket
    import tempfile

    if not uri.startswith("sqlite:"):
        yield uri
        return
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with tempfile.TemporaryFile() as log, serve(uri, "127.0.0.1", port, log, on_restart=echo) as server:
        yield server.url


def newest_runs_link(uri: str, base_url: str) -> str:
    """The runs table of the experiment with the newest run (else the newest experiment),
    with qcrd-bench's view written on it when its runs are qcrd-bench's; the UI's home
    page for an empty store."""
    import mlflow

    client = mlflow.MlflowClient(uri)
    experiments = client.search_experiments(order_by=["creation_time DESC"])
    runs = client.search_runs([e.experiment_id for e in experiments], order_by=["attributes.start_time DESC"],
                              max_results=1) if experiments else []
    if runs:
        experiment = next(e for e in experiments if e.experiment_id == runs[0].info.experiment_id)
        tags = runs[0].data.tags
        if "qcrd.kind" in tags or "qcrd.variant" in tags:
            set_runs_view(client, experiment, TEACH_COLUMNS if tags.get("qcrd.kind") == "teach" else TRAINING_COLUMNS)
            return runs_link(base_url, experiment.experiment_id)
        return runs_link(base_url, experiment.experiment_id, view=False)
    named = [e for e in experiments if e.name != "Default"]
    return runs_link(base_url, named[0].experiment_id, view=False) if named else base_url.rstrip("/") + "/"
