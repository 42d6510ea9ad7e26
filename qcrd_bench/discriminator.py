"""QCRD's quality judge (QJ): an encoder over (x, r), max-pooled, two linear layers, sigmoid.

Pre-trained briefly on teacher positives (label 1) against teacher negatives plus
word-masked / word-replaced copies of positives (label 0, to balance the classes),
then updated online by the run's L_D.
"""

from __future__ import annotations

import contextlib
import copy
import random
from typing import Any, Callable

import torch
from torch import nn

from .components import TrainContext
from .errors import ConfigError
from .students import seeded, autocast

# The judge's own random stream is seeded apart from the run's global one (seed + 1 is the
# trainer's selection generator).
JUDGE_SEED_OFFSET = 2
# At most this many teacher (x, r) pairs have their token ids kept (about 150 MB at 60 tokens a pair).
KEPT_PAIRS = 200_000


class EncoderMaxPool(nn.Module):
    def __init__(self, encoder: nn.Module, hidden: int):
        super().__init__()
        self.encoder = encoder
        self.head = nn.Sequential(nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, 1))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        states = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        states = states.masked_fill(~attention_mask.bool().unsqueeze(-1), torch.finfo(states.dtype).min)
        return torch.sigmoid(self.head(states.max(dim=1).values)).squeeze(-1)


def load_encoder(source: str, context: TrainContext) -> tuple[nn.Module, Any]:
    """(encoder module, tokenizer) for ``discriminator.encoder``: ``student`` (a copy of the
    student's encoder), a config-built size (``T5_SIZES``: a new encoder of that shape over the
    student's tokenizer, initialised from the run's seed), ``minilm`` (the packaged MiniLM-L6),
    or a hub name / directory."""
    from .students import T5_SIZES, t5_encoder_from_config

    if source == "student":
        return copy.deepcopy(context.student.model.get_encoder()), context.student.tokenizer
    if source in T5_SIZES:  # with the student's dropout and attention where it sets them
        student, tokenizer = context.config.get("student", {}), context.student.tokenizer
        return t5_encoder_from_config(source, tokenizer, context.config["seed"], dropout=student.get("dropout", 0.1),
                                      attention=student.get("attention", "eager")), tokenizer
    if source == "minilm":
        from transformers import AutoTokenizer, BertModel

        from .students import minilm_path

        path = minilm_path()
        return BertModel.from_pretrained(path, add_pooling_layer=False), AutoTokenizer.from_pretrained(path)
    from .students import from_pretrained_encoder

    return from_pretrained_encoder(source)


def hidden_size(encoder: nn.Module) -> int:
    config = encoder.config
    return getattr(config, "hidden_size", None) or config.d_model


class OwnRandomState:
    """A random stream of the judge's own.  Torch's dropout draws from the global generator,
    which the student's dropout and the self-play sampling also draw from: the judge's
    forward passes run on this stream instead, so adding a judge leaves the student's
    random numbers as they were."""

    def __init__(self, seed: int, device):
        self.device = torch.device(device)
        with torch.random.fork_rng(devices=self._cuda()):
            torch.manual_seed(seed)
            self.states = self._capture()

    def _cuda(self) -> list:
        return [self.device] if self.device.type == "cuda" else []

    def _capture(self) -> dict[str, torch.Tensor]:
        states = {"cpu": torch.get_rng_state()}
        if self.device.type == "cuda":
            states["cuda"] = torch.cuda.get_rng_state(self.device)
        return states

    @contextlib.contextmanager
    def active(self):
        """Run a block on this stream; the global generators are restored after it."""
        with torch.random.fork_rng(devices=self._cuda()):
            torch.set_rng_state(self.states["cpu"])
            if "cuda" in self.states:
                torch.cuda.set_rng_state(self.states["cuda"], self.device)
            yield
            self.states = self._capture()

    def state_dict(self) -> dict[str, bytes]:
        # Bytes, not tensors: a checkpoint keeps each process's own stream (distributed.local_part).
        return {k: bytes(v.cpu().numpy().tobytes()) for k, v in self.states.items()}

    def load_state_dict(self, state: dict[str, bytes]) -> None:
        self.states = {k: torch.frombuffer(bytearray(v), dtype=torch.uint8) for k, v in state.items()}


class DiscriminatorSession:
    """A trainable encoder-maxpool judge for one run."""

    def __init__(self, context: TrainContext, params: dict[str, Any]):
        self.context, self.params = context, params
        encoder, self.tokenizer = load_encoder(params["encoder"], context)
        seed = context.config["seed"]
        with seeded(seed):  # the head's initialisation follows the run's seed, leaving the run's stream alone
            self.module = EncoderMaxPool(encoder, hidden_size(encoder)).to(context.device)
        self.rng = OwnRandomState(seed + JUDGE_SEED_OFFSET, context.device)
        # Trains from the start (dropout on), whether or not it is pre-trained: a pretrained
        # encoder loads in eval mode, and a resumed run skips pre-training.
        self.module.train()
        self.optimizer = torch.optim.AdamW(self.module.parameters(), lr=params["lr"])
        # The teacher's pairs recur every epoch, so their token ids are kept once made, unless there
        # are too many to hold (e-SNLI's); the self-play negatives are new at each iteration.
        pairs = sum(len(context.positives.get(e.id, ())) + len(context.teacher_negatives.get(e.id, ()))
                    for e in context.train)
        self.recurring = set() if pairs > KEPT_PAIRS else {
            (e.input, r.text) for e in context.train
            for r in (*context.positives.get(e.id, ()), *context.teacher_negatives.get(e.id, ()))}
        self.known_ids: dict[tuple[str, str], list[int]] = {}

    def parameters(self):
        return list(self.module.parameters())

    def scores(self, inputs: list[str], rationales: list[str]) -> torch.Tensor:
        """Scores [N] of the pairs (inputs[i], rationales[i]), differentiable w.r.t. the judge.

        The judge reads a rationale as the student learns it: its first
        ``rationale_tokens`` tokens of the judge's tokenizer (default: the student's
        train.max_target_length; the same tokens when the judge is a copy of the student's encoder).
        Pairs are scored in length-sorted chunks, so a long pair pads only its neighbours.
        A pair that occurs more than once (a teacher repeating itself) is scored once and its
        score shared, so its gradient counts every occurrence: exactly the per-pair result
        without dropout, and the same in expectation with it."""
        if not rationales:
            return torch.zeros(0, device=self.context.device)
        first = {}
        where = torch.tensor([first.setdefault(tuple(ids), len(first)) for ids in self._known_pairs(inputs, rationales)],
                             device=self.context.device)
        return self._score_unique([list(ids) for ids in first])[where]

    def _known_pairs(self, inputs: list[str], rationales: list[str]) -> list[list[int]]:
        """``_pairs``, reading the ids of the teacher's pairs from those kept."""
        keys = list(zip(inputs, rationales))
        missing = [i for i, key in enumerate(keys) if key not in self.known_ids]
        made = self._pairs([inputs[i] for i in missing], [rationales[i] for i in missing]) if missing else []
        ids = dict(zip(missing, made))
        for i, pair in ids.items():
            if keys[i] in self.recurring:
                self.known_ids[keys[i]] = pair
        return [ids[i] if i in ids else self.known_ids[key] for i, key in enumerate(keys)]

    def _pairs(self, inputs: list[str], rationales: list[str]) -> list[list[int]]:
        """Token ids of each (input, clipped rationale) pair, tokenizing each pair once: a
        rationale within the limit in a pair that was not truncated tokenizes as the clipped
        one would (a fast tokenizer encodes the two texts apart), so only the others, rare,
        are clipped and tokenized again.  A slow tokenizer has no sequence ids: all are clipped."""
        max_length = self.params["max_length"]
        if not self.tokenizer.is_fast:
            return self.tokenizer(inputs, self._clip(rationales), truncation=True, max_length=max_length)["input_ids"]
        encoded = self.tokenizer(inputs, rationales, truncation=True, max_length=max_length)
        ids, limit = encoded["input_ids"], self._rationale_limit()
        redo = [i for i, pair in enumerate(ids)
                if len(pair) >= max_length or encoded.sequence_ids(i).count(1) > limit]
        if redo:
            again = self.tokenizer([inputs[i] for i in redo], self._clip([rationales[i] for i in redo]),
                                   truncation=True, max_length=max_length)["input_ids"]
            for i, pair in zip(redo, again):
                ids[i] = pair
        return ids

    def _score_unique(self, pairs: list[list[int]]) -> torch.Tensor:
        order = sorted(range(len(pairs)), key=lambda i: len(pairs[i]))
        chunk = self.params["score_batch_size"]
        parts = []
        for start in range(0, len(order), chunk):
            batch = self.tokenizer.pad({"input_ids": [pairs[i] for i in order[start:start + chunk]]},
                                       return_tensors="pt").to(self.context.device)
            with autocast(self.context.config, self.context.device), self.rng.active():
                parts.append(self.module(batch["input_ids"], batch["attention_mask"]).float())
        inverse = torch.empty(len(order), dtype=torch.long, device=self.context.device)
        inverse[torch.tensor(order, device=self.context.device)] = torch.arange(len(order), device=self.context.device)
        return torch.cat(parts)[inverse]

    def _rationale_limit(self) -> int:
        return self.params["rationale_tokens"] or self.context.config["train"]["max_target_length"]

    def _clip(self, rationales: list[str]) -> list[str]:
        limit = self._rationale_limit()
        offsets = self.tokenizer(rationales, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        return [text if len(spans) <= limit else text[: spans[limit - 1][1]]
                for text, spans in zip(rationales, offsets)]

    def step(self, lr_scale: float = 1.0) -> None:
        """Apply the gradient the run's L_D left on the judge's parameters.

        L_D reaches only the judge, and AdamW's step does not depend on the loss's scale,
        so the paper's decay of α3 by 0.9 per iteration is applied once, here, as
        ``lr_scale`` = 0.9^t on the judge's learning rate, and not to the loss as well
        (docs/method.md §3; α3 itself only sets L_D's share of the logged total)."""
        for group in self.optimizer.param_groups:
            group["lr"] = self.params["lr"] * lr_scale
        torch.nn.utils.clip_grad_norm_(self.module.parameters(), 1.0)
        self.optimizer.step()
        self.optimizer.zero_grad()

    def state_dict(self) -> dict[str, Any]:
        return {"module": self.module.state_dict(), "optimizer": self.optimizer.state_dict(),
                "rng": self.rng.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state["module"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.rng.load_state_dict(state["rng"])

    def pretrain(self, log: Callable[[dict[str, float], int], None]) -> None:
        """At most ``pretrain_steps`` BCE steps on teacher positives vs (augmented) negatives,
        a ``pretrain_label_noise`` share of whose labels is flipped (a deliberately worse judge)."""
        pairs = pretraining_pairs(self.context, random.Random(self.context.config["seed"]))
        pairs = flip_labels(pairs, self.params["pretrain_label_noise"], random.Random(self.context.config["seed"] + 2))
        steps = self.params["pretrain_steps"]
        if not pairs or steps == 0:
            return
        rng = random.Random(self.context.config["seed"] + 1)
        batch_size = self.params["batch_size"]
        self.module.train()
        for step in range(1, steps + 1):
            batch = [pairs[rng.randrange(len(pairs))] for _ in range(batch_size)]
            scores = self.scores([b[0] for b in batch], [b[1] for b in batch]).clamp(1e-6, 1 - 1e-6)
            labels = torch.tensor([float(b[2]) for b in batch], device=scores.device)
            loss = nn.functional.binary_cross_entropy(scores, labels)
            loss.backward()
            self.step()
            if step % max(steps // 5, 1) == 0 or step == steps:
                accuracy = ((scores > 0.5).float() == labels).float().mean()
                log({"disc_pretrain/loss": loss.item(), "disc_pretrain/accuracy": accuracy.item()}, step)


def pretraining_pairs(context: TrainContext, rng: random.Random) -> list[tuple[str, str, int]]:
    """(input, rationale, label) for every teacher positive and negative, with augmented
    negatives made from positives until the two classes are the same size."""
    positives = [(e.input, r.text, 1) for e in context.train for r in context.positives.get(e.id, [])]
    negatives = [(e.input, r.text, 0) for e in context.train for r in context.teacher_negatives.get(e.id, [])]
    vocabulary = sorted({w for _, text, _ in positives for w in text.split()})
    mask = getattr(context.student.tokenizer, "mask_token", None) or "<mask>"
    index = 0
    while positives and len(negatives) < len(positives):
        x, text, _ = positives[index % len(positives)]
        negatives.append((x, corrupt(text, rng, vocabulary, mask, replace=index % 2 == 1), 0))
        index += 1
    return positives + negatives


def flip_labels(pairs: list[tuple[str, str, int]], rate: float, rng: random.Random) -> list[tuple[str, str, int]]:
    """``pairs`` with the label of a ``rate`` share of them (chosen at random) flipped."""
    flipped = set(rng.sample(range(len(pairs)), round(rate * len(pairs)))) if rate else set()
    return [(x, r, 1 - label if i in flipped else label) for i, (x, r, label) in enumerate(pairs)]


def corrupt(text: str, rng: random.Random, vocabulary: list[str], mask: str, replace: bool,
            rate: float = 0.3) -> str:
    """Word masking (or replacement by random corpus words) of ``rate`` of the words."""
    words = text.split()
    if not words:
        return mask
    count = max(1, round(rate * len(words)))
    for i in rng.sample(range(len(words)), min(count, len(words))):
        words[i] = rng.choice(vocabulary) if replace and vocabulary else mask
    return " ".join(words)


def check_params(params: dict[str, Any]) -> None:
    for key in ("pretrain_steps", "rationale_tokens"):
        if params[key] < 0:
            raise ConfigError(f"discriminator.{key}: must be >= 0, got {params[key]}")
    for key in ("pretrain_label_noise", "label_noise"):
        if not 0 <= params.get(key, 0.0) <= 1:
            raise ConfigError(f"discriminator.{key}: a share in [0, 1], got {params[key]}")
    if not 0 < params["update_fraction"] <= 1:
        raise ConfigError(f"discriminator.update_fraction: a share in (0, 1], got {params['update_fraction']}")
    for key in ("lr", "batch_size", "max_length", "score_batch_size"):
        if params[key] <= 0:
            raise ConfigError(f"discriminator.{key}: must be > 0, got {params[key]}")
    if params["loss"] not in ("eq2", "infonce", "bce"):
        raise ConfigError(f"discriminator.loss: must be one of eq2, infonce, bce, got {params['loss']!r}")
