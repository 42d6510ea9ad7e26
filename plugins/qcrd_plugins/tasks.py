"""Built-in tasks."""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

from qcrd_bench import arith
from qcrd_bench.components import Example, Task, TaskData
from qcrd_bench.data import fetch, sha256_file
from qcrd_bench.errors import ConfigError, InputFileError
from qcrd_bench.hookspecs import hookimpl
from qcrd_bench.readers import read_jsonl


def carve_validation(train: list[Example], fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    """Split off ``fraction`` of train as validation exactly as DSS does
    (``datasets.Dataset.train_test_split(test_size=fraction, seed=seed)``)."""
    if fraction <= 0:
        return train, []
    order = np.random.default_rng(seed).permutation(len(train))
    n_val = math.ceil(fraction * len(train))
    return [train[i] for i in order[n_val:]], [train[i] for i in order[:n_val]]


_SPLIT_DECIMAL = re.compile(r"(\d)\s*\.\s*(\d)")


class Svamp(Task):
    name = "svamp"
    description = "SVAMP math word problems (DSS 800/200 split); the label is an equation, scored by its value"
    defaults = {"split": "dss", "val_fraction": 0.1, "val_seed": 0}

    def load(self, params: dict[str, Any]) -> TaskData:
        if params["split"] != "dss":
            raise ConfigError(f"task.split: unknown SVAMP split {params['split']!r}; available: dss")
        if not 0 <= params["val_fraction"] < 1:
            raise ConfigError(f"task.val_fraction: must be in [0, 1), got {params['val_fraction']}")
        splits, files = {}, {}
        for split in ("train", "test"):
            relpath = f"svamp/dss/svamp_{split}.json"
            path = fetch(relpath)
            files[relpath] = sha256_file(path)
            splits[split] = [self._example(row, split, i, f"{path}:{i + 1}")
                             for i, row in enumerate(read_jsonl(path, required=("input", "label")))]
        train, val = carve_validation(splits["train"], params["val_fraction"], params["val_seed"])
        notes = {"validation": f"{len(val)} rows carved from train with seed {params['val_seed']}"}
        return TaskData(train=train, val=val, test=splits["test"], files=files, notes=notes)

    def _example(self, row: dict, split: str, index: int, where: str) -> Example:
        if not isinstance(row["input"], str) or not isinstance(row["label"], str):
            raise InputFileError(f"{where}: fields 'input' and 'label' must be strings")
        answer = arith.evaluate(row["label"])
        if answer is None:
            raise InputFileError(f"{where}: label {row['label']!r} is not an arithmetic expression")
        return Example(id=f"{split}-{index}", input=row["input"], label=row["label"], answer=answer,
                       source=(split, index))

    def parse_answer(self, text: str) -> float | None:
        # WordPiece tokenizers decode "84.0" as "84. 0": rejoin split decimals first.
        return arith.evaluate(_SPLIT_DECIMAL.sub(r"\1.\2", text))

    def answers_match(self, predicted: Any, gold: Any) -> bool:
        return arith.numbers_equal(predicted, gold)


@hookimpl
def register_tasks(register):
    register(Svamp())
