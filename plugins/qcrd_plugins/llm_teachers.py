"""Teachers of generated rationales: ``openai`` (any OpenAI-compatible
chat-completions endpoint: OpenAI, vLLM, llama.cpp server, Ollama …) and ``file`` (a set
written by ``qcrd-bench teach``).  The local-model teacher ``hf`` is in ``hf_teacher``.

The API key is read from the environment variable named by ``teacher.api_key_env``
and never stored in the config, so it cannot reach MLflow params, tags or artifacts.
"""

from __future__ import annotations

import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from qcrd_bench.components import Rationale, Task, TaskData, Teacher, TeacherOutput
from qcrd_bench.data import sha256_file
from qcrd_bench.errors import ConfigError, InputFileError
from qcrd_bench.hookspecs import hookimpl
from qcrd_bench.prompting import Job, PromptedTeacher, Sample, Store, TeacherError
from qcrd_bench.rationales import read_set
from qcrd_bench.tracking import redact_url

from .tasks import question_key

OPENAI_URL = "https://api.openai.com/v1"


class _Retry(Exception):
    """A failure worth retrying; ``wait`` is the server's Retry-After, if it gave one."""

    def __init__(self, reason: str, wait: float | None = None):
        super().__init__(reason)
        self.wait = wait


class OpenAITeacher(PromptedTeacher):
    name = "openai"
    description = ("any OpenAI-compatible chat-completions endpoint (OpenAI, vLLM, llama.cpp, Ollama); "
                   "key from $OPENAI_API_KEY (teacher.api_key_env); cached and resumable")
    defaults = {**PromptedTeacher.defaults, "base_url": OPENAI_URL, "api_key_env": "OPENAI_API_KEY",
                "samples_per_request": 0,  # n per request; 0: all missing samples at once, 1: servers without n
                "concurrency": 4, "timeout": 60.0, "max_retries": 6, "retry_budget_s": 600.0}

    def check(self, params: dict[str, Any]) -> None:
        super().check(params)
        for key in ("concurrency", "timeout"):
            if params[key] <= 0:
                raise ConfigError(f"teacher.{key}: must be > 0, got {params[key]}")
        for key in ("samples_per_request", "max_retries", "retry_budget_s"):
            if params[key] < 0:
                raise ConfigError(f"teacher.{key}: must be >= 0, got {params[key]}")
        if urlsplit(params["base_url"]).scheme not in ("http", "https"):
            raise ConfigError(f"teacher.base_url: expected an http(s) URL, got {redact_url(params['base_url'])!r}")

    def sample(self, jobs: list[Job], params: dict[str, Any], store: Store) -> None:
        import openai

        key = os.environ.get(params["api_key_env"], "")
        if not key and params["base_url"].rstrip("/") == OPENAI_URL:
            raise ConfigError(f"teacher 'openai': set the API key in ${params['api_key_env']} "
                              "(teacher.api_key_env names the variable)")
        # Retries are ours (budget, Retry-After, malformed replies), so the client's are off.
        client = openai.OpenAI(api_key=key or "no-key", base_url=params["base_url"], max_retries=0,
                               timeout=params["timeout"])
        caller = _Caller(client, params, store, secret=key)
        with ThreadPoolExecutor(max_workers=params["concurrency"]) as pool:
            try:
                list(pool.map(caller.run, jobs))
            except BaseException:  # Ctrl-C: no job starts or keeps retrying; what arrived is cached
                caller.stop.set()
                raise
        if caller.failure is not None:
            raise caller.failure
        return {"teacher_requests": float(caller.requests), "teacher_retries": float(caller.retries),
                "teacher_concurrency": float(params["concurrency"])}


class _Caller:
    """Runs jobs against one client; the first hard failure stops the jobs not yet started."""

    def __init__(self, client, params: dict[str, Any], store: Store, secret: str):
        self.client, self.params, self.store, self.secret = client, params, store, secret
        self.deadline = time.monotonic() + params["retry_budget_s"]
        self.failure: TeacherError | None = None
        self.stop = threading.Event()  # set on the first hard failure: waiting jobs give up too
        self.requests = self.retries = 0
        self._lock = threading.Lock()

    def run(self, job: Job) -> None:
        if self.stop.is_set():
            return
        try:
            self._run(job)
        except TeacherError as exc:
            with self._lock:
                self.failure = self.failure or exc
            self.stop.set()

    def _run(self, job: Job) -> None:
        missing, attempt = list(job.indices), 0
        per_request = self.params["samples_per_request"] or len(missing)
        while missing and not self.stop.is_set():
            n = min(per_request, len(missing))
            try:
                texts = self._request(job, n, seed=job.seed + (missing[0] - job.indices[0]))
            except _Retry as exc:
                attempt += 1
                with self._lock:
                    self.retries += 1
                self._wait(job, attempt, exc)
                continue
            attempt = 0
            # A reply with fewer choices than asked: keep what came, ask again for the rest.
            for index, (text, tokens) in zip(missing, texts):
                self.store(job, index, Sample(text, tokens))
            missing = missing[len(texts):]

    def _request(self, job: Job, n: int, seed: int) -> list[tuple[str, int]]:
        import openai

        p = self.params
        with self._lock:
            self.requests += 1
        try:
            reply = self.client.chat.completions.create(
                model=p["model"], messages=job.messages, n=n, temperature=p["temperature"], top_p=p["top_p"],
                max_tokens=p["max_tokens"], seed=seed)
        except openai.RateLimitError as exc:
            raise _Retry("429 rate limited", _retry_after(exc.response)) from None
        except openai.InternalServerError as exc:
            raise _Retry(f"server error {exc.status_code}", _retry_after(exc.response)) from None
        except openai.APITimeoutError:
            raise _Retry(f"no reply within teacher.timeout={p['timeout']} s") from None
        except openai.APIConnectionError as exc:
            raise _Retry(f"connection failed: {exc}") from None
        except openai.APIStatusError as exc:  # 4xx other than 429: asking again will not help
            raise TeacherError(self._clean(f"teacher 'openai': {redact_url(p['base_url'])} answered "
                                           f"{exc.status_code}: {exc.message}")) from None
        except (openai.APIResponseValidationError, ValueError) as exc:
            raise _Retry(f"malformed reply: {exc}") from None
        return self._choices(reply)

    def _choices(self, reply) -> list[tuple[str, int]]:
        try:
            choices = sorted(reply.choices, key=lambda c: c.index)
            texts = [c.message.content for c in choices]
            usage = reply.usage.completion_tokens if reply.usage is not None else 0
        except (AttributeError, TypeError) as exc:
            raise _Retry(f"malformed reply: {exc}") from None
        texts = [t for t in texts if isinstance(t, str)]
        if not texts:
            raise _Retry("malformed reply: no choice with text content")
        share = int(usage or 0) // len(texts)
        return [(t, share) for t in texts]

    def _wait(self, job: Job, attempt: int, exc: _Retry) -> None:
        backoff = min(2.0 ** (attempt - 1), 30.0) * (0.5 + random.random() / 2)
        wait = exc.wait if exc.wait is not None else backoff
        if attempt > self.params["max_retries"] or time.monotonic() + wait > self.deadline:
            raise TeacherError(self._clean(
                f"teacher 'openai': question {job.example_id}: gave up after {attempt} attempt(s) "
                f"(teacher.max_retries={self.params['max_retries']}, teacher.retry_budget_s="
                f"{self.params['retry_budget_s']}); last: {exc}; samples already received are cached, "
                "re-run to resume"))
        self.stop.wait(wait)  # returns early when another question has failed

    def _clean(self, message: str) -> str:
        return message.replace(self.secret, "***") if self.secret else message


def _retry_after(response) -> float | None:
    """Seconds from a Retry-After header (delta-seconds form), if there is one."""
    try:
        value = float(response.headers.get("retry-after", ""))
    except (AttributeError, TypeError, ValueError):
        return None
    return max(0.0, min(value, 300.0))


class FileTeacher(Teacher):
    name = "file"
    description = "a rationale set written by `qcrd-bench teach` (--teacher file:PATH)"
    defaults = {"path": ""}

    def check(self, params: dict[str, Any]) -> None:
        if not params["path"]:
            raise ConfigError("teacher.path: teacher 'file' needs a rationale set, e.g. --teacher file:PATH")

    def rationales(self, task: Task, data: TaskData, params: dict[str, Any]) -> TeacherOutput:
        path = Path(params["path"]).expanduser()
        header, rows = read_set(path)
        if header.get("task") != task.name:
            raise ConfigError(f"{path}: a rationale set for task {header.get('task')!r}, not {task.name!r}")
        train = {question_key(e.input): e for e in data.train}
        rationales: dict[str, list[Rationale]] = {}
        for row in rows:
            example = train.get(question_key(row["input"]))
            if example is None:  # not in this run's training split: never trained on
                continue
            rationales[example.id] = [
                Rationale(text=s["text"], origin=f"file:{header.get('teacher')}",
                          answer=None if s["answer"] is None else task.extract_answer(s["answer"], example, True))
                for s in row["samples"]]
        if data.train and not rationales:
            # Questions outside the training split are dropped (a logged count), but a set
            # sharing none with it would silently turn the run into a label-only one.
            raise InputFileError(f"{path}: none of its {len(rows)} questions is among the {len(data.train)} "
                                 f"training questions of task {task.name!r} in this run; was it written for "
                                 "another split, task parameters or --limit?")
        stats = {"teacher_questions": float(len(rationales)), "teacher_dropped": float(len(rows) - len(rationales))}
        return TeacherOutput(rationales=rationales, stats=stats, files={str(path): sha256_file(path)})


@hookimpl
def register_teachers(register):
    register(OpenAITeacher())
    register(FileTeacher())
