"""The training loop shared by every method, on accelerate.

Each example is tokenised once.  A step computes the per-sequence NLL of the label-side
target (``Loss.label_target``, by default the gold label, from ``Loss.predict_prefix + x``,
by default ``predict: x``) and, when the loss uses them, of the example's rationales
(from ``explain: x``): positives, and negatives from the negative generator scored
by the discriminator.  The method's loss component turns those into a scalar.

Two things keep the rationale side cheap: the encoder pass of ``explain: x`` runs
once per example and is shared by all of its rationales, and when the loss uses
only one positive and one negative per example (MinMax, MaxMin, Sampling) every
rationale is scored without gradients first and only the chosen ones are run again
with gradients.  That selection pass decodes without dropout (on the dropout-noised
encoder states of the step), so it equals back-propagating through every rationale
exactly only when the model has no dropout; with dropout, the loss of the chosen
rationales is the full computation's in expectation over the masks.  Validation runs every ``train.eval_every`` steps; the best-validation
weights are kept so the test set is scored at the best step and at the final step.
Every ``train.checkpoint_every`` steps the loop's whole state is checkpointed, and a
resumed run replays the seeded data order to the step after its checkpoint.

Several processes (``accelerate launch --multi_gpu --num_processes N`` or ``torchrun``; gloo
on a machine without GPUs) train data-parallel: ``train.batch_size`` stays the global batch,
each process takes its share of it, and gradients are averaged across processes after the
backward pass, as DDP would.  The model is not wrapped in DDP: a step runs the encoder once
and the decoder several times, which DDP's one-forward-per-backward contract does not allow.
Only the main process logs, validates and writes checkpoints (``Ranks``).
"""

from __future__ import annotations

import copy
import itertools
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from tqdm.auto import tqdm
from transformers import get_constant_schedule_with_warmup, get_linear_schedule_with_warmup, get_wsd_schedule
from transformers.modeling_outputs import BaseModelOutput

from . import console
from .checkpoint import Checkpoints, rng_state, set_rng_state
from .distributed import GradientSync, Ranks, check_in_sync, combine, local_part, overlay, shard, sync_start
from .components import Example, Loss, LossInputs, Rationale, Task
from .describe import percent
from .errors import QcrdError
from .evaluation import EXPLAIN, PREDICT, evaluate
from .objectives import discriminator_loss, select_indices, sequence_nll
from .students import has_dropout


class Tokens:
    """The student's tokenizer with the run's length limits."""

    def __init__(self, tokenizer, cfg: dict, decoder_start_id: int | None):
        self.tokenizer, self.decoder_start_id = tokenizer, decoder_start_id
        self.max_in, self.max_out = cfg["train"]["max_input_length"], cfg["train"]["max_target_length"]

    def inputs(self, texts: list[str]) -> list[list[int]]:
        return self.tokenizer(texts, truncation=True, max_length=self.max_in)["input_ids"] if texts else []

    def targets(self, texts: list[str]) -> list[list[int]]:
        if not texts:
            return []
        out = self.tokenizer(texts, truncation=True, max_length=self.max_out)["input_ids"]
        if self.decoder_start_id is not None:
            # A BERT-style tokenizer starts targets with [CLS], which is also the decoder's
            # start token: predicting it again would waste a step.
            out = [seq[1:] if seq and seq[0] == self.decoder_start_id else seq for seq in out]
        return out


@dataclass
class Encoded:
    """One training example with its token ids."""

    example: Example
    predict: list[int]
    label: list[int]
    explain: list[int]
    positives: list[list[int]]
    positive_texts: list[str]


@dataclass
class Judge:
    """What a step needs of the method beyond its loss."""

    negatives: Any = None  # negative generator session (None: the loss uses no negatives)
    discriminator: Any = None  # discriminator session (None: no judge, every rationale weighs 1)
    disc_variant: str = "eq2"
    iteration_steps: int = 1
    lr_decay: float = 1.0  # the judge's learning rate is scaled by lr_decay^iteration (α3's decay)
    update_fraction: float = 1.0  # share of a batch's examples L_D is computed on (discriminator.update_fraction)
    label_noise: float = 0.0  # share of those whose positives and negatives swap roles in L_D (discriminator.label_noise)
    sample_rows: list[dict[str, Any]] = field(default_factory=list)
    teacher_negatives: dict[str, set[str]] = field(default_factory=dict)  # to label a negative's source
    # The task's checker, for ground-truth diagnostics only (qcrd_bench.truth): its labels are
    # logged, never given to the loss.
    truth: Callable[[Example, str], str] | None = None
    judged: list[tuple[float, bool]] = field(default_factory=list)  # (score, valid) in this iteration

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint keeps of the judge: sessions that hold state (weights, an
        optimizer, a snapshot ring) expose ``state_dict``; stateless ones need not."""
        return {"sample_rows": self.sample_rows, "judged": self.judged,
                **{name: session.state_dict() for name, session in self._sessions() if hasattr(session, "state_dict")}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sample_rows, self.judged = state["sample_rows"], state.get("judged", [])
        for name, session in self._sessions():
            if name in state:
                session.load_state_dict(state[name])

    def _sessions(self):
        return [(name, s) for name, s in (("negatives", self.negatives), ("discriminator", self.discriminator))
                if s is not None]

    def lr_scale(self, step: int) -> float:
        """The judge's learning-rate factor at optimizer ``step``: lr_decay^t in iteration t."""
        return self.lr_decay ** ((step - 1) // self.iteration_steps)

    def iteration_metrics(self) -> dict[str, float]:
        """``train/judge_auroc`` over the rationales the judge scored in the iteration just
        ended (with a checker), then a fresh start for the next one."""
        from .truth import auroc

        value = auroc([score for score, _ in self.judged], [valid for _, valid in self.judged])
        self.judged = []
        return {} if value is None else {"train/judge_auroc": value}


@dataclass
class TrainResult:
    best_step: int
    best_val_accuracy: float | None
    best_state: dict[str, torch.Tensor] | None
    history: list[dict[str, float]] = field(default_factory=list)


def encode_examples(tokens: Tokens, examples: list[Example], positives: dict[str, list[Rationale]],
                    targets: dict[str, str] | None = None, prefix: str = PREDICT) -> list[Encoded]:
    """Tokenise every input and target once (batched, in the tokenizer's Rust code).
    ``targets`` maps an example id to its label-side target (``Loss.label_target``; default:
    the gold label); an example without one is left out.  ``prefix`` is ``Loss.predict_prefix``."""
    if targets is not None:
        examples = [e for e in examples if e.id in targets]
    predict = tokens.inputs([prefix + e.input for e in examples])
    explain = tokens.inputs([EXPLAIN + e.input for e in examples])
    labels = tokens.targets([e.label if targets is None else targets[e.id] for e in examples])
    texts = [[r.text for r in positives.get(e.id, [])] for e in examples]
    flat_ids = iter(distinct_map(tokens.targets, [t for group in texts for t in group]))
    return [Encoded(e, p, l, x, [next(flat_ids) for _ in group], group)
            for e, p, l, x, group in zip(examples, predict, labels, explain, texts)]


def distinct_map(encode: Callable[[list[str]], list], texts: list[str]) -> list:
    """``encode(texts)`` computed over the distinct texts only (a teacher repeating itself
    is tokenized once); a repeated text shares its result, which callers only read."""
    distinct = list(dict.fromkeys(texts))
    results = dict(zip(distinct, encode(distinct)))
    return [results[text] for text in texts]


def pad(seqs: list[list[int]], value: int) -> torch.Tensor:
    width = max(len(s) for s in seqs)
    return torch.tensor([s + [value] * (width - len(s)) for s in seqs], dtype=torch.long)


def nll(model, inputs: list[list[int]], targets: list[list[int]], pad_id: int, device) -> torch.Tensor:
    """Per-sequence token-mean NLL of ``targets`` given ``inputs`` -> [N]."""
    input_ids = pad(inputs, pad_id).to(device)
    labels = pad(targets, -100).to(device)
    out = model(input_ids=input_ids, attention_mask=(input_ids != pad_id).long(),
                decoder_input_ids=decoder_inputs(model, labels), use_cache=False)
    return sequence_nll(out.logits, labels)


def decoder_inputs(model, labels: torch.Tensor) -> torch.Tensor:
    """Teacher-forcing inputs (labels shifted right), passed instead of ``labels`` so the
    model does not compute a loss of its own that nothing uses (nor, with ``use_cache=False``,
    a key/value cache that only generation reads)."""
    return getattr(model, "module", model).prepare_decoder_input_ids_from_labels(labels=labels)


def rationale_nll(model, encoder_states: torch.Tensor, mask: torch.Tensor, targets: list[list[int]],
                  owner: torch.Tensor, device) -> torch.Tensor:
    """NLL of each target [R] given the shared encoder states of its example (``owner``)."""
    if not targets:
        return encoder_states.new_zeros(0)
    labels = pad(targets, -100).to(device)
    out = model(encoder_outputs=BaseModelOutput(last_hidden_state=encoder_states.index_select(0, owner)),
                attention_mask=mask.index_select(0, owner), decoder_input_ids=decoder_inputs(model, labels),
                use_cache=False)
    return sequence_nll(out.logits, labels)


def unique_nll(model, encoder_states: torch.Tensor, mask: torch.Tensor, targets: list[list[int]],
               owner: torch.Tensor, device) -> torch.Tensor:
    """``rationale_nll`` computed once per distinct (example, target): for passes without
    dropout, where a repeated rationale (a teacher repeating itself) has the same NLL."""
    first: dict[tuple, int] = {}
    where = [first.setdefault((b, tuple(t)), len(first)) for b, t in zip(owner.tolist(), targets)]
    if len(first) == len(targets):
        return rationale_nll(model, encoder_states, mask, targets, owner, device)
    kept = torch.tensor([b for b, _ in first], dtype=torch.long, device=owner.device)
    nll_kept = rationale_nll(model, encoder_states, mask, [list(t) for _, t in first], kept, device)
    return nll_kept[torch.tensor(where, device=nll_kept.device)]


def pos_neg_nll(decode, model, encoder_states: torch.Tensor, mask: torch.Tensor, pos_targets: list[list[int]],
                pos_owner: torch.Tensor, neg_targets: list[list[int]], neg_owner: torch.Tensor,
                device) -> tuple[torch.Tensor, torch.Tensor]:
    """(positives' NLL, negatives' NLL) from one decoder call of ``decode`` (``rationale_nll`` or
    ``unique_nll``) over both: one pass costs less than two on a small student."""
    both = decode(model, encoder_states, mask, pos_targets + neg_targets, torch.cat([pos_owner, neg_owner]), device)
    return both[: len(pos_targets)], both[len(pos_targets):]


def batches(n: int, batch_size: int, generator: torch.Generator, lengths: list[int] | None = None,
            group: int = 0):
    """Endless seeded shuffles of range(n), cut into global batches of ``batch_size`` (the
    last of an epoch may be short); with several processes each takes its ``shard`` of each,
    so the batches, and the data order, do not depend on the number of processes.

    With ``lengths`` and ``group`` > 0, each run of ``group`` batches of the shuffle is sorted
    by length before it is cut (less padding), and those batches are then shuffled among
    themselves, so batches stay random in order but hold examples of similar length."""
    while True:
        order = torch.randperm(n, generator=generator).tolist()
        chunks = [order[start:start + batch_size] for start in range(0, n, batch_size)]
        if lengths is not None and group > 0:
            chunks = _length_grouped(order, batch_size, lengths, group, generator)
        yield from chunks


class Peekable:
    """An iterator whose next items can be looked at without being consumed."""

    def __init__(self, items):
        self.items, self.ahead = iter(items), deque()

    def __iter__(self):
        return self

    def __next__(self):
        return self.ahead.popleft() if self.ahead else next(self.items)

    def peek(self, count: int) -> list:
        while len(self.ahead) < count:
            self.ahead.append(next(self.items))
        return list(itertools.islice(self.ahead, count))


def _length_grouped(order: list[int], size: int, lengths: list[int], group: int,
                    generator: torch.Generator) -> list[list[int]]:
    chunks = []
    for start in range(0, len(order), size * group):
        mega = sorted(order[start:start + size * group], key=lambda i: lengths[i], reverse=True)
        cut = [mega[i:i + size] for i in range(0, len(mega), size)]
        chunks += [cut[i] for i in torch.randperm(len(cut), generator=generator).tolist()]
    return chunks


def train(student, task: Task, tokens: Tokens, train_set: list[Encoded], val: list[Example], loss: Loss,
          loss_params: dict[str, Any], cfg: dict, log: Callable[[dict[str, float], int], None],
          judge: Judge | None = None, checkpoints: Checkpoints | None = None,
          resume: dict[str, Any] | None = None) -> TrainResult:
    """Train for ``train.steps`` optimizer steps; with ``resume`` (a checkpoint's state),
    continue from the step after it, exactly as the uninterrupted run would have.

    In several processes every process calls this; only the main one calls ``log``,
    validates, keeps the best weights and writes ``checkpoints`` (the others' ``log`` is
    never called), and every process loads the same ``resume`` state, which is cleared
    once restored."""
    tc = cfg["train"]
    if not train_set:  # the batch stream would never yield
        raise QcrdError("no training examples to train on")
    judge = judge or Judge()
    ranks = Ranks()
    accelerator = _accelerator(tc)
    model, tokenizer = student.model, student.tokenizer
    optimizer = torch.optim.AdamW(model.parameters(), lr=tc["lr"], weight_decay=tc["weight_decay"])
    # The plain scheduler, stepped once per optimizer step below: accelerate's wrapper steps
    # it once per process.  The model gets device placement and mixed precision but no DDP
    # wrapper (evaluation_mode): gradients are averaged by `sync` instead.
    scheduler = lr_scheduler(optimizer, tc)
    model = accelerator.prepare_model(model, evaluation_mode=True)
    optimizer = accelerator.prepare_optimizer(optimizer)
    device = accelerator.device
    step_fn = StepLoss(accelerator.unwrap_model(model), model, tokens, loss, loss_params, judge, device,
                       torch.Generator().manual_seed(cfg["seed"] + 1))
    judge_params = list(judge.discriminator.parameters()) if judge.discriminator is not None else []
    sync = GradientSync(list(model.parameters()) + judge_params, ranks)

    generator = torch.Generator().manual_seed(cfg["seed"])
    lengths = [len(it.explain) + len(it.label) + sum(map(len, it.positives)) for it in train_set]
    stream = Peekable(batches(len(train_set), tc["batch_size"], generator, lengths, tc["group_by_length"]))
    val_subset = val[: cfg["eval"]["val_limit"]] if cfg["eval"]["val_limit"] else val
    result = TrainResult(best_step=0, best_val_accuracy=None, best_state=None)
    window: dict[str, float] = {}
    window_steps, window_examples, window_start = 0, 0, time.perf_counter()
    first = 1
    if resume is not None:
        # A multi-process run rebinds `resume` to a merged copy below; `checkpoint` keeps the
        # caller's dict, whose clearing frees the loaded tensors.
        checkpoint, first = resume, resume["step"] + 1
        for _ in range(resume["step"] * tc["grad_accum"]):  # the stream is seeded: replay its order
            next(stream)
        own = resume.get("ranks") or []
        if ranks.world > 1 and len(own) == ranks.world:
            # Each process's own generators and judge state (its negatives); from a checkpoint
            # of another process count, every process goes on with the main process's.
            own = own[ranks.rank]
            resume = {**resume, "rng": own["rng"], "selection_rng": own["selection_rng"],
                      "judge": overlay(resume["judge"], own["judge"])}
        _restore(resume, accelerator.unwrap_model(model), optimizer, scheduler, step_fn, judge, result)
        if accelerator.scaler is not None and resume.get("scaler"):  # fp16's loss scale
            accelerator.scaler.load_state_dict(resume["scaler"])
        window, window_steps, window_examples = resume["window"], *resume["window_counts"]
        # Consumed: the weights were copied into the models, so the checkpoint's own copies
        # are freed rather than held (by the caller too) for the rest of the run.
        checkpoint.clear()
    elif ranks.world > 1:
        sync_start(ranks, accelerator.unwrap_model(model), judge)

    model.train()
    progress = tqdm(range(first, tc["steps"] + 1), desc=f"{cfg['method']}/{cfg['task']['name']}", unit="step",
                    initial=first - 1, total=tc["steps"], disable=not ranks.is_main)
    shown = {"loss": "-", **_last_validation(result)}  # the bar's postfix: last loss, last validation accuracy
    for step in progress:
        if step == first or (step - 1) % judge.iteration_steps == 0:
            _prefetch_negatives(judge, stream, train_set, step, tc, ranks)
        for _ in range(tc["grad_accum"]):
            items, scale = shard(next(stream), ranks.rank, ranks.world)
            items = [train_set[i] for i in items]
            with accelerator.accumulate(model):
                # The whole step under autocast, not only the wrapped forward: the shared
                # encoder pass and the judge run outside it.
                with accelerator.autocast():
                    out = step_fn(items, step)
                accelerator.backward(out.total if scale == 1 else out.total * scale)
                if accelerator.sync_gradients:
                    sync()
                if accelerator.sync_gradients and tc["max_grad_norm"] > 0:
                    accelerator.clip_grad_norm_(model.parameters(), tc["max_grad_norm"])
                optimizer.step()
                if accelerator.sync_gradients and not accelerator.optimizer_step_was_skipped:
                    scheduler.step()
                optimizer.zero_grad()
                if judge.discriminator is not None and accelerator.sync_gradients:
                    judge.discriminator.step(judge.lr_scale(step))
            terms = {name: float(value.detach()) / tc["grad_accum"]
                     for name, value in {"loss": out.total, **out.terms}.items()}
            if judge.discriminator is not None:
                terms["judge_lr_scale"] = judge.lr_scale(step) / tc["grad_accum"]
            examples = len(items)
            if ranks.world > 1:  # the whole batch's values, which every process then holds alike
                terms, examples = combine(ranks.gather((terms, len(items) if scale else 0)))
            for name, value in terms.items():
                window[name] = window.get(name, 0.0) + value
            window_examples += examples
        window_steps += 1

        if step % tc["log_every"] == 0 or step == tc["steps"]:
            if ranks.is_main:
                seconds = time.perf_counter() - window_start
                metrics = {f"train/{k}": v / window_steps for k, v in window.items()}
                metrics["train/lr"] = scheduler.get_last_lr()[0]
                metrics["train/examples_per_s"] = window_examples / max(seconds, 1e-9)
                log(metrics, step)
                shown["loss"] = f"{metrics['train/loss']:.3f}"
                progress.set_postfix(shown)
            window, window_steps, window_examples, window_start = {}, 0, 0, time.perf_counter()

        if val_subset and (step % tc["eval_every"] == 0 or step == tc["steps"]):
            eval_start = time.perf_counter()
            ranks.lead(lambda: _validate(accelerator.unwrap_model(model), tokenizer, task, val_subset, cfg, device,
                                         loss, log, step, result))
            window_start += time.perf_counter() - eval_start  # throughput counts training only
            shown.update(_last_validation(result))
            progress.set_postfix(shown)

        if judge.truth is not None and (step % judge.iteration_steps == 0 or step == tc["steps"]):
            judged = judge.iteration_metrics()
            if judged and ranks.is_main:
                log(judged, step)

        if checkpoints is not None and checkpoints.due(step, tc["steps"]):
            own = ranks.gather({"rng": rng_state(), "selection_rng": step_fn.generator.get_state(),
                                "judge": local_part(judge.state_dict())}) if ranks.world > 1 else None

            def save() -> None:
                state = _state(step, accelerator.unwrap_model(model), optimizer, scheduler, step_fn, judge, result,
                               window, (window_steps, window_examples))
                if ranks.world > 1:
                    state["ranks"] = own
                if accelerator.scaler is not None:
                    state["scaler"] = accelerator.scaler.state_dict()
                checkpoints.save(state)
            ranks.lead(save)
    progress.close()
    if ranks.world > 1:
        check_in_sync(ranks, list(model.parameters()) + judge_params)
    student.model = accelerator.unwrap_model(model)
    return result


def _prefetch_negatives(judge: Judge, stream: Peekable, train_set: list[Encoded], step: int, tc: dict,
                        ranks: Ranks) -> None:
    """At an iteration's first step (or the first after a resume), hand a negative generator
    that draws ahead (``prefetch``) the examples this process trains on in the rest of the
    iteration: its generator is fixed for the iteration, so they can be sampled in a few
    large batches instead of one small one per step."""
    prefetch = getattr(judge.negatives, "prefetch", None)
    if prefetch is None:
        return
    last = min(((step - 1) // judge.iteration_steps + 1) * judge.iteration_steps, tc["steps"])
    upcoming = stream.peek((last - step + 1) * tc["grad_accum"])
    indices = dict.fromkeys(i for chunk in upcoming for i in shard(chunk, ranks.rank, ranks.world)[0])
    prefetch([train_set[i].example for i in indices], step)


def lr_scheduler(optimizer, tc: dict):
    """The learning rate after ``warmup_steps`` of linear warm-up: ``linear`` down to 0 at the
    last step (DSS's Trainer), ``constant``, or ``wsd`` (constant, then linear down to 0 over the
    last ``lr_decay_fraction`` of the steps), which keeps the full rate through a late
    transition and still anneals at the end."""
    warmup, steps = tc["warmup_steps"], tc["steps"]
    if tc["lr_schedule"] == "constant":
        return get_constant_schedule_with_warmup(optimizer, warmup)
    if tc["lr_schedule"] == "wsd":
        decay = round(tc["lr_decay_fraction"] * steps)
        # A run shorter than its warm-up and decay (a smoke run) warms up, then decays.
        return get_wsd_schedule(optimizer, warmup, decay, num_stable_steps=max(0, steps - warmup - decay),
                                decay_type="linear")
    return get_linear_schedule_with_warmup(optimizer, warmup, steps)


def _accelerator(tc: dict) -> Accelerator:
    """An Accelerator in this run's precision.  accelerate keeps the first precision of a
    process for its whole life and refuses another, but one process may train several runs
    (a sequential sweep such as ``--vary train.mixed_precision=no,bf16``, the tests): so its
    shared state is reset when the precision changes (the process group stays)."""
    shared = AcceleratorState._shared_state
    if shared and shared.get("_mixed_precision") != tc["mixed_precision"]:
        AcceleratorState._reset_state(reset_partial_state=False)
    return Accelerator(gradient_accumulation_steps=tc["grad_accum"], mixed_precision=tc["mixed_precision"])


def _last_validation(result: TrainResult) -> dict[str, str]:
    return {"val/accuracy": percent(result.history[-1]["accuracy"])} if result.history else {}


def _validate(model, tokenizer, task: Task, val_subset: list[Example], cfg: dict, device, loss: Loss,
              log: Callable[[dict[str, float], int], None], step: int, result: TrainResult) -> None:
    """Score the validation subset, log it, and keep the best weights so far (main process)."""
    metrics, _ = evaluate(model, tokenizer, task, val_subset, cfg, device, loss,
                          progress=console.progress(f"validating (step {step})", leave=False))
    log({"val/accuracy": metrics["accuracy"], "val/parse_rate": metrics["parse_rate"]}, step)
    result.history.append({"step": step, **metrics})
    if result.best_val_accuracy is None or metrics["accuracy"] > result.best_val_accuracy:
        result.best_val_accuracy, result.best_step = metrics["accuracy"], step
        result.best_state = copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})


def _state(step: int, model, optimizer, scheduler, step_fn: StepLoss, judge: Judge, result: TrainResult,
           window: dict[str, float], window_counts: tuple[int, int]) -> dict[str, Any]:
    """Everything the loop needs to continue after ``step`` (see checkpoint.py)."""
    return {"step": step, "student": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "judge": judge.state_dict(), "rng": rng_state(),
            "selection_rng": step_fn.generator.get_state(),
            "result": {"best_step": result.best_step, "best_val_accuracy": result.best_val_accuracy,
                       "best_state": result.best_state, "history": result.history},
            "window": window, "window_counts": list(window_counts)}


def _restore(state: dict[str, Any], model, optimizer, scheduler, step_fn: StepLoss, judge: Judge,
             result: TrainResult) -> None:
    model.load_state_dict(state["student"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    judge.load_state_dict(state["judge"])
    step_fn.generator.set_state(state["selection_rng"])
    set_rng_state(state["rng"])
    for key, value in state["result"].items():
        setattr(result, key, value)


class StepLoss:
    """Builds the loss inputs of one batch and applies the method's loss."""

    def __init__(self, model, wrapped, tokens: Tokens, loss: Loss, params: dict[str, Any], judge: Judge, device,
                 generator: torch.Generator):
        self.model, self.wrapped, self.tokens, self.loss, self.params = model, wrapped, tokens, loss, params
        self.judge, self.device, self.generator = judge, device, generator
        self.pad_id = tokens.tokenizer.pad_token_id
        # Without dropout the selecting pass and the gradient pass would compute the same
        # values, so one pass with gradients serves both (exactly).
        self.one_pass = not has_dropout(model)

    def __call__(self, items: list[Encoded], step: int):
        label_nll = nll(self.wrapped, [it.predict for it in items], [it.label for it in items], self.pad_id, self.device)
        if not self.loss.uses_rationales:
            return self.loss(LossInputs(label_nll=label_nll), self.params)
        iteration = (step - 1) // self.judge.iteration_steps
        pos_texts = [it.positive_texts for it in items]
        neg_texts = (self.judge.negatives.negatives([it.example for it in items], step)
                     if self.loss.uses_negatives and self.judge.negatives is not None else [[] for _ in items])
        pos_targets = [ids for it in items for ids in it.positives]
        neg_targets = self.tokens.targets([t for group in neg_texts for t in group])
        pos_owner = self._owner([len(g) for g in pos_texts])
        neg_owner = self._owner([len(g) for g in neg_texts])

        # One encoder pass of `explain: x` per example, shared by all of its rationales.
        input_ids = pad([it.explain for it in items], self.pad_id).to(self.device)
        mask = (input_ids != self.pad_id).long()
        states = self.model.get_encoder()(input_ids=input_ids, attention_mask=mask).last_hidden_state

        chosen = None  # (positive indices, negative indices) a selecting scheme keeps
        candidates = None  # with one pass: the NLL of every positive and negative (`_candidates`)
        if self.loss.selects(self.params) and (len(pos_targets) > len(items) or neg_targets):
            if self.one_pass:
                candidates = self._candidates(states, mask, pos_targets, pos_owner, neg_targets, neg_owner)
                all_pos, all_neg = (values.detach() for values in candidates)
            else:
                all_pos, all_neg = self._selection_pass(states, mask, pos_targets, pos_owner, neg_targets, neg_owner)
            chosen = select_indices(all_pos, pos_owner, all_neg, neg_owner, len(items), self.params["scheme"],
                                    self.params["delta"], self.generator)
        pos_scores, neg_scores, disc_loss, terms = self._judge(items, pos_texts, neg_texts, pos_owner, neg_owner,
                                                               step, iteration, chosen)
        if chosen is not None:
            p, n = chosen
            pos_targets, pos_owner, pos_scores = [pos_targets[i] for i in p.tolist()], pos_owner[p], pos_scores[p]
            neg_targets, neg_owner, neg_scores = [neg_targets[i] for i in n.tolist()], neg_owner[n], neg_scores[n]
        if candidates is not None:
            pos_nll = candidates[0][p]
            neg_nll = self._within_margin(states, mask, neg_targets, neg_owner, candidates[1][n])
        else:
            pos_nll, neg_nll = pos_neg_nll(rationale_nll, self.wrapped, states, mask, pos_targets, pos_owner,
                                           neg_targets, neg_owner, self.device)
        out = self.loss(LossInputs(label_nll, pos_nll, pos_owner, pos_scores, neg_nll, neg_owner,
                                   neg_scores, disc_loss, iteration), self.params)
        out.terms.update(terms)
        return out

    def _candidates(self, states, mask, pos_targets, pos_owner, neg_targets, neg_owner):
        """The NLL of every positive and negative, to choose from, for a student without dropout:
        the positives with gradients (the chosen ones' are kept), and the negatives with them
        too in the same decoder call, unless the loss has a margin past which a negative carries
        no gradient.  Then the negatives are decoded without gradients and only the chosen ones
        within the margin again with them (``_within_margin``): the same loss and gradients, and
        most self-play negatives lie past δ (their term is 0), so most of their backward is saved."""
        if self.loss.negative_margin(self.params) is None:
            return pos_neg_nll(unique_nll, self.wrapped, states, mask, pos_targets, pos_owner, neg_targets, neg_owner,
                               self.device)
        positives = unique_nll(self.wrapped, states, mask, pos_targets, pos_owner, self.device)
        with torch.no_grad():
            negatives = unique_nll(self.wrapped, states, mask, neg_targets, neg_owner, self.device)
        return positives, negatives

    def _within_margin(self, states, mask, targets, owner, values: torch.Tensor) -> torch.Tensor:
        """``values`` (the chosen negatives' NLL), those within the loss's margin decoded again
        with gradients; past it a value stays as it is, without: its term and gradient are 0."""
        margin = self.loss.negative_margin(self.params)
        if margin is None:  # `_candidates` decoded every negative with gradients
            return values
        inside = (values <= margin).nonzero().flatten()
        if not inside.numel():
            return values
        again = rationale_nll(self.wrapped, states, mask, [targets[i] for i in inside.tolist()], owner[inside],
                              self.device)
        return values.index_put((inside,), again.to(values.dtype))

    @torch.no_grad()
    def _selection_pass(self, states, mask, pos_targets, pos_owner, neg_targets, neg_owner):
        """The NLL of every positive and negative, to choose from, for a student with dropout.

        It runs without dropout: its masks would not be the ones the gradient pass draws.  It
        reads the encoder states of the gradient pass, which carry that pass's dropout, and the
        chosen rationales are then decoded again with fresh dropout: given the choice, the loss
        is the full computation's in expectation over the masks, and the choice is made on the
        noise-free decoder (tests/test_qcrd.py checks the case without dropout)."""
        training = self.model.training
        self.model.eval()
        try:
            return pos_neg_nll(unique_nll, self.wrapped, states.detach(), mask, pos_targets, pos_owner, neg_targets,
                               neg_owner, self.device)
        finally:
            self.model.train(training)

    def _owner(self, counts: list[int]) -> torch.Tensor:
        return torch.tensor([b for b, c in enumerate(counts) for _ in range(c)], dtype=torch.long, device=self.device)

    def _judge(self, items, pos_texts, neg_texts, pos_owner, neg_owner, step: int, iteration: int, chosen=None):
        """Discriminator scores of the rationales (detached: they are the loss's weights), its
        loss L_D, and diagnostics.  L_D is computed on every rationale of a random
        ``discriminator.update_fraction`` share of the examples; of the others only the
        ``chosen`` rationales (the ones a selecting scheme keeps; all without a selection)
        are scored, without gradients, for their weights."""
        discriminator = self.judge.discriminator
        flat_pos = [t for g in pos_texts for t in g]
        flat_neg = [t for g in neg_texts for t in g]
        terms = {"n_neg": torch.tensor(float(len(flat_neg)) / len(items))} if self.loss.uses_negatives else {}
        truth = self._truth(items, pos_owner, flat_pos, neg_owner, flat_neg, terms)
        if discriminator is None or not self.loss.uses_negatives:
            # No judge: every rationale weighs 1 in both terms, s_pos = 1 and (1 − s_neg) = 1.
            return (torch.ones(len(flat_pos), device=self.device), torch.zeros(len(flat_neg), device=self.device),
                    None, terms)
        inputs = [it.example.input for it in items]
        owners = pos_owner.tolist() + neg_owner.tolist()
        texts = flat_pos + flat_neg
        updated = self._updated_examples(len(items))
        with_grad = [i for i, b in enumerate(owners) if b in updated]
        wanted = set(range(len(texts))) if chosen is None else \
            set(chosen[0].tolist()) | {len(flat_pos) + i for i in chosen[1].tolist()}
        weights_only = [i for i in sorted(wanted) if owners[i] not in updated]
        # One call for each set: the judge batches pairs by length across positives and negatives.
        graded = discriminator.scores([inputs[owners[i]] for i in with_grad], [texts[i] for i in with_grad])
        with torch.no_grad():
            ungraded = discriminator.scores([inputs[owners[i]] for i in weights_only], [texts[i] for i in weights_only])
        scores = torch.zeros(len(texts), device=self.device)  # rationales left unscored are never used
        scored = torch.zeros(len(texts), dtype=torch.bool, device=self.device)
        for indices, values in ((with_grad, graded), (weights_only, ungraded)):
            if indices:
                index = torch.tensor(indices, device=self.device)
                scores[index], scored[index] = values.detach(), True
        disc_loss = None
        if discriminator.parameters():
            swapped = self._swapped_examples(updated)
            pos = torch.tensor([(i < len(flat_pos)) != (owners[i] in swapped) for i in with_grad], dtype=torch.bool,
                               device=self.device)
            owner = torch.tensor([owners[i] for i in with_grad], dtype=torch.long, device=self.device)
            disc_loss = discriminator_loss(graded[pos], owner[pos], graded[~pos], owner[~pos], len(items),
                                           self.judge.disc_variant)
        positive = torch.arange(len(texts), device=self.device) < len(flat_pos)
        pos_seen, neg_seen = scores[scored & positive], scores[scored & ~positive]
        if discriminator.parameters():
            correct = torch.cat([pos_seen > 0.5, neg_seen <= 0.5]).float()
            terms["disc_acc"] = correct.mean() if correct.numel() else torch.tensor(0.0)
        terms["score_pos"] = pos_seen.mean() if pos_seen.numel() else torch.tensor(0.0)
        terms["score_neg"] = neg_seen.mean() if neg_seen.numel() else torch.tensor(0.0)
        if truth is not None:
            self.judge.judged += [(scores[i].item(), truth[i] == "valid") for i in scored.nonzero().flatten().tolist()]
        pos_scores, neg_scores = scores[: len(flat_pos)], scores[len(flat_pos):]
        if (step - 1) % self.judge.iteration_steps == 0 and len(self.judge.sample_rows) < 300:
            self._sample_rows(items, inputs, step, iteration, pos_owner, flat_pos, pos_scores, neg_owner, flat_neg,
                              neg_scores, truth, scored)
        return pos_scores, neg_scores, disc_loss, terms

    def _updated_examples(self, batch: int) -> set[int]:
        """The examples whose rationales L_D is computed on this step."""
        fraction = self.judge.update_fraction
        if fraction >= 1:
            return set(range(batch))
        count = max(1, round(fraction * batch))
        return set(torch.randperm(batch, generator=self.generator)[:count].tolist())

    def _swapped_examples(self, updated: set[int]) -> set[int]:
        """The updated examples whose positives L_D treats as negatives and the other way round:
        online label noise, a deliberately worse judge (none drawn at 0, so the run is unchanged)."""
        rate = self.judge.label_noise
        if not rate:
            return set()
        ordered = sorted(updated)
        draws = torch.rand(len(ordered), generator=self.generator).tolist()
        return {b for b, u in zip(ordered, draws) if u < rate}

    def _student_negative(self, example_id: str, text: str) -> bool:
        return text not in self.judge.teacher_negatives.get(example_id, ())

    def _truth(self, items, pos_owner, flat_pos, neg_owner, flat_neg, terms) -> list[str] | None:
        """The checker's label of every positive then negative of the batch (None without a
        checker), and the share of the batch's student negatives that are not valid."""
        check = self.judge.truth
        if check is None or (self.judge.discriminator is None and not flat_neg):
            return None  # nothing to label: no judge to measure, no negatives
        owners = pos_owner.tolist() + neg_owner.tolist()
        labels = [check(items[b].example, text) for b, text in zip(owners, flat_pos + flat_neg)]
        student = [label for b, text, label in zip(neg_owner.tolist(), flat_neg, labels[len(flat_pos):])
                   if self._student_negative(items[b].example.id, text)]
        if student:
            terms["neg_student_invalid_frac"] = torch.tensor(sum(label != "valid" for label in student) / len(student))
        return labels

    def _sample_rows(self, items, inputs, step, iteration, pos_owner, flat_pos, pos_scores, neg_owner, flat_neg,
                     neg_scores, truth: list[str] | None, scored: torch.Tensor) -> None:
        """Scored rationales at the start of an iteration, labelled by source (teacher positive,
        teacher negative, student negative) and, with a checker, by truth: the paper's Fig. 6."""
        labels = iter(truth or [])
        was_scored = iter(scored.tolist())

        def rows(owner, texts, scores, source_of):
            own = [(next(labels, None), next(was_scored)) for _ in texts]  # positives, then negatives
            kept = [(b, text, score, label) for b, text, score, (label, seen) in zip(owner.tolist(), texts,
                                                                                     scores.tolist(), own) if seen]
            for b, text, score, label in kept[:10]:
                row = {"step": step, "iteration": iteration, "id": items[b].example.id, "input": inputs[b],
                       "rationale": text, "score": score, "source": source_of(items[b].example.id, text)}
                self.judge.sample_rows.append(row if truth is None else {**row, "truth": label})

        rows(pos_owner, flat_pos, pos_scores, lambda _, __: "teacher positive")
        rows(neg_owner, flat_neg, neg_scores, lambda example_id, text: "student negative"
             if self._student_negative(example_id, text) else "teacher negative")
