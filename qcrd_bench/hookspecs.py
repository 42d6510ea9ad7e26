"""The whole extension contract of qcrd-bench.

Plugins contribute named components through ``register_*`` hooks that receive a
``register`` callback, so the host owns validation (duplicate names, did-you-mean)
and the registry.  Built-in plugins use exactly these hooks, like external ones.
Components are chosen by name in the run config, never by hook order.

Lifecycle hooks let a plugin observe a run (tracking, progress, custom logging).
"""

from __future__ import annotations

from typing import Any, Callable

import pluggy

PROJECT = "qcrd_bench"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

Register = Callable[[Any], None]


@hookspec
def register_tasks(register: Register) -> None:
    """Register tasks (datasets with their input format and answer scoring).

    Called once when the plugin manager is built.  ``register(task)`` takes an
    object with a ``name`` attribute implementing :class:`qcrd_bench.components.Task`.
    """


@hookspec
def register_methods(register: Register) -> None:
    """Register methods: named recipes naming the component that fills each of the
    five slots (teacher, positive filter, negative generator, discriminator, loss)
    plus config defaults.  ``register(method)`` takes a :class:`qcrd_bench.components.Method`.
    """


@hookspec
def register_teachers(register: Register) -> None:
    """Register rationale sources (:class:`qcrd_bench.components.Teacher`)."""


@hookspec
def register_positive_filters(register: Register) -> None:
    """Register positive filters (:class:`qcrd_bench.components.PositiveFilter`):
    they split a question's teacher rationales into positives and teacher negatives."""


@hookspec
def register_negative_generators(register: Register) -> None:
    """Register negative generators (:class:`qcrd_bench.components.NegativeGenerator`)."""


@hookspec
def register_discriminators(register: Register) -> None:
    """Register discriminators (:class:`qcrd_bench.components.Discriminator`) that
    score a rationale's quality in [0, 1]."""


@hookspec
def register_losses(register: Register) -> None:
    """Register training objectives (:class:`qcrd_bench.components.Loss`)."""


@hookspec
def register_students(register: Register) -> None:
    """Register named student builders (:class:`qcrd_bench.components.StudentBuilder`).
    A student name that no builder claims is loaded with ``from_pretrained``."""


@hookspec
def qcrd_run_start(config: dict, run_id: str) -> None:
    """Called once the tracked run is open (data, rationales and student are loaded),
    before training.  ``config`` is the resolved config (read-only by convention);
    ``run_id`` is the MLflow run id."""


@hookspec
def qcrd_log_metrics(metrics: dict[str, float], step: int) -> None:
    """Called for every batch of metrics the run logs (train, val, test)."""


@hookspec
def qcrd_run_end(config: dict, status: str, summary: dict[str, float]) -> None:
    """Called once when the run ends; ``status`` is ``FINISHED`` or ``FAILED``."""
