"""What the built-in tasks share: published splits -> train/val/test, the seeded
validation carve and training subset, parameter checks, and text normalisation."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

import numpy as np

from qcrd_bench.components import Example, Task, TaskData
from qcrd_bench.data import sha256_file
from qcrd_bench.errors import ConfigError, DataError

# Every built-in task takes these (logged with the run); validation is carved only where none is published.
COMMON_DEFAULTS: dict[str, Any] = {
    "val_fraction": 0.1,  # share of the training split carved off as validation where none is published
    "val_seed": 0,
    "train_fraction": 1.0,  # data-size study: keep this seeded share of the training examples
    "train_fraction_seed": 0,
}


def carve_validation(train: list[Example], fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    """Split off ``fraction`` of train as validation exactly as DSS does
    (``datasets.Dataset.train_test_split(test_size=fraction, seed=seed)``)."""
    if fraction <= 0:
        return train, []
    order = np.random.default_rng(seed).permutation(len(train))
    n_val = math.ceil(fraction * len(train))
    return [train[i] for i in order[n_val:]], [train[i] for i in order[:n_val]]


def take_fraction(train: list[Example], fraction: float, seed: int) -> list[Example]:
    """A seeded subset of ``ceil(fraction * n)`` training examples, in their original order
    (nested: with one seed, a smaller fraction is a subset of a larger one)."""
    if fraction >= 1:
        return train
    keep = math.ceil(fraction * len(train))
    chosen = sorted(np.random.default_rng(seed).permutation(len(train))[:keep])
    return [train[i] for i in chosen]


def check_fraction(params: dict[str, Any]) -> None:
    if not 0 <= params["val_fraction"] < 1:
        raise ConfigError(f"task.val_fraction: must be in [0, 1), got {params['val_fraction']}")
    if not 0 < params["train_fraction"] <= 1:
        raise ConfigError(f"task.train_fraction: must be in (0, 1], got {params['train_fraction']}")


def check_choice(params: dict[str, Any], key: str, allowed: tuple[str, ...], task: str) -> None:
    if params[key] not in allowed:
        raise ConfigError(f"task.{key}: unknown {task} value {params[key]!r}; available: {', '.join(allowed)}")


_SPACES = re.compile(r"\s+")


def question_key(text: str) -> str:
    """A question compared across files and splits: whitespace collapsed, case folded."""
    return _SPACES.sub(" ", text).strip().casefold()


@dataclass
class Published:
    """The task's published splits as read from its files (before any carving)."""

    splits: dict[str, list[Example]] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)  # relpath -> sha256
    missing: dict[str, str] = field(default_factory=dict)  # split -> why it is unavailable
    source: str = ""  # e.g. "cqa/dss": rationale sources aligned by row check it
    skipped: int = 0  # rows a task deliberately leaves out (it says why in its notes)

    def locate(self, split: str, relpath: str, fetcher: Callable, skip_missing: bool):
        """The local path of ``relpath`` (its sha256 recorded), or None when it cannot be
        provided and ``skip_missing`` is set (the reason recorded under ``split``)."""
        try:
            path = fetcher(relpath)
        except DataError as exc:
            if not skip_missing:
                raise
            self.missing[split] = str(exc)
            return None
        self.files[relpath] = sha256_file(path)
        return path

    def read(self, split: str, relpath: str, fetcher: Callable, reader: Callable, skip_missing: bool) -> None:
        """Read ``split`` from ``relpath`` with ``reader(path)`` (see :meth:`locate`)."""
        path = self.locate(split, relpath, fetcher, skip_missing)
        if path is not None:
            self.splits[split] = reader(path)


class DatasetTask(Task):
    """A task read from published files.  Subclasses implement :meth:`published` and
    :meth:`assign`; :meth:`load` adds the training subset and the notes."""

    source: ClassVar[str] = ""
    chance: ClassVar[float] = 0.0  # accuracy of guessing; `data check` wants teachers far above it

    def published(self, params: dict[str, Any], skip_missing: bool = False) -> Published:
        raise NotImplementedError

    def assign(self, pub: Published, params: dict[str, Any]) -> tuple[list, list, list, dict[str, Any]]:
        """(train, val, test, notes) from the published splits."""
        raise NotImplementedError

    def check_params(self, params: dict[str, Any]) -> None:
        check_fraction(params)

    def check(self, params: dict[str, Any]) -> None:
        self.check_params({**self.defaults, **params})

    def load(self, params: dict[str, Any]) -> TaskData:
        params = {**self.defaults, **params}  # callers of the Python API may pass only some keys
        self.check_params(params)
        pub = self.published(params)
        train, val, test, notes = self.assign(pub, params)
        full = len(train)
        train = take_fraction(train, params["train_fraction"], params["train_fraction_seed"])
        notes = {"source": pub.source, **notes}
        if params["train_fraction"] < 1:
            notes["train_fraction"] = (f"{len(train)} of {full} training rows kept (fraction "
                                       f"{params['train_fraction']}, seed {params['train_fraction_seed']}); "
                                       "validation and test unchanged")
        return TaskData(train=train, val=val, test=test, files=pub.files, notes=notes, params=params)

    def carve(self, rows: list[Example], params: dict[str, Any], origin: str) -> tuple[list, list, str]:
        """Train and validation carved from ``rows`` (DSS's rule), with the note saying so."""
        train, val = carve_validation(rows, params["val_fraction"], params["val_seed"])
        note = (f"{len(val)} rows ({params['val_fraction']:.0%}) carved from {origin} with seed "
                f"{params['val_seed']} as DSS's train_test_split does")
        return train, val, note
