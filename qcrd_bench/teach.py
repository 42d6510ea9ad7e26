"""``qcrd-bench teach``: run one teacher over a task's training questions, write the
rationale set (see :mod:`qcrd_bench.rationales` for the format), measure the teacher
(the paper's Table 3 teacher rows) and log it all as one MLflow run."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from . import truth
from .components import TaskData
from .config import flatten
from .plugins import Catalog
from .rationales import checksum, teacher_quality, write_set
from .tracking import scrub

SAMPLE_ROWS = 50  # questions shown in the run's sample table


def default_output(config: dict) -> Path:
    teacher = config["teacher"]
    model = str(teacher.get("model") or "").replace("/", "_")
    name = "-".join(part for part in (config["task"]["name"], teacher["name"], model) if part)
    return Path("rationales") / f"{name}.jsonl"


def teach(catalog: Catalog, config: dict, uri: str, output: Path | None = None,
          experiment: str | None = None) -> dict[str, Any]:
    """Generate (or read) the rationales, write the set, log the run; returns the summary."""
    from . import tracking

    task = catalog.tasks.get(config["task"]["name"])
    teacher = catalog.teachers.get(config["teacher"]["name"])
    data = task.load(config["task"])
    train = data.train[: config["limit"]] if config["limit"] else data.train
    data = TaskData(train=train, val=[], test=[], files=data.files, notes=data.notes, params=data.params)

    started = time.perf_counter()
    out = teacher.rationales(task, data, config["teacher"])
    seconds = time.perf_counter() - started
    quality = teacher_quality(task, train, out.rationales)
    summary = {f"teacher/{k}": v for k, v in quality.items()}
    check = truth.checker(task, data.params)
    if check is not None:  # a generated task: every sample's correctness is known
        summary.update(truth.teacher_truth(check, train, out.rationales))
    summary["teacher/seconds"] = seconds
    for key in ("completion_tokens", "samples_requested", "samples_per_s", "requests", "retries", "concurrency"):
        if f"teacher_{key}" in out.stats:  # a prompted teacher's own figures
            summary[f"teacher/{key}"] = out.stats[f"teacher_{key}"]

    prompt = out.prompt
    header = {"task": task.name, "teacher": teacher.name, "params": scrub(config["teacher"]),
              "task_params": config["task"],
              "prompt": None if prompt is None else {"system": prompt.system, "user": prompt.user},
              "prompt_sha256": None if prompt is None else prompt.sha256(),
              "questions": int(quality["questions"]),
              "samples": int(max((len(v) for v in out.rationales.values()), default=0)),
              "files": out.files}
    path = write_set(output or default_output(config), header, train, out.rationales, out.replies)
    set_checksum = checksum(out.rationales)

    tags = {"qcrd.kind": "teach", "qcrd.task": task.name, "qcrd.teacher": teacher.name,
            "qcrd.rationales_sha256": set_checksum}
    params = {k: v for k, v in flatten(config).items()}
    name = f"teach-{task.name}-{teacher.name}"
    with tracking.open_run(uri, experiment or f"qcrd-bench/{task.name}/teach", name, tags, params) as run:
        run.log_metrics(summary | {f"data/{k}": v for k, v in out.stats.items()}, 0)
        run.log_artifact(path, "rationale_set")
        if header["prompt"]:
            run.log_dict({**header["prompt"], "sha256": header["prompt_sha256"]}, "teacher_prompt.json")
        run.log_table(_sample_rows(train, out), "teacher_samples.json")
    return {"run_id": run.run_id, "path": str(path), "checksum": set_checksum, **summary}


def _sample_rows(train, out) -> list[dict[str, Any]]:
    rows = []
    for example in train[:SAMPLE_ROWS]:
        for index, r in enumerate(out.rationales.get(example.id, [])):
            rows.append({"id": example.id, "sample": index, "input": example.input, "gold": example.label,
                         "rationale": r.text, "answer": None if r.answer is None else str(r.answer)})
    return rows
