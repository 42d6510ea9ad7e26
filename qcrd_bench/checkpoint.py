"""Checkpoints that let a killed run continue where it stopped (``run --resume RUN_ID``).

A run's checkpoint directory holds one ``checkpoint.pt``: everything the training loop
needs to go on as if it had never stopped (student, optimizer, scheduler, the judge and
its optimizer, the snapshot ring, RNG states, the position in the data stream, the
best-validation weights).  It is written to a temporary file, synced, then renamed over
the old one, so a kill or a full disk mid-write leaves the previous checkpoint whole.
It is read with ``weights_only=True``: tensors and plain values, never pickled code.

While a run trains, it holds a lock on ``<dir>/lock``; a second process resuming the
same run (its MLflow status still says RUNNING after a SIGKILL) is refused while the
first is alive, and let in once it has died.
"""

from __future__ import annotations

import errno
import fcntl
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import QcrdError

FORMAT = 1
FILE = "checkpoint.pt"


def _take_lock(path: Path):
    """An open handle holding the exclusive lock on ``path`` (created if missing), or None
    where another process holds it."""
    handle = open(path, "a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


class Checkpoints:
    """The checkpoint directory of one run."""

    def __init__(self, directory: Path, every: int, run_id: str, config_hash: str):
        self.directory, self.every, self.run_id, self.config_hash = Path(directory), every, run_id, config_hash
        self.path = self.directory / FILE
        self._lock_handle = None

    def open(self) -> None:
        """Create the directory, check that it is writable, and take the run's lock:
        before training starts, so a read-only or full disk fails at once.  A run that
        writes no checkpoints and has none touches nothing."""
        if self.every == 0 and not self.directory.exists():
            return
        ensure_writable(self.directory, "checkpoint directory")
        try:
            self._lock_handle = _take_lock(self.directory / "lock")
        except OSError as exc:
            raise QcrdError(f"checkpoint directory {self.directory}: not writable: {exc.strerror or exc}") from None
        if self._lock_handle is None:
            raise QcrdError(f"run {self.run_id} is still training in another process "
                            f"(it holds {self.directory / 'lock'})")

    @staticmethod
    def abandoned(directory: Path) -> bool:
        """Whether no process holds the lock of the run whose folder this is: its process
        died (a SIGKILL, a lost machine) and its RUNNING status in MLflow is stale.  Without
        a lock file nothing can be told, so the run is not called abandoned."""
        lock = Path(directory) / "lock"
        try:
            handle = _take_lock(lock) if lock.is_file() else None
        except OSError:  # unreadable: nothing can be told either
            return False
        if handle is None:
            return False
        handle.close()
        return True

    def close(self, remove: bool = False) -> None:
        if self._lock_handle is not None:
            self._lock_handle.close()
            self._lock_handle = None
        if remove and self.directory.exists():
            shutil.rmtree(self.directory, ignore_errors=True)

    def due(self, step: int, last_step: int) -> bool:
        return self.every > 0 and step % self.every == 0 and step < last_step

    def save(self, state: dict[str, Any]) -> None:
        payload = {"format": FORMAT, "run_id": self.run_id, "config_hash": self.config_hash, **state}
        tmp = self.directory / f".{FILE}.tmp-{os.getpid()}"
        try:
            with open(tmp, "wb") as handle:
                torch.save(payload, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
            _sync_directory(self.directory)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            full = " (the disk is full)" if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG) else ""
            raise QcrdError(f"checkpoint {self.path}: cannot write{full}: {exc.strerror or exc}; "
                            f"the previous checkpoint, if any, is intact") from None

    def load(self) -> dict[str, Any] | None:
        """The last checkpoint, or None when the run never wrote one."""
        if not self.path.exists():
            return None
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as exc:  # a damaged file: say which, never train on it
            raise QcrdError(f"checkpoint {self.path}: unreadable ({type(exc).__name__}: {exc}); "
                            f"delete it to restart the run from its beginning") from None
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise QcrdError(f"checkpoint {self.path}: not a qcrd-bench checkpoint of format {FORMAT}")
        for key, expected in (("run_id", self.run_id), ("config_hash", self.config_hash)):
            if state.get(key) != expected:
                raise QcrdError(f"checkpoint {self.path}: {key} is {state.get(key)!r}, this run's is {expected!r}")
        return state


def ensure_writable(folder: Path, what: str) -> None:
    """Create ``folder`` and write a probe file in it, or raise one clear line naming ``what``."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".probe-{os.getpid()}"
        probe.write_bytes(b"0" * 4096)
        probe.unlink()
    except OSError as exc:
        raise QcrdError(f"{what} {folder}: not writable: {exc.strerror or exc}") from None


def _sync_directory(directory: Path) -> None:
    """Make the rename itself durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def rng_state() -> dict[str, Any]:
    """Every random generator a step can draw from, as tensors and plain values."""
    numpy_state = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": _plain(random.getstate()),
             "numpy": [numpy_state[0], torch.from_numpy(numpy_state[1].astype(np.int64)), *numpy_state[2:]]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), *rest))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value
