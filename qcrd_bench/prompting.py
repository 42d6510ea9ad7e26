"""Prompted teachers (an LLM behind an API, a local model): each training question is
rendered with the task's prompt template, samples are drawn in jobs, and every sample
is stored in a durable cache the moment it arrives.  The rationales of a run are then
read from the cache, so an interrupted teacher resumes where it stopped and a second
run with the same prompt, model and sampling asks for nothing.

Cache key of a question: sha256 of (prompt-template sha256, question text, model,
sampling parameters); a sample is (key, sample index).  An endpoint's URL is not part
of it, so a local server restarted on another port keeps its cache: give different
weights different model names, or separate caches (``teacher.cache``).  The cache is one SQLite file
in WAL mode: each sample is its own committed transaction (a killed process never
leaves a truncated record) and concurrent runs share it safely.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .components import Example, PromptTemplate, Rationale, Task, TaskData, Teacher, TeacherOutput
from .errors import ConfigError, QcrdError
from .files import file_lock

ENV_CACHE = "QCRD_BENCH_GENERATION_CACHE"
DEFAULT_CACHE = Path("~/.cache/qcrd-bench/generations.sqlite")


class TeacherError(QcrdError):
    """A teacher could not deliver (endpoint down past the retry budget, bad credentials…);
    everything already received stays in the cache."""


@dataclass(frozen=True)
class Sample:
    text: str
    tokens: int  # completion tokens (0 when the backend does not say)


@dataclass(frozen=True)
class Job:
    """Samples still missing for one question: ``indices`` is a run of consecutive
    sample indices; a backend that takes a seed uses ``seed`` for the first of them."""

    key: str
    example_id: str
    messages: list[dict[str, str]]
    indices: tuple[int, ...]
    seed: int


Store = Callable[[Job, int, Sample], None]


def cache_path(param: str) -> Path:
    return Path(param or os.environ.get(ENV_CACHE) or DEFAULT_CACHE).expanduser()


class GenerationCache:
    """Samples by (question key, sample index), safe across threads and processes."""

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            # SQLite answers "database is locked" at once, without waiting, to a second
            # process switching a new file to WAL: setting up is serialised by a lock file.
            with file_lock(self.path.with_name(self.path.name + ".lock")):
                self._db = sqlite3.connect(self.path, timeout=60, check_same_thread=False, isolation_level=None)
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("CREATE TABLE IF NOT EXISTS samples (key TEXT NOT NULL, idx INTEGER NOT NULL, "
                                 "text TEXT NOT NULL, tokens INTEGER NOT NULL, created REAL NOT NULL, "
                                 "PRIMARY KEY (key, idx))")
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"teacher.cache {self.path}: cannot open the generation cache: {exc}") from None
        self._lock = threading.Lock()

    def get(self, key: str) -> dict[int, Sample]:
        with self._lock:
            rows = self._db.execute("SELECT idx, text, tokens FROM samples WHERE key = ?", (key,)).fetchall()
        return {idx: Sample(text, tokens) for idx, text, tokens in rows}

    def put(self, key: str, index: int, sample: Sample) -> None:
        # A sample already there (a concurrent run got it first) is kept: the first answer wins.
        with self._lock:
            self._db.execute("INSERT OR IGNORE INTO samples VALUES (?, ?, ?, ?, ?)",
                             (key, index, sample.text, sample.tokens, time.time()))

    def close(self) -> None:
        self._db.close()


def question_key(prompt: PromptTemplate, text: str, sampling: dict[str, Any]) -> str:
    payload = json.dumps([prompt.sha256(), text, sampling], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


class PromptedTeacher(Teacher):
    """Base of teachers that ask a model.  A subclass implements :meth:`sample` and may
    extend :meth:`sampling` with parameters that change what the model returns."""

    defaults = {"model": "", "samples": 5, "temperature": 0.7, "top_p": 1.0, "max_tokens": 256, "seed": 0,
                "cache": ""}

    def check(self, params: dict[str, Any]) -> None:
        if not params["model"]:
            raise ConfigError(f"teacher.model: teacher {self.name!r} needs a model, e.g. --set teacher.model=NAME")
        if params["samples"] < 1:
            raise ConfigError(f"teacher.samples: must be >= 1, got {params['samples']}")
        if params["temperature"] < 0:
            raise ConfigError(f"teacher.temperature: must be >= 0, got {params['temperature']}")
        if not 0 < params["top_p"] <= 1:
            raise ConfigError(f"teacher.top_p: must be in (0, 1], got {params['top_p']}")
        if params["max_tokens"] < 1:
            raise ConfigError(f"teacher.max_tokens: must be >= 1, got {params['max_tokens']}")

    def sampling(self, params: dict[str, Any]) -> dict[str, Any]:
        """What decides a reply besides the prompt: part of every cache key."""
        return {"teacher": self.name, **{k: params[k] for k in ("model", "temperature", "top_p", "max_tokens", "seed")}}

    def sample(self, jobs: list[Job], params: dict[str, Any], store: Store) -> dict[str, float] | None:
        """Draw every job's missing samples, calling ``store`` as each one arrives; may
        return statistics of its own (``teacher_*``, e.g. requests and retries)."""
        raise NotImplementedError

    def rationales(self, task: Task, data: TaskData, params: dict[str, Any]) -> TeacherOutput:
        if task.prompt is None:
            raise ConfigError(f"teacher {self.name!r}: task {task.name!r} has no teacher prompt")
        cache = GenerationCache(cache_path(params["cache"]))
        started = time.perf_counter()
        own: dict[str, float] = {}
        try:
            jobs = self._jobs(task, data, params, cache)
            requested = sum(len(j.indices) for j in jobs)
            if jobs:
                sampling_started = time.perf_counter()
                own = self.sample(jobs, params, lambda job, index, sample: cache.put(job.key, index, sample)) or {}
                own["teacher_samples_per_s"] = requested / max(time.perf_counter() - sampling_started, 1e-9)
            rationales, replies, tokens = self._collect(task, data, params, cache)
        finally:
            cache.close()
        stats = {"teacher_samples_requested": float(requested), "teacher_completion_tokens": float(tokens),
                 "teacher_seconds": time.perf_counter() - started, **own}
        return TeacherOutput(rationales=rationales, stats=stats, replies=replies, prompt=task.prompt)

    def _keyed(self, task: Task, data: TaskData, params: dict[str, Any]):
        sampling = self.sampling(params)
        for example in data.train:
            text = task.prompt_input(example, data.params)
            yield example, text, question_key(task.prompt, text, sampling)

    def _jobs(self, task: Task, data: TaskData, params: dict[str, Any], cache: GenerationCache) -> list[Job]:
        jobs = []
        for example, text, key in self._keyed(task, data, params):
            have = cache.get(key)
            missing = [i for i in range(params["samples"]) if i not in have]
            for run in _consecutive(missing):
                jobs.append(Job(key, example.id, task.prompt.messages(text), tuple(run), params["seed"] + run[0]))
        return jobs

    def _collect(self, task: Task, data: TaskData, params: dict[str, Any], cache: GenerationCache):
        rationales, replies, tokens = {}, {}, 0
        for example, _, key in self._keyed(task, data, params):
            have = cache.get(key)
            missing = [i for i in range(params["samples"]) if i not in have]
            if missing:
                raise TeacherError(f"teacher {self.name!r}: question {example.id} still lacks samples {missing}; "
                                   "re-run to fetch them (what arrived is cached)")
            own = [have[i] for i in range(params["samples"])]
            rationales[example.id] = [self._parse(task, example, s.text) for s in own]
            replies[example.id] = [s.text for s in own]
            tokens += sum(s.tokens for s in own)
        return rationales, replies, tokens

    def _parse(self, task: Task, example: Example, reply: str) -> Rationale:
        explanation, answer_text = task.prompt.split(reply)
        # The answer section is short and free-form ("42 apples", "(b) bank"): read it leniently.
        answer = task.extract_answer(answer_text, example, flexible=True) if answer_text else None
        return Rationale(text=explanation, answer=answer, origin=self.name)


def _consecutive(indices: list[int]) -> list[list[int]]:
    runs: list[list[int]] = []
    for index in indices:
        if runs and runs[-1][-1] == index - 1:
            runs[-1].append(index)
        else:
            runs.append([index])
    return runs
