"""Built-in methods: named recipes filling the five component slots.

The QCRD variants reproduce the paper's studies; each is the ``qcrd`` recipe with
explicit overrides, so ``qcrd-bench list methods`` and ``--dry-run`` show exactly
what differs.
"""

from __future__ import annotations

import dataclasses

from qcrd_bench.components import Method
from qcrd_bench.hookspecs import hookimpl

FINETUNE = Method(
    name="finetune",
    description="standard fine-tuning on gold labels, no rationales",
    teacher="none", positive_filter="first", negative_generator="none", discriminator="constant",
    loss="label-ce",
)

DISTILL = Method(
    name="distill",
    description="standard distillation: the teacher's answer instead of the gold label, no rationales",
    teacher="dss-palm", positive_filter="first", negative_generator="none", discriminator="constant",
    loss="teacher-label-ce",
)

COT = Method(
    name="cot",
    description="single-task chain of thought: x -> 'rationale So the answer is label', answer read after the marker",
    teacher="dss-palm", positive_filter="first", negative_generator="none", discriminator="constant",
    loss="cot-ce",
)

DSS = Method(
    name="dss",
    description="Distilling Step-by-Step: gold labels plus one teacher rationale per question (alpha = 0.5)",
    teacher="dss-palm", positive_filter="first", negative_generator="none", discriminator="constant",
    loss="dss", defaults={"loss.alpha": 0.5},
)

QCRD = Method(
    name="qcrd",
    description=("QCRD: self-consistent teacher positives, teacher-minority and self-play negatives, "
                 "an online quality judge, the quality-guided contrastive loss (MinMax)"),
    teacher="mcc-kd", positive_filter="self-consistency", negative_generator="teacher+self-play",
    discriminator="encoder-maxpool", loss="qcrd-contrastive",
    defaults={"teacher.samples": 5},  # the paper samples K = 5 rationales per question
)


def variant(name: str, description: str, **changes) -> Method:
    """The qcrd recipe with slot changes (``negative_generator=…``) and ``defaults`` overrides."""
    defaults = {**QCRD.defaults, **changes.pop("defaults", {})}
    return dataclasses.replace(QCRD, name=name, description=description, defaults=defaults, **changes)


VARIANTS = [
    # Table 4 (cumulative as printed): none 65.5, +ED 67.0, +ED+NK 68.5, +ED+NK+QJ 69.0 (T5-base SVAMP).
    variant("qcrd-no-qj", "Table 4 +ED+NK: no quality judge (s ≡ 1)", discriminator="constant"),
    variant("qcrd-no-nk", "Table 4 +ED: self-consistent positives only, no negatives, no judge",
            negative_generator="none", discriminator="constant"),
    variant("qcrd-no-ed", "Table 4 none: every teacher sample a positive, no negatives, no judge",
            positive_filter="all", negative_generator="none", discriminator="constant"),
    # Negatives table: j = 3 / 5 (default) / 10, Fixed, SC only.
    variant("qcrd-j3", "negatives from the student 3 iterations earlier", defaults={"negatives.lag": 3}),
    variant("qcrd-j10", "negatives from the student 10 iterations earlier", defaults={"negatives.lag": 10}),
    variant("qcrd-fixed", "student negatives always from the initial student", negative_generator="teacher+fixed"),
    variant("qcrd-sc-only", "only the teacher's minority samples as negatives", negative_generator="teacher-minority"),
    # Fig. 6: sampling temperature of student negatives.
    variant("qcrd-tau2", "student negatives sampled at τ = 2", defaults={"negatives.temperature": 2.0}),
    # Table 5: many-to-one schemes.
    *(variant(f"qcrd-{scheme}", f"Table 5: the {label} many-to-one scheme", defaults={"loss.scheme": scheme})
      for scheme, label in (("maxmin", "MaxMin"), ("sampling", "Sampling"), ("mean", "Mean"),
                            ("wmean", "W-mean"))),
]


@hookimpl
def register_methods(register):
    for method in (FINETUNE, DISTILL, COT, DSS, QCRD, *VARIANTS):
        register(method)
