"""transformers' eager T5 attention without the work that changes no number.

Its eager attention multiplies the scores by T5's scaling of 1.0, writes a new
[batch, heads, queries, keys] tensor for each of its two additions (position bias, padding
mask), and in cross-attention adds a position bias that is all zeros.  With the narrow heads
of the synth students (16 of width 4) that element-wise work over the scores costs more than
the products, most in QCRD's judge, which reads (x, r) pairs of about 60 tokens.  This
version skips the product and the zeros and adds in place where the sum keeps the scores'
dtype: the same numbers, bit for bit, forward and backward
(``tests/test_students.py::test_lean_eager_attention_computes_transformers_eager_bit_for_bit``).

Config-built T5 students with ``student.attention=eager`` run on it (``install``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers import AttentionInterface
from transformers.masking_utils import AttentionMaskInterface, eager_mask

NAME = "qcrd_t5_eager"
_ZERO_BIAS = "qcrd_zero_position_bias"  # marks a cross-attention: T5 hands it a bias of zeros


def attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, position_bias=None,
              **kwargs):
    scores = torch.matmul(query, key.transpose(2, 3))
    if scaling is None:
        scaling = query.size(-1) ** -0.5
    if scaling != 1.0:
        scores = scores * scaling
    if position_bias is not None and not getattr(module, _ZERO_BIAS, False):
        scores = _add(scores, position_bias)
    if attention_mask is not None:
        scores = _add(scores, attention_mask)
    weights = F.softmax(scores, dim=-1)
    weights = F.dropout(weights, p=dropout, training=module.training)
    return torch.matmul(weights, value).transpose(1, 2).contiguous(), weights


def _add(scores: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    # In place when the sum keeps the scores' dtype and shape (the product's backward needs its
    # inputs, not its output); under bf16 autocast a float32 bias promotes the sum, as eager does.
    if torch.result_type(scores, other) == scores.dtype and other.dim() <= scores.dim() and all(
            o in (1, s) for o, s in zip(other.shape[::-1], scores.shape[::-1])):
        return scores.add_(other)
    return scores + other


AttentionInterface.register(NAME, attention)
AttentionMaskInterface.register(NAME, eager_mask)  # the additive float mask eager attention reads


def install(model: torch.nn.Module) -> None:
    """Run a T5 model's attention on this version, and mark its cross-attentions."""
    from transformers.models.t5.modeling_t5 import T5LayerCrossAttention

    model.set_attn_implementation(NAME)
    for module in model.modules():
        if isinstance(module, T5LayerCrossAttention):
            setattr(module.EncDecAttention, _ZERO_BIAS, True)
