"""Mathematical properties of the QCRD objectives (docs/method.md §3)."""

from __future__ import annotations

import pytest
import torch

from qcrd_bench.objectives import discriminator_loss, dss_loss, pick, qcrd_contrastive

EMPTY = torch.zeros(0)
NO_OWNER = torch.zeros(0, dtype=torch.long)


def contrastive(pos, pos_owner, neg=EMPTY, neg_owner=NO_OWNER, groups=2, pos_score=None, neg_score=None, **kw):
    pos_score = torch.ones_like(pos) if pos_score is None else pos_score
    neg_score = torch.zeros_like(neg) if neg_score is None else neg_score
    return qcrd_contrastive(pos, pos_owner, pos_score, neg, neg_owner, neg_score, groups, **kw)


def test_reduces_to_dss_with_one_positive_no_negatives_and_unit_scores():
    label = torch.tensor([0.7, 1.9])
    pos = torch.tensor([2.5, 0.4])
    owner = torch.tensor([0, 1])
    l_cl, _ = contrastive(pos, owner)
    qcrd_total = 0.5 * label.mean() + 0.5 * l_cl
    dss_total, _ = dss_loss(label, pos, owner, alpha=0.5)
    assert qcrd_total.item() == dss_total.item()


def test_minmax_picks_argmin_positive_and_argmax_negative():
    pos = torch.tensor([3.0, 1.0, 2.0, 5.0])
    pos_owner = torch.tensor([0, 0, 0, 1])
    neg = torch.tensor([0.5, 2.0, 1.0])
    neg_owner = torch.tensor([0, 0, 1])
    loss, diag = contrastive(pos, pos_owner, neg, neg_owner, delta=3.0, beta=0.2)
    # example 0: min pos 1.0; negatives' hinge min(l-3,0) = -2.5, -1.0 -> max -1.0 (l = 2.0)
    # example 1: pos 5.0; hinge -2.0
    expected = ((1.0 + 0.2 * 1.0) + (5.0 + 0.2 * 2.0)) / 2
    assert loss.item() == pytest.approx(expected)
    assert pick(pos, pos_owner, 2, largest=False).tolist() == [1, 3]
    assert diag["ce_pos"].item() == pytest.approx(3.0) and diag["ce_neg"].item() == pytest.approx(1.5)
    assert diag["margin"].item() == pytest.approx(-1.5) and diag["neg_active_frac"].item() == 1.0


def test_negative_term_vanishes_once_a_negative_reaches_delta():
    pos = torch.tensor([1.0])
    neg = torch.tensor([0.2, 3.5], requires_grad=True)
    loss, diag = contrastive(pos, torch.tensor([0]), neg, torch.tensor([0, 0]), groups=1, delta=3.0)
    assert loss.item() == pytest.approx(1.0) and diag["neg_active_frac"].item() == 0.0
    loss.backward()
    assert neg.grad.abs().sum().item() == 0.0


def test_beta_zero_removes_all_gradient_from_negatives():
    pos = torch.tensor([1.0, 2.0], requires_grad=True)
    neg = torch.tensor([0.5, 0.1], requires_grad=True)
    for scheme in ("minmax", "maxmin", "mean", "wmean"):
        loss, _ = contrastive(pos, torch.tensor([0, 1]), neg, torch.tensor([0, 1]), beta=0.0, scheme=scheme)
        loss.backward()
        assert neg.grad.abs().sum().item() == 0.0, scheme
        neg.grad = None


def test_negatives_pushed_up_with_weight_beta_times_one_minus_score():
    pos = torch.tensor([1.0], requires_grad=True)
    neg = torch.tensor([0.5], requires_grad=True)
    loss, _ = contrastive(pos, torch.tensor([0]), neg, torch.tensor([0]), groups=1, beta=0.2,
                          pos_score=torch.tensor([0.8]), neg_score=torch.tensor([0.25]))
    loss.backward()
    assert pos.grad.item() == pytest.approx(0.8)
    assert neg.grad.item() == pytest.approx(-0.2 * 0.75)  # raising a negative's CE lowers the loss


def test_no_gradient_reaches_the_discriminator_through_l_cl():
    score = torch.tensor([0.6, 0.3], requires_grad=True)
    loss, _ = qcrd_contrastive(torch.tensor([1.0]), torch.tensor([0]), score[:1], torch.tensor([0.5]),
                               torch.tensor([0]), score[1:], 1)
    assert not loss.requires_grad or torch.autograd.grad(loss, score, allow_unused=True)[0] is None


def test_schemes_differ_as_documented():
    pos = torch.tensor([1.0, 3.0])
    owner = torch.tensor([0, 0])
    scores = torch.tensor([1.0, 0.5])
    value = {s: contrastive(pos, owner, groups=1, pos_score=scores, scheme=s)[0].item()
             for s in ("minmax", "maxmin", "mean", "wmean")}
    assert value == pytest.approx({"minmax": 1.0, "maxmin": 1.5, "mean": (1.0 + 1.5) / 2,
                                   "wmean": (1.0 + 1.5) / 1.5})
    with pytest.raises(ValueError, match="available: minmax"):
        contrastive(pos, owner, groups=1, scheme="median")


def test_discriminator_losses():
    pos, neg = torch.tensor([0.9, 0.8]), torch.tensor([0.1])
    owner_pos, owner_neg = torch.tensor([0, 0]), torch.tensor([0])
    eq2 = discriminator_loss(pos, owner_pos, neg, owner_neg, 1, "eq2")
    assert eq2.item() == pytest.approx(-(torch.logsumexp(pos, 0) - 0.1).item())
    nce = discriminator_loss(pos, owner_pos, neg, owner_neg, 1, "infonce")
    assert nce.item() == pytest.approx(-(torch.logsumexp(pos, 0) - torch.logsumexp(torch.tensor([0.9, 0.8, 0.1]), 0)).item())
    bce = discriminator_loss(pos, owner_pos, neg, owner_neg, 1, "bce")
    assert bce.item() == pytest.approx(torch.nn.functional.binary_cross_entropy(
        torch.tensor([0.9, 0.8, 0.1]), torch.tensor([1.0, 1.0, 0.0])).item())
    # Better separation lowers every variant.
    for variant in ("eq2", "infonce", "bce"):
        worse = discriminator_loss(torch.tensor([0.5, 0.5]), owner_pos, torch.tensor([0.5]), owner_neg, 1, variant)
        assert discriminator_loss(pos, owner_pos, neg, owner_neg, 1, variant) < worse
