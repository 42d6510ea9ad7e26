"""The DSS objective trained the way the reference implementation does it.

google-research/distilling-step-by-step (``model_utils.py``, ``run.py``, ``train_utils.py``)
trains Distilling Step-by-Step with a plain ``Seq2SeqTrainer``:

* the training set is tokenised up front with ``datasets.map(batched=True)``: ``predict: x``
  and ``explain: x`` inputs, the label and the rationale as targets;
* a ``DataCollatorForSeq2Seq`` subclass splits each batch of features (through a pandas
  DataFrame) into a ``pred`` and an ``expl`` sub-batch and pads each separately (labels
  with -100, ``decoder_input_ids`` made from the labels by the model);
* ``compute_loss`` runs the model twice, once per sub-batch, and returns
  ``alpha · loss_pred + (1 − alpha) · loss_expl`` (each the model's token-mean CE).

This module rebuilds that with the installed transformers (5.x: ``num_items_in_batch``
in ``compute_loss``, ``processing_class``), for the throughput comparison only.  It is
written from the reference's description, not copied.
"""

from __future__ import annotations

import tempfile
import time

import pandas as pd
from transformers import DataCollatorForSeq2Seq, Seq2SeqTrainer, Seq2SeqTrainingArguments, TrainerCallback
from transformers.trainer_callback import PrinterCallback

PRED_KEYS = ("input_ids", "attention_mask", "labels")
EXPL_KEYS = ("expl_input_ids", "expl_attention_mask", "aux_labels")


class PrefixCollator(DataCollatorForSeq2Seq):
    """Pads the ``pred`` and the ``expl`` halves of a batch separately."""

    def __call__(self, features, return_tensors=None):
        frame = pd.DataFrame(features)
        pred = frame.loc[:, list(PRED_KEYS)].to_dict("records")
        expl = frame.loc[:, list(EXPL_KEYS)].rename(columns=dict(zip(EXPL_KEYS, PRED_KEYS))).to_dict("records")
        return {"pred": super().__call__(pred, return_tensors), "expl": super().__call__(expl, return_tensors)}


class PrefixTrainer(Seq2SeqTrainer):
    """Two forward passes per batch: loss = alpha·pred + (1 − alpha)·expl."""

    def __init__(self, alpha: float, **kwargs):
        super().__init__(**kwargs)
        self.alpha = alpha

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        pred = model(**inputs["pred"])
        expl = model(**inputs["expl"])
        loss = self.alpha * pred.loss + (1.0 - self.alpha) * expl.loss
        return (loss, {"pred": pred, "expl": expl}) if return_outputs else loss


class StepClock(TrainerCallback):
    """The clock at the end of every optimizer step (data loading and collation of the
    next batch fall inside the following interval)."""

    def __init__(self, clock=time.perf_counter):
        self.clock = clock
        self.ends: list[float] = []
        self.start: float | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.start = self.clock()

    def on_step_end(self, args, state, control, **kwargs):
        self.ends.append(self.clock())

    def step_seconds(self) -> list[float]:
        """Seconds of each step, the first one measured from the start of training."""
        marks = [self.start] + self.ends
        return [b - a for a, b in zip(marks, marks[1:])]


def tokenise(tokenizer, inputs: list[str], labels: list[str], rationales: list[str], max_input_length: int,
             max_target_length: int, clock=time.perf_counter):
    """The training set as the reference builds it: a ``datasets.Dataset`` mapped by a
    batched tokenising function -> (dataset, seconds on ``clock``)."""
    from datasets import Dataset, disable_progress_bars

    disable_progress_bars()
    start = clock()
    raw = Dataset.from_dict({"input": inputs, "label": labels, "rationale": rationales})

    def tokenize_function(batch):
        enc = tokenizer(["predict: " + t for t in batch["input"]], max_length=max_input_length, truncation=True)
        expl = tokenizer(["explain: " + t for t in batch["input"]], max_length=max_input_length, truncation=True)
        enc["expl_input_ids"], enc["expl_attention_mask"] = expl["input_ids"], expl["attention_mask"]
        enc["labels"] = tokenizer(text_target=batch["label"], max_length=max_target_length, truncation=True)["input_ids"]
        enc["aux_labels"] = tokenizer(text_target=batch["rationale"], max_length=max_target_length,
                                      truncation=True)["input_ids"]
        return enc

    dataset = raw.map(tokenize_function, batched=True, remove_columns=["input", "label", "rationale"],
                      load_from_cache_file=False, keep_in_memory=True)
    return dataset, clock() - start


def train_reference(model, tokenizer, dataset, *, steps: int, batch_size: int, lr: float, alpha: float,
                    seed: int, max_grad_norm: float = 1.0, clock=time.perf_counter) -> list[float]:
    """Train ``model`` for ``steps`` optimizer steps -> seconds of each step on ``clock``."""
    clock = StepClock(clock)
    with tempfile.TemporaryDirectory() as out:
        args = Seq2SeqTrainingArguments(
            output_dir=out, remove_unused_columns=False, max_steps=steps, per_device_train_batch_size=batch_size,
            learning_rate=lr, weight_decay=0.0, max_grad_norm=max_grad_norm, lr_scheduler_type="linear",
            warmup_steps=0, seed=seed, report_to=[], save_strategy="no", eval_strategy="no",
            logging_strategy="no", disable_tqdm=True, use_cpu=True, dataloader_num_workers=0,
        )
        trainer = PrefixTrainer(alpha=alpha, model=model, args=args, train_dataset=dataset,
                                data_collator=PrefixCollator(tokenizer=tokenizer, model=model),
                                processing_class=tokenizer, callbacks=[clock])
        trainer.remove_callback(PrinterCallback)  # its end-of-training summary would interleave with the table
        trainer.train()
    return clock.step_seconds()


def flop_batch(model, tokenizer, dataset, indices: list[int], alpha: float):
    """(collated inputs, loss function) of one reference step on ``dataset[indices]``,
    for counting its FLOPs."""
    collator = PrefixCollator(tokenizer=tokenizer, model=model)
    batch = collator([dataset[i] for i in indices], return_tensors="pt")

    def loss():
        pred = model(**batch["pred"])
        expl = model(**batch["expl"])
        return alpha * pred.loss + (1.0 - alpha) * expl.loss

    return loss
