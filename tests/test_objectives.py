"""Mathematical properties of the loss functions."""

from __future__ import annotations

import pytest
import torch

from qcrd_bench.components import LossInputs
from qcrd_bench.objectives import dss_loss, group_reduce, sequence_nll
from qcrd_plugins.losses import Dss, LabelCE


def test_sequence_nll_is_token_mean_ignoring_padding():
    logits = torch.randn(2, 4, 7)
    labels = torch.tensor([[1, 2, -100, -100], [3, 4, 5, 6]])
    got = sequence_nll(logits, labels)
    first = torch.nn.functional.cross_entropy(logits[0, :2], labels[0, :2])
    second = torch.nn.functional.cross_entropy(logits[1], labels[1])
    assert torch.allclose(got, torch.stack([first, second]))


def test_group_mean():
    means, present = group_reduce(torch.tensor([1.0, 3.0, 5.0]), torch.tensor([0, 0, 2]), 3, "mean")
    assert means.tolist() == [2.0, 0.0, 5.0] and present.tolist() == [True, False, True]


def test_dss_limits_and_weights():
    label = torch.tensor([1.0, 3.0])
    pos = torch.tensor([4.0, 6.0, 10.0])
    owner = torch.tensor([0, 0, 1])
    total, terms = dss_loss(label, pos, owner, alpha=0.5)
    assert terms["loss_pred"] == 2.0 and terms["loss_explain"] == 7.5  # mean of (5, 10): examples weigh equally
    assert total == pytest.approx(0.5 * 2.0 + 0.5 * 7.5)
    assert dss_loss(label, pos, owner, alpha=1.0)[0] == pytest.approx(2.0)
    assert dss_loss(label, pos, owner, alpha=0.0)[0] == pytest.approx(7.5)


def test_dss_without_rationales_is_label_only():
    label = torch.tensor([1.0, 3.0], requires_grad=True)
    total, terms = dss_loss(label, label.new_zeros(0), torch.zeros(0, dtype=torch.long), alpha=0.5)
    assert terms["loss_explain"].item() == 0.0 and total.item() == pytest.approx(1.0)


def test_gradients_flow_to_both_terms_only_by_weight():
    label = torch.tensor([2.0], requires_grad=True)
    pos = torch.tensor([3.0], requires_grad=True)
    total = Dss()(LossInputs(label, pos, torch.tensor([0]), torch.ones(1)), {"alpha": 0.25}).total
    total.backward()
    assert label.grad.item() == pytest.approx(0.25) and pos.grad.item() == pytest.approx(0.75)
    assert Dss().describe({"alpha": 0.25}) == "0.25·L_pred + 0.75·L_explain"


def test_label_ce_ignores_rationales():
    out = LabelCE()(LossInputs(torch.tensor([1.0, 2.0])), {})
    assert out.total == pytest.approx(1.5) and set(out.terms) == {"loss_pred"}


def test_sequence_nll_matches_the_transposed_layout_and_the_models_own_loss():
    """The flat cross-entropy and teacher forcing by decoder_input_ids are speed changes
    only: the same per-sequence NLL as the [N, V, T] layout and as the model's labels path."""
    import torch.nn.functional as F

    from qcrd_bench.students import t5_from_config
    from qcrd_bench.training import nll

    torch.manual_seed(0)
    logits = torch.randn(3, 5, 11)
    labels = torch.tensor([[1, 2, 3, -100, -100], [4, 5, 6, 7, 8], [9, -100, -100, -100, -100]])
    old = F.cross_entropy(logits.transpose(1, 2), labels, ignore_index=-100, reduction="none")
    mask = (labels != -100).float()
    assert torch.allclose(sequence_nll(logits, labels), (old * mask).sum(1) / mask.sum(1), atol=1e-6)

    student = t5_from_config("t5-tiny", ["tom has 3 apples", "so 3 + 4 = 7"] * 4, seed=0, vocab_size=300)
    student.model.eval()  # no dropout: the two paths must see the same network
    inputs, targets = [[5, 6, 7, 1], [8, 9, 1]], [[10, 11, 1], [12, 1]]
    ours = nll(student.model, inputs, targets, student.tokenizer.pad_token_id, torch.device("cpu"))
    for row, (x, y) in enumerate(zip(inputs, targets)):
        out = student.model(input_ids=torch.tensor([x]), labels=torch.tensor([y]))
        assert torch.allclose(ours[row], out.loss, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_sequence_nll_without_gradients_in_chunks_gives_the_same_bits(dtype):
    """The selection pass computes NLLs without gradients a chunk of rows at a time."""
    torch.manual_seed(0)
    logits = torch.randn(7, 9, 50).to(dtype)
    labels = torch.randint(0, 50, (7, 9))
    labels[:, 6:] = -100
    whole = sequence_nll(logits, labels)
    with torch.no_grad():
        chunked = sequence_nll(logits, labels, chunk_rows=4)
    assert torch.equal(chunked, whole)
