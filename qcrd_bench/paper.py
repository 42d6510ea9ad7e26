"""The QCRD paper's published accuracies (%), as data, for reports to print beside ours.

Source: ``docs/method.md`` §4 (arXiv 2405.13014: Tables 1, 2, 4, 5, the negative-
strategies table and Fig. 4); §2 and §3 for the teacher behind them (``TEACHERS``).  These
are the only numbers in a report not read from the tracking store.  Keys are our method /
variant names: the paper's "Single-Task" is ``cot``, its ablation rows are the ``qcrd-*``
variants (README, Named variants).
"""

from __future__ import annotations

from dataclasses import dataclass

TASKS = ("svamp", "cqa", "anli1", "esnli")


def _row(*values: float) -> dict[str, float]:
    return dict(zip(TASKS, values))


# Table 1 (T5-base) and Table 2 (T5-small), SVAMP / CQA / ANLI1 / e-SNLI.
T5_BASE = {
    "finetune": _row(63.0, 62.19, 43.58, 88.38),
    "cot": _row(59.0, 63.11, 47.90, 88.77),
    "dss": _row(65.5, 63.23, 52.80, 90.09),
    "mi": _row(67.5, 63.50, 54.20, 90.15),
    "qcrd": _row(69.0, 63.64, 54.00, 90.26),
}
T5_SMALL = {
    "finetune": _row(45.00, 43.16, 42.00, 82.90),
    "cot": _row(46.50, 44.98, 42.50, 83.67),
    "dss": _row(48.00, 45.21, 42.80, 84.23),
    "mi": _row(47.00, 45.49, 42.10, 83.55),
    "qcrd": _row(50.50, 46.11, 44.10, 85.30),
}

# T5-base on SVAMP: Table 4 (ED / NK / QJ switched off), Table 5 (many-to-one schemes),
# and the negative-strategies table.  Full QCRD (69.0) is Table 1's number.
SVAMP_STUDIES = {
    "qcrd-no-ed": (65.5, "Table 4 (none)"),
    "qcrd-no-nk": (67.0, "Table 4 (+ED)"),
    "qcrd-no-qj": (68.5, "Table 4 (+ED+NK)"),
    "qcrd-maxmin": (67.0, "Table 5 (MaxMin)"),
    "qcrd-sampling": (66.5, "Table 5 (Sampling)"),
    "qcrd-mean": (65.0, "Table 5 (Mean)"),
    "qcrd-wmean": (66.0, "Table 5 (W-mean)"),
    "qcrd-j3": (68.0, "negatives table (j=3)"),
    "qcrd-j10": (68.5, "negatives table (j=10)"),
    "qcrd-fixed": (66.5, "negatives table (Fixed)"),
    "qcrd-sc-only": (64.5, "negatives table (SC only)"),
}

# Fig. 4 (T5-base): accuracy at 25 / 50 / 75 / 100 % of the training set.
FRACTIONS = (0.25, 0.5, 0.75, 1.0)
DATA_SIZE = {
    ("dss", "svamp"): (34.0, 47.0, 61.0, 65.5),
    ("qcrd", "svamp"): (35.5, 49.0, 62.0, 69.0),
    ("dss", "cqa"): (57.08, 60.93, 62.16, 63.23),
    ("qcrd", "cqa"): (57.17, 60.85, 62.34, 63.64),
    ("dss", "anli1"): (45.6, 47.8, 51.6, 52.8),
    ("qcrd", "anli1"): (47.1, 48.4, 52.9, 54.0),
    ("dss", "esnli"): (90.22, 90.19, 90.11, 90.09),
    ("qcrd", "esnli"): (90.22, 90.22, 90.21, 90.26),
}


@dataclass(frozen=True)
class PaperTeacher:
    """Whose rationales a family of the paper's numbers was trained on, as docs/method.md says."""

    name: str  # the teacher as docs/method.md names it, or UNKNOWN
    where: str  # where docs/method.md says so, or that it does not
    ours: tuple[str, ...] = ()  # our `qcrd.teacher` names for exactly these rationales
    nearest: tuple[str, ...] = ()  # ours that come closest, by assumption (other samples or prompt)


UNKNOWN = "unknown"
_NOT_SAID = PaperTeacher(UNKNOWN, "docs/method.md §2 and §4 do not say")

# The teacher behind each method family's published numbers (Tables 1, 2, 4, 5, the
# negatives table, Fig. 4).  The paper's ablation rows are QCRD's, with QCRD's teacher.
TEACHERS = {
    "finetune": PaperTeacher("none (gold labels only)", "docs/method.md §2", ours=("none",)),
    "cot": _NOT_SAID,
    "dss": _NOT_SAID,
    "mi": _NOT_SAID,
    # docs/method.md §3: K = 5 samples at temperature 0.7 per question from GPT-3.5-turbo.  The
    # nearest set here is MCC-KD's published ChatGPT samples of SVAMP: the same kind of model,
    # but not the paper's samples, prompt or K; that it is the same model is an assumption.
    "qcrd": PaperTeacher("GPT-3.5-turbo samples (K = 5, τ = 0.7)", "docs/method.md §3", nearest=("mcc-kd",)),
}


def teacher(variant: str) -> PaperTeacher:
    """The teacher behind the paper's numbers for one of our variants (UNKNOWN if not recorded)."""
    return TEACHERS.get("qcrd" if variant in SVAMP_STUDIES else variant,
                        PaperTeacher(UNKNOWN, "`qcrd_bench/paper.py` records none"))


@dataclass(frozen=True)
class PaperValue:
    value: float  # accuracy, %
    source: str  # where in the paper (docs/method.md §4)


def lookup(variant: str, task: str, model: str = "t5-base", train_fraction: float = 1.0) -> PaperValue | None:
    """The paper's accuracy for one of our (variant, task) at a train fraction, or None."""
    if abs(train_fraction - 1.0) > 1e-9:
        return _data_size(variant, task, train_fraction) if model == "t5-base" else None
    table = T5_BASE if model == "t5-base" else T5_SMALL
    if task in table.get(variant, {}):
        return PaperValue(table[variant][task], f"Table {1 if model == 't5-base' else 2}")
    if model == "t5-base" and task == "svamp" and variant in SVAMP_STUDIES:
        return PaperValue(*SVAMP_STUDIES[variant])
    return None


def _data_size(variant: str, task: str, fraction: float) -> PaperValue | None:
    for i, known in enumerate(FRACTIONS):
        if abs(known - fraction) < 1e-9 and (variant, task) in DATA_SIZE:
            return PaperValue(DATA_SIZE[(variant, task)][i], f"Fig. 4 ({known:.0%} of train)")
    return None


def data_size_curve(variant: str, task: str) -> list[tuple[float, float]]:
    """Fig. 4's (train fraction, accuracy %) points for (variant, task); empty if none."""
    return list(zip(FRACTIONS, DATA_SIZE.get((variant, task), ())))
