"""Built-in tasks: svamp, cqa, anli1, esnli, gsm8k, asdiv, and the generated synth-arith.

Each reads its published files (``docs/data.md`` describes them), builds
the DSS model input, and scores answers with two extractors side by side: a strict
one that requires the expected form (the headline ``accuracy``) and a flexible one
(``accuracy_flexible``).  Every task takes ``train_fraction`` (seeded) for the
data-size study, and carves validation with a fixed seed where none is published.
"""

from __future__ import annotations

from qcrd_bench.hookspecs import hookimpl

from .arithmetic import Asdiv, Gsm8k, NumericTask, Svamp
from .common import DatasetTask, Published, carve_validation, question_key, take_fraction
from .cqa import Choice, Cqa
from .nli import LABELS, Anli1, Esnli, NliTask
from .synth_arith import SynthArith

__all__ = ["Anli1", "Asdiv", "Choice", "Cqa", "DatasetTask", "Esnli", "Gsm8k", "LABELS", "NliTask", "NumericTask",
           "Published", "Svamp", "SynthArith", "carve_validation", "question_key", "take_fraction", "TASKS"]

TASKS = (Svamp, Cqa, Anli1, Esnli, Gsm8k, Asdiv, SynthArith)


@hookimpl
def register_tasks(register):
    for task in TASKS:
        register(task())
