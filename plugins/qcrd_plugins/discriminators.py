"""Built-in discriminators (QCRD's QJ: quality judge)."""

from __future__ import annotations

from typing import Any

from qcrd_bench.components import Discriminator, TrainContext
from qcrd_bench.hookspecs import hookimpl


class Constant(Discriminator):
    """No quality judge: every rationale weighs 1 in both terms of L_cl, s_pos = 1 and
    (1 − s_neg) = 1 (docs/method.md §3).  A constant score s ≡ 1 would instead zero every
    negative's weight and make "+ED+NK" train the "+ED" objective."""

    name = "constant"
    description = "no quality judge: every rationale weighs 1 (s_pos = 1, 1 − s_neg = 1)"
    learns = False

    def session(self, context: TrainContext, params: dict[str, Any]):
        return None


class EncoderMaxPool(Discriminator):
    name = "encoder-maxpool"
    description = ("encoder over (x, r), max-pool, two linear layers, sigmoid; pre-trained on teacher "
                   "positives vs negatives, then updated online by L_D")
    # encoder: student (a copy of the student's encoder) | a config-built size such as t5-tiny
    # (a new encoder of that shape over the student's tokenizer: a judge cheaper than the
    # student) | minilm | a hub name or directory (the paper uses the T5-base encoder).
    # loss: eq2 (Eq. 2 as printed) | infonce | bce.
    # rationale_tokens: how much of a rationale the judge reads, in the judge's own tokens
    # (0: train.max_target_length, what the student learns when the judge shares its
    # tokenizer); score_batch_size: pairs per length-sorted forward chunk (speed only).
    # pretrain_label_noise: share of pre-training labels flipped (a deliberately worse judge);
    # label_noise: the same online, the share of L_D's examples whose positives and negatives
    # swap roles (0.5 on both keeps the judge at chance, 1.0 on both inverts it).
    # update_fraction: share of a batch's examples whose rationales L_D is computed on (the
    # others' chosen rationales are scored without gradients, for their weights only).
    defaults = {"encoder": "student", "loss": "eq2", "pretrain_steps": 500, "lr": 5e-5, "batch_size": 16,
                "max_length": 256, "rationale_tokens": 0, "score_batch_size": 32, "pretrain_label_noise": 0.0,
                "label_noise": 0.0, "update_fraction": 1.0}

    def check(self, params: dict[str, Any]) -> None:
        from qcrd_bench.discriminator import check_params

        check_params(params)

    def session(self, context: TrainContext, params: dict[str, Any]):
        from qcrd_bench.discriminator import DiscriminatorSession

        return DiscriminatorSession(context, params)


@hookimpl
def register_discriminators(register):
    register(Constant())
    register(EncoderMaxPool())
