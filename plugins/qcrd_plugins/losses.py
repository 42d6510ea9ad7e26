"""Built-in training objectives (the tensor math is in ``qcrd_bench.objectives``)."""

from __future__ import annotations

from typing import Any

from qcrd_bench.components import Loss, LossInputs, LossOutput
from qcrd_bench.errors import ConfigError
from qcrd_bench.hookspecs import hookimpl


class LabelCE(Loss):
    name = "label-ce"
    description = "cross-entropy of the label from 'predict: x' (fine-tuning, standard distillation)"

    def __call__(self, inputs: LossInputs, params: dict[str, Any]) -> LossOutput:
        pred = inputs.label_nll.mean()
        return LossOutput(total=pred, terms={"loss_pred": pred})

    def describe(self, params: dict[str, Any]) -> str:
        return "L_pred"


class Dss(Loss):
    name = "dss"
    description = "distilling step-by-step: alpha·CE(predict) + (1 − alpha)·CE(explain → rationale)"
    defaults = {"alpha": 0.5}
    uses_rationales = True

    def __call__(self, inputs: LossInputs, params: dict[str, Any]) -> LossOutput:
        from qcrd_bench.objectives import dss_loss

        alpha = params["alpha"]
        if not 0 <= alpha <= 1:
            raise ConfigError(f"loss.alpha: must be in [0, 1], got {alpha}")
        total, terms = dss_loss(inputs.label_nll, inputs.pos_nll, inputs.pos_owner, alpha)
        return LossOutput(total=total, terms=terms)

    def describe(self, params: dict[str, Any]) -> str:
        alpha = params["alpha"]
        return f"{alpha:g}·L_pred + {1 - alpha:g}·L_explain"


@hookimpl
def register_losses(register):
    register(LabelCE())
    register(Dss())
