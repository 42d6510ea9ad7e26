"""Built-in training objectives (the tensor math is in ``qcrd_bench.objectives``)."""

from __future__ import annotations

import re
from typing import Any

from qcrd_bench.components import Example, Loss, LossInputs, LossOutput, Rationale, Task
from qcrd_bench.errors import ConfigError
from qcrd_bench.hookspecs import hookimpl


class LabelCE(Loss):
    name = "label-ce"
    description = "cross-entropy of the gold label from 'predict: x' (fine-tuning)"

    def __call__(self, inputs: LossInputs, params: dict[str, Any]) -> LossOutput:
        pred = inputs.label_nll.mean()
        return LossOutput(total=pred, terms={"loss_pred": pred})

    def describe(self, params: dict[str, Any]) -> str:
        return "L_pred"


class TeacherLabelCE(LabelCE):
    """Standard distillation: the label target is the teacher's answer, not gold."""

    name = "teacher-label-ce"
    description = "cross-entropy of the teacher's answer from 'predict: x' (standard distillation)"

    def label_target(self, example: Example, positives: list[Rationale], task: Task) -> str | None:
        # The first positive with an answer: the teacher's one rationale under the `first`
        # filter, the majority answer under `self-consistency`.  None: nothing to distil.
        answer = next((r.answer for r in positives if r.answer is not None), None)
        return None if answer is None else task.format_answer(answer)

    def describe(self, params: dict[str, Any]) -> str:
        return "L_pred[teacher label]"


_COT_MARKER = "So the answer is"
_COT_MARKER_RE = re.compile(re.escape(_COT_MARKER), re.IGNORECASE)  # WordPiece students decode lower case


class CotCE(LabelCE):
    """Single-task chain of thought: x -> "rationale So the answer is label", one target,
    no task prefix; the answer is read after the last marker of the decoded output."""

    name = "cot-ce"
    description = "cross-entropy of 'rationale So the answer is label' from x (single-task chain of thought)"
    predict_prefix = ""

    def label_target(self, example: Example, positives: list[Rationale], task: Task) -> str | None:
        # A question without a rationale keeps the bare marker and label rather than being
        # dropped, so that every method trains on the same questions.
        if not positives:
            return f"{_COT_MARKER} {example.label}"
        return f"{positives[0].text.strip()} {_COT_MARKER} {example.label}"

    def answer_text(self, output: str) -> str | None:
        marks = list(_COT_MARKER_RE.finditer(output))
        if not marks:
            return None  # no answer in the trained format: unparsed for the strict metric
        answer = output[marks[-1].end():].strip()
        return answer[:-1].rstrip() if answer.endswith(".") else answer

    def max_new_tokens(self, cfg: dict) -> int:
        return cfg["train"]["max_target_length"]  # the rationale comes first and needs room

    def rationale_text(self, output: str) -> str:
        """What comes before the last "So the answer is" (all of it without the marker)."""
        marks = list(_COT_MARKER_RE.finditer(output))
        return output[:marks[-1].start()].strip() if marks else output

    def describe(self, params: dict[str, Any]) -> str:
        return "L_pred[r ⊕ y]"


class Dss(Loss):
    name = "dss"
    description = "distilling step-by-step: alpha·CE(predict) + (1 − alpha)·CE(explain → rationale)"
    defaults = {"alpha": 0.5}
    uses_rationales = True

    def check(self, params: dict[str, Any]) -> None:
        if not 0 <= params["alpha"] <= 1:
            raise ConfigError(f"loss.alpha: must be in [0, 1], got {params['alpha']}")

    def __call__(self, inputs: LossInputs, params: dict[str, Any]) -> LossOutput:
        from qcrd_bench.objectives import dss_loss

        total, terms = dss_loss(inputs.label_nll, inputs.pos_nll, inputs.pos_owner, params["alpha"])
        return LossOutput(total=total, terms=terms)

    def describe(self, params: dict[str, Any]) -> str:
        alpha = params["alpha"]
        return f"{alpha:g}·L_pred + {1 - alpha:g}·L_explain"


class QcrdContrastive(Loss):
    """L_total = α1·L_pred + α2·L_cl + α3·L_D (Eq. 8), L_cl the quality-guided
    contrastive loss (Eqs. 3, 6, 7) under a many-to-one scheme (Table 5).

    The paper decays α3 by ``alpha3_decay`` (0.9) per iteration.  L_D reaches only the
    judge, whose AdamW step does not depend on the loss's scale, so the decay is applied
    once, to the judge's learning rate (``Judge.lr_scale``, logged as
    ``train/judge_lr_scale``), and not to the loss (docs/method.md §3)."""

    name = "qcrd-contrastive"
    description = "α1·L_pred + α2·L_cl + α3·L_D: quality-weighted closest positive vs margin-filtered negatives"
    defaults = {"alpha1": 0.5, "alpha2": 0.5, "alpha3": 0.5, "alpha3_decay": 0.9, "beta": 0.2, "delta": 3.0,
                "scheme": "minmax"}
    uses_rationales = True
    uses_negatives = True

    def selects(self, params: dict[str, Any]) -> bool:
        """Whether only one positive and one negative per example carry gradient, so the
        trainer can score every rationale without gradients and back-propagate the chosen."""
        return params["scheme"] in ("minmax", "maxmin", "sampling")

    def negative_margin(self, params: dict[str, Any]) -> float | None:
        """δ: a negative's term is (1 − s)·min(l − δ, 0), zero with a zero gradient once l > δ."""
        return params["delta"]

    def check(self, params: dict[str, Any]) -> None:
        schemes = ("minmax", "maxmin", "sampling", "mean", "wmean")  # qcrd_bench.objectives.SCHEMES
        if params["scheme"] not in schemes:
            raise ConfigError(f"loss.scheme: must be one of {', '.join(schemes)}, got {params['scheme']!r}")
        for key in ("alpha1", "alpha2", "alpha3", "beta", "delta"):
            if params[key] < 0:
                raise ConfigError(f"loss.{key}: must be >= 0, got {params[key]}")
        if not 0 < params["alpha3_decay"] <= 1:
            raise ConfigError(f"loss.alpha3_decay: must be in (0, 1], got {params['alpha3_decay']}")

    def __call__(self, inputs: LossInputs, params: dict[str, Any]) -> LossOutput:
        from qcrd_bench.objectives import qcrd_contrastive

        pred = inputs.label_nll.mean()
        l_cl, terms = qcrd_contrastive(inputs.pos_nll, inputs.pos_owner, inputs.pos_score, inputs.neg_nll,
                                       inputs.neg_owner, inputs.neg_score, inputs.label_nll.shape[0],
                                       scheme=params["scheme"], delta=params["delta"], beta=params["beta"])
        l_d = inputs.disc_loss if inputs.disc_loss is not None else pred.new_zeros(())
        total = params["alpha1"] * pred + params["alpha2"] * l_cl + params["alpha3"] * l_d
        return LossOutput(total=total, terms={"loss_pred": pred, **terms, "loss_d": l_d})

    def describe(self, params: dict[str, Any]) -> str:
        return (f"{params['alpha1']:g}·L_pred + {params['alpha2']:g}·L_cl[{params['scheme']}, "
                f"β={params['beta']:g}, δ={params['delta']:g}] + {params['alpha3']:g}·L_D "
                f"(judge lr ×{params['alpha3_decay']:g}^t)")


@hookimpl
def register_losses(register):
    register(LabelCE())
    register(TeacherLabelCE())
    register(CotCE())
    register(Dss())
    register(QcrdContrastive())
