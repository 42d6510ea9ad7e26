"""The ``hf`` teacher: a local causal LM through transformers (``teacher.model`` is a hub
name or a local directory) asked the task's prompt, sampled in batches on CPU or GPU.

Prompts: a tokenizer with a chat template renders the system and user messages with it
(plus the assistant turn's opening); a base model without one gets plain text.

Sampling is shaped by teacher.temperature and teacher.top_p only, as with the ``openai``
teacher: the checkpoint's own sampling defaults (top_k, repetition penalty…) are not
applied, so the cache key describes everything that decided a reply.  Temperature 0 is
greedy decoding: one sequence per question, stored under every sample index.

Reproducibility: each generate call seeds torch from the cache keys and job seeds of
its questions (:func:`batch_seed`), so a fresh run with the same parameters (batch
size included) draws the same samples; with teacher.batch_size=1 a question's samples
do not depend on the other questions either.  A resumed run batches only what is
missing, so its new samples are valid draws but not those an uninterrupted run would
have drawn.  Device and dtype are part of the cache key: both change the numbers.
"""

from __future__ import annotations

import gc
import hashlib
import json
from pathlib import Path
from typing import Any, Iterator

from qcrd_bench.errors import ConfigError
from qcrd_bench.hookspecs import hookimpl
from qcrd_bench.prompting import Job, PromptedTeacher, Sample, Store, TeacherError

DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("auto", "float32", "bfloat16", "float16")


class HFTeacher(PromptedTeacher):
    name = "hf"
    description = "a local causal LM through transformers (teacher.model: hub name or directory); cached and resumable"
    defaults = {**PromptedTeacher.defaults,
                "batch_size": 8,  # questions per generate call (each with all its missing samples)
                "device": "auto", "dtype": "auto",
                "threads": 2}  # torch CPU threads while sampling; the previous setting is restored after

    def check(self, params: dict[str, Any]) -> None:
        super().check(params)
        for key in ("batch_size", "threads"):
            if params[key] < 1:
                raise ConfigError(f"teacher.{key}: must be >= 1, got {params[key]}")
        for key, choices in (("device", DEVICES), ("dtype", DTYPES)):
            if params[key] not in choices:
                raise ConfigError(f"teacher.{key}: must be one of {', '.join(choices)}, got {params[key]!r}")
        model_source(params["model"])  # a missing directory fails when the config is resolved

    def sampling(self, params: dict[str, Any]) -> dict[str, Any]:
        device, dtype = resolve_device(params)
        return {**super().sampling(params), "model": model_key(params["model"]), "device": device, "dtype": dtype}

    def sample(self, jobs: list[Job], params: dict[str, Any], store: Store) -> None:
        import torch

        device, dtype = resolve_device(params)
        threads = torch.get_num_threads()
        torch.set_num_threads(params["threads"])
        try:
            model, tokenizer = load(params["model"], device, dtype)
            for batch in batches(jobs, params["batch_size"], params["temperature"] > 0):
                # Stored as each batch finishes: an interrupted run keeps what it got.
                for job, index, sample in generate(model, tokenizer, batch, params):
                    store(job, index, sample)
        finally:
            torch.set_num_threads(threads)
            # A `run` trains a student next in this process: give the memory back now.
            model = tokenizer = None
            gc.collect()
            if device == "cuda":
                torch.cuda.empty_cache()


# ---------------------------------------------------------------- model and device


def model_source(name: str) -> str:
    """What from_pretrained gets: a local directory (checked for weights) or a hub id."""
    from qcrd_bench.students import pretrained_source

    return pretrained_source(name, ConfigError, "teacher.model")


def model_key(name: str) -> str:
    """The model as the cache key names it: a directory by its absolute path (the same
    weights whatever the working directory), a hub id as given."""
    source = model_source(name)
    return str(Path(source).resolve()) if Path(source).is_dir() else name


def resolve_device(params: dict[str, Any]) -> tuple[str, str]:
    """(device, dtype) with "auto" made concrete: the GPU when there is one, float32 on
    CPU (half precision is slow there) and bfloat16 (float16 on older GPUs) on the GPU."""
    import torch

    device = params["device"]
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    elif device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("teacher.device: cuda asked for, but torch sees no GPU; use teacher.device=cpu or auto")
    dtype = params["dtype"]
    if dtype == "auto":
        dtype = "float32" if device == "cpu" else ("bfloat16" if torch.cuda.is_bf16_supported() else "float16")
    return device, dtype


def load(name: str, device: str, dtype: str):
    """(model, tokenizer) ready for batched sampling, failing fast and clearly offline."""
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig

    from qcrd_bench.students import load_pretrained

    model, tokenizer = load_pretrained(AutoModelForCausalLM, name, ConfigError, "teacher.model",
                                       offline_remedy="use a local directory", dtype=getattr(torch, dtype))
    # Decoder-only batches are padded on the left, so every prompt ends where generation starts.
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise TeacherError(f"teacher 'hf': the tokenizer of {name} has neither a pad nor an eos token")
        tokenizer.pad_token = tokenizer.eos_token
    # Keep only the checkpoint's special tokens (a chat model's eos may be a list that
    # includes its end-of-turn token); its sampling defaults are dropped (module docstring).
    own = model.generation_config
    eos = tokenizer.eos_token_id if own.eos_token_id is None else own.eos_token_id
    model.generation_config = GenerationConfig(bos_token_id=own.bos_token_id, eos_token_id=eos,
                                               pad_token_id=tokenizer.pad_token_id)
    return model.to(device).eval(), tokenizer


# ---------------------------------------------------------------- prompts and sampling


def render(tokenizer, messages: list[dict[str, str]]) -> str:
    """One job's prompt as text, ending where the reply starts."""
    if not tokenizer.chat_template:
        # A base model has no chat format: the system text, a blank line, the question,
        # and a newline for the reply to start on (the prompt names the reply's markers).
        return "\n\n".join(m["content"] for m in messages) + "\n"
    import jinja2

    try:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    except jinja2.TemplateError:
        # Some templates (Gemma's, older Mistral's) refuse a system role: fold it into the user turn.
        pass
    folded = [{"role": "user", "content": "\n\n".join(m["content"] for m in messages)}]
    try:
        return tokenizer.apply_chat_template(folded, tokenize=False, add_generation_prompt=True)
    except jinja2.TemplateError as exc:
        raise TeacherError(f"teacher 'hf': the model's chat template cannot render the prompt: {exc}") from None


def batches(jobs: list[Job], size: int, sampled: bool) -> Iterator[list[Job]]:
    """Jobs in order, ``size`` at a time; one generate call returns the same number of
    sequences per question, so jobs asking for different counts go to different batches
    (greedy decoding makes one sequence per question whatever the count)."""
    groups: dict[int, list[Job]] = {}
    for job in jobs:
        groups.setdefault(len(job.indices) if sampled else 1, []).append(job)
    for group in groups.values():
        for start in range(0, len(group), size):
            yield group[start:start + size]


def batch_seed(batch: list[Job]) -> int:
    """A seed that is a function of the batch's questions and job seeds: reproducible,
    and different questions (which share teacher.seed) do not share a random stream."""
    payload = json.dumps([[job.key, job.seed] for job in batch]).encode()
    return int.from_bytes(hashlib.sha256(payload).digest()[:8], "big") >> 1


def generate(model, tokenizer, batch: list[Job], params: dict[str, Any]) -> Iterator[tuple[Job, int, Sample]]:
    """Sample one batch; yields (job, sample index, sample) for every missing sample."""
    import torch
    from transformers import GenerationConfig

    sampled = params["temperature"] > 0
    n = len(batch[0].indices) if sampled else 1
    templated = bool(tokenizer.chat_template)
    # A chat template writes its own special tokens (BOS…); plain text gets the tokenizer's.
    encoded = tokenizer([render(tokenizer, job.messages) for job in batch], return_tensors="pt", padding=True,
                        add_special_tokens=not templated)
    _check_context(model, encoded["attention_mask"], batch, params["max_tokens"])
    config = GenerationConfig(max_new_tokens=params["max_tokens"], num_return_sequences=n, do_sample=sampled,
                              **({"temperature": params["temperature"], "top_p": params["top_p"], "top_k": 0}
                                 if sampled else {}))
    cuda = [model.device.index or 0] if model.device.type == "cuda" else []
    # fork_rng: the caller's random streams (a run's training seed) are left as they were.
    with torch.random.fork_rng(devices=cuda), torch.inference_mode():
        torch.manual_seed(batch_seed(batch))
        out = model.generate(input_ids=encoded["input_ids"].to(model.device),
                             attention_mask=encoded["attention_mask"].to(model.device), generation_config=config)
    new = out[:, encoded["input_ids"].shape[1]:].tolist()
    eos = model.generation_config.eos_token_id
    stops = set(eos if isinstance(eos, list) else [eos])
    for row, job in enumerate(batch):
        for k, index in enumerate(job.indices):
            yield job, index, _decode(tokenizer, new[row * n + (k if sampled else 0)], stops)


def _decode(tokenizer, ids: list[int], stops: set) -> Sample:
    """The reply up to its first stop token; padding after it is not part of the reply."""
    end = next((i + 1 for i, t in enumerate(ids) if t in stops), len(ids))
    return Sample(tokenizer.decode(ids[:end], skip_special_tokens=True), end)


def _check_context(model, attention_mask, batch: list[Job], max_tokens: int) -> None:
    # Past its context a model fails deep inside torch, or silently degrades: say so here.
    limit = getattr(model.config, "max_position_embeddings", None)
    lengths = attention_mask.sum(dim=1).tolist()
    longest = max(range(len(batch)), key=lengths.__getitem__)
    if isinstance(limit, int) and lengths[longest] + max_tokens > limit:
        raise TeacherError(f"teacher 'hf': question {batch[longest].example_id}: a prompt of {lengths[longest]} "
                           f"tokens plus teacher.max_tokens={max_tokens} exceeds the model's context of {limit}")


@hookimpl
def register_teachers(register):
    register(HFTeacher())
