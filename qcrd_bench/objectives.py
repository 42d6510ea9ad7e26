"""Training objectives as pure functions over per-sequence NLL tensors.

Shapes: B examples in a batch, P rationales (flattened over examples) with
``owner[p]`` the example index of rationale p.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def sequence_nll(logits: torch.Tensor, labels: torch.Tensor, chunk_rows: int = 1024) -> torch.Tensor:
    """Token-mean cross-entropy of each sequence: logits [N, T, V], labels [N, T]
    with -100 on padding -> [N].  This is l(x, r) of the QCRD paper."""
    # Flat [N·T, V] rows: the same values as the [N, V, T] layout, and much faster on CPU.
    rows, targets = logits.reshape(-1, logits.shape[-1]), labels.reshape(-1)
    if torch.is_grad_enabled() or rows.shape[0] <= chunk_rows:
        token_nll = F.cross_entropy(rows.float(), targets, ignore_index=-100, reduction="none")
    else:
        # Without gradients nothing is kept for a backward pass, so float32 rows are made a
        # chunk at a time: QCRD's selection pass over every rationale (96 x 64 tokens x 30k
        # words) otherwise holds two float32 copies of its logits, 1.5 GB.  Rows are
        # independent, so the values are the same bits.
        token_nll = torch.cat([F.cross_entropy(rows[i:i + chunk_rows].float(), targets[i:i + chunk_rows],
                                               ignore_index=-100, reduction="none")
                               for i in range(0, rows.shape[0], chunk_rows)])
    token_nll = token_nll.view(labels.shape)
    mask = (labels != -100).float()
    return (token_nll * mask).sum(1) / mask.sum(1).clamp(min=1.0)


def dss_loss(label_nll: torch.Tensor, pos_nll: torch.Tensor, pos_owner: torch.Tensor,
             alpha: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Distilling step-by-step: alpha·L_pred + (1 − alpha)·L_explain.

    L_pred = mean_b l(x_b, y_b); L_explain = mean over examples with rationales of
    the mean l(x_b, r) over their rationales.  Each example weighs the same, so with
    one rationale per example this is the QCRD loss with no negatives and s ≡ 1.
    """
    pred = label_nll.mean()
    per_example, has_rationale = group_reduce(pos_nll, pos_owner, label_nll.shape[0], "mean")
    explain = per_example[has_rationale].mean() if has_rationale.any() else pred.new_zeros(())
    return alpha * pred + (1 - alpha) * explain, {"loss_pred": pred, "loss_explain": explain}


# ---------------------------------------------------------------- QCRD (arXiv 2405.13014)

SCHEMES = ("minmax", "maxmin", "sampling", "mean", "wmean")


def group_reduce(values: torch.Tensor, owner: torch.Tensor, groups: int, reduce: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``mean`` or ``sum`` of ``values`` [P] per group -> ([groups], [groups] bool non-empty).
    Empty groups get 0."""
    present = torch.zeros(groups, dtype=torch.bool, device=values.device)
    present[owner] = True
    out = torch.zeros(groups, dtype=values.dtype, device=values.device).index_add(0, owner, values)
    if reduce == "mean":
        counts = torch.zeros(groups, dtype=values.dtype, device=values.device).index_add(0, owner, torch.ones_like(values))
        out = out / counts.clamp(min=1.0)
    return out, present


def pick(values: torch.Tensor, owner: torch.Tensor, groups: int, largest: bool) -> torch.Tensor:
    """Index (into ``values``) of the arg-min (or arg-max) member of each non-empty group -> [G'].
    Ties go to the first member."""
    best: dict[int, int] = {}
    flat = values.tolist()
    for index, (group, value) in enumerate(zip(owner.tolist(), flat)):
        current = best.get(group)
        if current is None or (value > flat[current] if largest else value < flat[current]):
            best[group] = index
    return torch.tensor([best[g] for g in sorted(best)], dtype=torch.long, device=values.device)


@torch.no_grad()
def select_indices(pos_nll: torch.Tensor, pos_owner: torch.Tensor, neg_nll: torch.Tensor, neg_owner: torch.Tensor,
                   groups: int, scheme: str, delta: float,
                   generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of the one positive and one negative per example that a selecting scheme uses.

    minmax: arg-min l over positives, arg-max of min(l − δ, 0) over negatives (ties: the first);
    maxmin: the reverse; sampling: a uniformly random member of each set.
    """
    if scheme == "sampling":
        return _random_member(pos_owner, groups, generator), _random_member(neg_owner, groups, generator)
    hinge = torch.clamp(neg_nll - delta, max=0.0)
    take_max_pos = scheme == "maxmin"
    return pick(pos_nll, pos_owner, groups, largest=take_max_pos), pick(hinge, neg_owner, groups, largest=not take_max_pos)


def _random_member(owner: torch.Tensor, groups: int, generator: torch.Generator | None) -> torch.Tensor:
    members: dict[int, list[int]] = {}
    for index, group in enumerate(owner.tolist()):
        members.setdefault(group, []).append(index)
    chosen = [m[int(torch.randint(len(m), (1,), generator=generator))] for _, m in sorted(members.items())]
    return torch.tensor(chosen, dtype=torch.long, device=owner.device)


def qcrd_contrastive(pos_nll: torch.Tensor, pos_owner: torch.Tensor, pos_score: torch.Tensor,
                     neg_nll: torch.Tensor, neg_owner: torch.Tensor, neg_score: torch.Tensor,
                     groups: int, scheme: str = "minmax", delta: float = 3.0, beta: float = 0.2
                     ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Quality-guided contrastive loss L_cl (Eqs. 3, 6, 7), many-to-one over each example's sets.

    pos_* [P], neg_* [N]: per-rationale NLL l(x, r), owning example index, discriminator score.
    Scores are detached here: no gradient reaches the discriminator through L_cl.

    minmax (Eq. 6/7):  l_pos = s · min_pos l;   l_neg = (1 − s) · max_neg min(l − δ, 0)
    maxmin:            l_pos = s · max_pos l;   l_neg = (1 − s) · min_neg min(l − δ, 0)
    sampling:          as minmax over sets the caller already cut to one random member each
    mean:              l_pos = mean_pos s·l;    l_neg = mean_neg (1 − s)·min(l − δ, 0)
    wmean:             l_pos = Σ s·l / Σ s;      l_neg = Σ (1 − s)·min(l − δ, 0) / Σ (1 − s)
    L_cl = mean over examples with positives of [l_pos − β · l_neg]   (l_neg = 0 without negatives)

    With MinMax, s_pos / s_neg are the scores of the selected (arg-min / arg-max) rationales.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"unknown many-to-one scheme {scheme!r}; available: {', '.join(SCHEMES)}")
    pos_score, neg_score = pos_score.detach(), neg_score.detach()
    hinge = torch.clamp(neg_nll - delta, max=0.0)  # min(l − δ, 0)
    if scheme in ("minmax", "maxmin", "sampling"):
        p, n = select_indices(pos_nll, pos_owner, neg_nll, neg_owner, groups, scheme, delta)
        l_pos, has_pos = group_reduce(pos_score[p] * pos_nll[p], pos_owner[p], groups, "sum")
        l_neg, has_neg = group_reduce((1 - neg_score[n]) * hinge[n], neg_owner[n], groups, "sum")
        ce_pos, ce_neg = pos_nll[p], neg_nll[n]
    elif scheme == "mean":
        l_pos, has_pos = group_reduce(pos_score * pos_nll, pos_owner, groups, "mean")
        l_neg, has_neg = group_reduce((1 - neg_score) * hinge, neg_owner, groups, "mean")
        ce_pos, ce_neg = pos_nll, neg_nll
    else:  # wmean
        num, has_pos = group_reduce(pos_score * pos_nll, pos_owner, groups, "sum")
        den, _ = group_reduce(pos_score, pos_owner, groups, "sum")
        l_pos = num / den.clamp(min=1e-8)
        num, has_neg = group_reduce((1 - neg_score) * hinge, neg_owner, groups, "sum")
        den, _ = group_reduce(1 - neg_score, neg_owner, groups, "sum")
        l_neg = num / den.clamp(min=1e-8)
        ce_pos, ce_neg = pos_nll, neg_nll
    per_example = l_pos - beta * l_neg
    loss = per_example[has_pos].mean() if has_pos.any() else pos_nll.new_zeros(())
    active = (l_neg < 0) & has_neg
    zero = pos_nll.new_zeros(())
    diagnostics = {
        "loss_cl": loss,
        "ce_pos": ce_pos.detach().mean() if ce_pos.numel() else zero,
        "ce_neg": ce_neg.detach().mean() if ce_neg.numel() else zero,
        "neg_active_frac": active.float().sum() / has_neg.float().sum().clamp(min=1.0),
    }
    diagnostics["margin"] = diagnostics["ce_neg"] - diagnostics["ce_pos"]
    return loss, diagnostics


def discriminator_loss(pos_score: torch.Tensor, pos_owner: torch.Tensor, neg_score: torch.Tensor,
                       neg_owner: torch.Tensor, groups: int, variant: str = "eq2") -> torch.Tensor:
    """L_D on sigmoid scores in [0, 1].

    eq2 (Eq. 2 as printed): mean_x −log(Σ_pos exp(s) / Σ_neg exp(s)), over examples with both sets;
    infonce:                mean_x −log(Σ_pos exp(s) / Σ_all exp(s));
    bce:                    binary cross-entropy of every score against its label.
    """
    if variant == "bce":
        scores = torch.cat([pos_score, neg_score]).clamp(1e-6, 1 - 1e-6)
        labels = torch.cat([torch.ones_like(pos_score), torch.zeros_like(neg_score)])
        return F.binary_cross_entropy(scores, labels)
    lse_pos, has_pos = _group_logsumexp(pos_score, pos_owner, groups)
    lse_neg, has_neg = _group_logsumexp(neg_score, neg_owner, groups)
    both = has_pos & has_neg
    if not both.any():
        return pos_score.new_zeros(()) + 0.0 * (pos_score.sum() + neg_score.sum())
    if variant == "eq2":
        per_example = -(lse_pos - lse_neg)
    elif variant == "infonce":
        per_example = -(lse_pos - torch.logaddexp(lse_pos, lse_neg))
    else:
        raise ValueError(f"unknown discriminator loss {variant!r}; available: eq2, infonce, bce")
    return per_example[both].mean()


def _group_logsumexp(values: torch.Tensor, owner: torch.Tensor, groups: int) -> tuple[torch.Tensor, torch.Tensor]:
    exp_sum, present = group_reduce(values.exp(), owner, groups, "sum")
    return torch.log(exp_sum.clamp(min=1e-30)), present
