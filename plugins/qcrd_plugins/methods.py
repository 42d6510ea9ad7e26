"""Built-in methods: named recipes filling the five component slots."""

from __future__ import annotations

from qcrd_bench.components import Method
from qcrd_bench.hookspecs import hookimpl

FINETUNE = Method(
    name="finetune",
    description="standard fine-tuning on gold labels, no rationales",
    teacher="none", positive_filter="first", negative_generator="none", discriminator="constant",
    loss="label-ce",
)

DSS = Method(
    name="dss",
    description="Distilling Step-by-Step: gold labels plus one teacher rationale per question (alpha = 0.5)",
    teacher="dss-palm", positive_filter="first", negative_generator="none", discriminator="constant",
    loss="dss", defaults={"loss.alpha": 0.5},
)


@hookimpl
def register_methods(register):
    register(FINETUNE)
    register(DSS)
