"""Training objectives as pure functions over per-sequence NLL tensors.

Shapes: B examples in a batch, P rationales (flattened over examples) with
``owner[p]`` the example index of rationale p.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def sequence_nll(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Token-mean cross-entropy of each sequence: logits [N, T, V], labels [N, T]
    with -100 on padding -> [N].  This is l(x, r) of the QCRD paper."""
    token_nll = F.cross_entropy(logits.transpose(1, 2).float(), labels, ignore_index=-100, reduction="none")
    mask = (labels != -100).float()
    return (token_nll * mask).sum(1) / mask.sum(1).clamp(min=1.0)


def group_mean(values: torch.Tensor, owner: torch.Tensor, groups: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean of ``values`` [P] per group -> ([groups] means, [groups] bool: group non-empty)."""
    sums = torch.zeros(groups, dtype=values.dtype, device=values.device).index_add(0, owner, values)
    counts = torch.zeros(groups, dtype=values.dtype, device=values.device).index_add(0, owner, torch.ones_like(values))
    return sums / counts.clamp(min=1.0), counts > 0


def dss_loss(label_nll: torch.Tensor, pos_nll: torch.Tensor, pos_owner: torch.Tensor,
             alpha: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Distilling step-by-step: alpha·L_pred + (1 − alpha)·L_explain.

    L_pred = mean_b l(x_b, y_b); L_explain = mean over examples with rationales of
    the mean l(x_b, r) over their rationales.  Each example weighs the same, so with
    one rationale per example this is the QCRD loss with no negatives and s ≡ 1.
    """
    pred = label_nll.mean()
    per_example, has_rationale = group_mean(pos_nll, pos_owner, label_nll.shape[0])
    explain = per_example[has_rationale].mean() if has_rationale.any() else pred.new_zeros(())
    return alpha * pred + (1 - alpha) * explain, {"loss_pred": pred, "loss_explain": explain}
