"""Self-adversarial negatives: earlier versions of the student sample rationales.

Training is cut into iterations of ``iteration_steps`` optimizer steps.  At the
start of iteration t the student's weights are pushed into a ring buffer that keeps
only the ``lag + 1`` snapshots the lag needs; the generator during iteration t is
the snapshot of iteration max(t − lag, 0), iteration 0 being the initial student
(``fixed`` keeps only that one).  Each example's negative is sampled once per
iteration and reused within it: the generator is fixed for the iteration, so a
second draw would come from the same distribution at the cost of another decode.
For the same reason the trainer hands the session each iteration's examples at its
start (``prefetch``), and they are sampled ``sample_batch_size`` at a time: on a small
student a decode step costs about as much for 256 sequences as for 32.
"""

from __future__ import annotations

import copy
from collections import deque
from typing import Any

import torch

from .components import Example, TrainContext
from .evaluation import EXPLAIN


class SnapshotRing:
    """The last ``lag + 1`` per-iteration snapshots (CPU state dicts)."""

    def __init__(self, lag: int, fixed: bool = False):
        self.lag, self.fixed = lag, fixed
        self.ring: deque[tuple[int, dict[str, torch.Tensor]]] = deque(maxlen=1 if fixed else lag + 1)

    def push(self, iteration: int, model: torch.nn.Module) -> None:
        if self.fixed and self.ring:
            return
        state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        self.ring.append((iteration, state))

    def generator_for(self, iteration: int) -> tuple[int, dict[str, torch.Tensor]]:
        """(iteration of the snapshot, its state) that generates during ``iteration``."""
        wanted = 0 if self.fixed else max(iteration - self.lag, 0)
        for snapshot_iteration, state in self.ring:
            if snapshot_iteration == wanted:
                return snapshot_iteration, state
        raise RuntimeError(f"snapshot of iteration {wanted} is no longer kept (have "
                           f"{[i for i, _ in self.ring]}); snapshots must be pushed every iteration")


class SelfPlaySession:
    """Per-run state of a student negative generator (optionally with teacher negatives)."""

    def __init__(self, context: TrainContext, lag: int, fixed: bool, temperature: float,
                 with_teacher: bool, with_student: bool = True, sample_batch_size: int = 256):
        self.context, self.temperature, self.sample_batch_size = context, temperature, sample_batch_size
        self.with_teacher, self.with_student = with_teacher, with_student
        self.ring = SnapshotRing(lag, fixed)
        self.generator_model = None
        self.loaded_iteration: int | None = None
        self.iteration = -1
        self.cache: dict[str, str] = {}
        self.sample_rows: list[dict[str, Any]] = []

    def negatives(self, examples: list[Example], step: int) -> list[list[str]]:
        """Negatives for a batch about to be trained at optimizer step ``step`` (1-based)."""
        result = teacher_negatives(self.context, examples) if self.with_teacher else [[] for _ in examples]
        if self.with_student:
            self._draw(examples, step, batch_size=max(len(examples), 1))  # a batch not drawn ahead: at once
            for example, negatives in zip(examples, result):
                text = self.cache[example.id]
                positives = {same_text_key(r.text) for r in self.context.positives.get(example.id, [])}
                if text and same_text_key(text) not in positives:  # a negative equal to a positive is none
                    negatives.append(text)
        return result

    def prefetch(self, examples: list[Example], step: int) -> None:
        """Sample now the negatives of ``examples``, which are trained later in the iteration
        of ``step``, in batches of ``sample_batch_size``."""
        if self.with_student:
            self._draw(examples, step, self.sample_batch_size)

    def _draw(self, examples: list[Example], step: int, batch_size: int) -> None:
        """Sample, ``batch_size`` per generate call, the negatives of the ``examples`` not yet
        drawn in the iteration of ``step``."""
        self._advance((step - 1) // self.context.iteration_steps)
        missing = [e for e in examples if e.id not in self.cache]
        for start in range(0, len(missing), batch_size):
            chunk = missing[start:start + batch_size]
            self.cache.update(zip((e.id for e in chunk), self._sample(chunk)))

    def _advance(self, iteration: int) -> None:
        while self.iteration < iteration:
            self.iteration += 1
            self.ring.push(self.iteration, self.context.student.model)
            self.cache.clear()

    def state_dict(self) -> dict[str, Any]:
        return {"ring": [[i, state] for i, state in self.ring.ring], "iteration": self.iteration,
                "cache": self.cache, "sample_rows": self.sample_rows}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.ring.ring.clear()
        self.ring.ring.extend((i, snapshot) for i, snapshot in state["ring"])
        self.iteration, self.cache, self.sample_rows = state["iteration"], state["cache"], state["sample_rows"]
        self.loaded_iteration = None  # the generator reloads its snapshot at the next sample

    def generator_iteration(self) -> int:
        return self.ring.generator_for(self.iteration)[0]

    def _sample(self, examples: list[Example]) -> list[str]:
        snapshot_iteration, state = self.ring.generator_for(self.iteration)
        if self.generator_model is None:
            self.generator_model = copy.deepcopy(self.context.student.model)
        if self.loaded_iteration != snapshot_iteration:
            self.generator_model.load_state_dict(state)
            self.loaded_iteration = snapshot_iteration
        texts = sample(self.generator_model, self.context.student.tokenizer, [EXPLAIN + e.input for e in examples],
                       temperature=self.temperature, config=self.context.config, device=self.context.device)
        if len(self.sample_rows) < 200:
            self.sample_rows += [{"iteration": self.iteration, "generator_iteration": snapshot_iteration,
                                  "id": e.id, "input": e.input, "negative": t} for e, t in zip(examples, texts)]
        return texts

    def samples(self) -> list[dict[str, Any]]:
        return self.sample_rows


def teacher_negatives(context: TrainContext, examples: list[Example]) -> list[list[str]]:
    return [[r.text for r in context.teacher_negatives.get(e.id, [])] for e in examples]


def same_text_key(text: str) -> str:
    """Texts that differ only in case and spacing are the same rationale: an uncased
    WordPiece student decodes '3.5 Apples' as '3. 5 apples'."""
    return "".join(text.split()).casefold()


@torch.no_grad()
def sample(model, tokenizer, texts: list[str], *, temperature: float, config: dict, device) -> list[str]:
    """One sampled continuation per text (pure temperature sampling, no top-k/top-p), batched."""
    model.eval()
    enc = tokenizer(texts, return_tensors="pt", padding=True, truncation=True,
                    max_length=config["train"]["max_input_length"]).to(device)
    enc.pop("token_type_ids", None)
    ids = model.generate(**enc, do_sample=True, temperature=temperature, top_k=0, top_p=1.0,
                         max_new_tokens=config["train"]["max_target_length"])
    return [t.strip() for t in tokenizer.batch_decode(ids, skip_special_tokens=True)]
