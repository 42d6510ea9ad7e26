"""One run, end to end: resolve components, load data and rationales, build the
student, train, evaluate, and track everything in MLflow.

Everything that can fail on bad input (components, data files, rationales, the
student) happens before the MLflow run opens, so bad input leaves no run behind;
a failure after that ends the run FAILED.
"""

from __future__ import annotations

import contextlib
import json
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

from . import __version__, truth
from .components import PREDICT, Example, Loss, Method, Rationale, Task, TaskData
from .config import SLOTS, config_hash, flatten, is_smoke
from .console import bar, phase, progress
from .describe import run_description, running_description
from .errors import DataError
from .plugins import Catalog
from .rationales import checksum

PARAM_KEYS = ("train.steps", "train.batch_size", "train.grad_accum", "train.lr", "train.warmup_steps",
              "train.lr_schedule", "train.lr_decay_fraction",
              "train.max_input_length", "train.max_target_length", "train.mixed_precision", "eval.max_new_tokens")


@dataclass
class Prepared:
    """What a run needs before training starts."""

    config: dict
    method: Method
    task: Task
    data: TaskData
    positives: dict[str, list[Rationale]]
    teacher_negatives: dict[str, list[Rationale]]
    teacher_stats: dict[str, float]
    data_files: dict[str, str]
    components: dict[str, Any]
    rationale_checksum: str  # names the rationale set (empty without rationales)
    teacher_prompt: dict[str, str] | None = None
    targets: dict[str, str] | None = None  # label-side target per training id (Loss.label_target); None: gold
    truth_stats: dict[str, float] | None = None  # the teacher and filter against a checker (truth.py)
    # The task's checker (None without one), shared by every diagnostic of the run so that
    # each rationale is checked once.
    check: Callable[[Example, str], str] | None = None
    teacher_rationales: dict[str, list[Rationale]] = field(default_factory=dict)  # every sample, before the filter


def component(catalog: Catalog, config: dict, slot: str):
    return getattr(catalog, SLOTS[slot]).get(config[slot]["name"])


def prepare(catalog: Catalog, config: dict) -> Prepared:
    """Load data and rationales and select positives (no tracking yet)."""
    components = {slot: component(catalog, config, slot) for slot in SLOTS if slot != "student"}
    task: Task = components["task"]
    data = task.load(config["task"])
    if config["limit"]:
        data = TaskData(*(split[: config["limit"]] for split in (data.train, data.val, data.test)),
                        files=data.files, notes=data.notes, params=data.params)
    teacher_out = components["teacher"].rationales(task, data, teacher_params(config))
    positives, negatives = {}, {}
    flt = components["positive_filter"]
    for example in data.train:
        positives[example.id], negatives[example.id] = flt.split(
            example, teacher_out.rationales.get(example.id, []), task, config["positive_filter"])
    stats = dict(teacher_out.stats)
    if teacher_out.rationales:
        n = max(len(data.train), 1)
        stats["rationale_coverage"] = sum(bool(p) for p in positives.values()) / n
        stats["n_pos"] = sum(map(len, positives.values())) / n
        stats["n_neg"] = sum(map(len, negatives.values())) / n
    targets = label_targets(components["loss"], task, data.train, positives)
    stats["dropped_no_teacher_label"] = len(data.train) - len(targets)
    if data.train and not targets:
        raise DataError(f"loss {components['loss'].name!r} keeps none of the {len(data.train)} training questions: "
                        f"teacher {config['teacher']['name']!r} gave none of them a parseable answer")
    prompt = teacher_out.prompt
    check = truth.checker(task, data.params)
    return Prepared(config, catalog.methods.get(config["method"]), task, data, positives, negatives, stats,
                    {**data.files, **teacher_out.files}, components,
                    rationale_checksum=checksum(teacher_out.rationales) if teacher_out.rationales else "",
                    teacher_prompt=None if prompt is None else {"system": prompt.system, "user": prompt.user,
                                                                "sha256": prompt.sha256()},
                    targets=targets,
                    truth_stats=truth.teacher_truth(check, data.train, teacher_out.rationales, positives, negatives)
                    if check and teacher_out.rationales else None, check=check,
                    teacher_rationales=teacher_out.rationales)


def teacher_params(config: dict) -> dict[str, Any]:
    """The teacher's parameters, with a ``seed`` of -1 replaced by the run's seed (so the
    seeds of a sweep draw different samples while sharing one config hash)."""
    params = config["teacher"]
    return {**params, "seed": config["seed"]} if params.get("seed") == -1 else params


def label_targets(loss: Loss, task: Task, train: list[Example],
                  positives: dict[str, list[Rationale]]) -> dict[str, str]:
    """The label-side target of each training question the loss keeps (None drops one)."""
    targets = {}
    for example in train:
        target = loss.label_target(example, positives.get(example.id, []), task)
        if target is not None:
            targets[example.id] = target
    return targets


def build_student(catalog: Catalog, config: dict, data: TaskData, teacher_rationales: dict[str, list[Rationale]],
                  targets: dict[str, str] | None = None, prefix: str = PREDICT):
    from .evaluation import EXPLAIN
    from .students import from_pretrained

    params = config["student"]
    if params["name"] not in catalog.students:
        return from_pretrained(params["name"])
    # A config-built student's tokenizer learns the text it will see in training.
    texts = [prefix + e.input for e in data.train] + [EXPLAIN + e.input for e in data.train[:1]]
    kept = data.train if targets is None else [e for e in data.train if e.id in targets]
    texts += [e.label if targets is None else targets[e.id] for e in kept]
    # Every teacher sample, whatever the filter kept: methods that share a teacher then share the
    # tokenizer, whose ids (ordered by frequency) decide which initial embedding row each word gets,
    # so one seed gives dss and the qcrd variants the same initial student.
    texts += [r.text for e in data.train for r in teacher_rationales.get(e.id, [])]
    return catalog.students.get(params["name"]).build(params, texts, config["seed"])


def tags_for(config: dict) -> dict[str, Any]:
    return {"qcrd.method": config["method"], "qcrd.task": config["task"]["name"], "qcrd.seed": config["seed"],
            "qcrd.teacher": config["teacher"]["name"],
            "qcrd.variant": config["method"], "qcrd.preset": config["preset"],
            "qcrd.config_hash": config_hash(config), "qcrd.smoke": str(is_smoke(config)).lower()}


def params_for(config: dict) -> dict[str, Any]:
    """A curated set: the components and their parameters, and the training knobs."""
    flat = flatten(config)
    params = {k: v for k, v in flat.items() if k.split(".")[0] in SLOTS}
    params.update({k: flat[k] for k in PARAM_KEYS})
    params.update(method=config["method"], seed=config["seed"], preset=config["preset"], limit=config["limit"])
    return params


def versions(catalog: Catalog) -> dict[str, Any]:
    packages = {}
    for name in ("torch", "transformers", "accelerate", "tokenizers", "mlflow", "pluggy", "numpy"):
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            packages[name] = None
    return {"qcrd_bench": __version__, "python": platform.python_version(), "packages": packages,
            "plugins": catalog.plugin_info()}


def execute(catalog: Catalog, config: dict, uri: str, experiment: str | None = None,
            extra_tags: dict[str, str] | None = None, resume: str | None = None) -> dict[str, Any] | None:
    """Run one config and return its summary metrics (also logged to MLflow).  ``extra_tags``
    places it in a sweep (``mlflow.parentRunId``, ``qcrd.variant``, ``qcrd.child_key``).
    ``resume`` continues that stored run of this config from its last checkpoint.

    Started as one of several processes (``accelerate launch``, ``torchrun``), every process
    calls this and trains its share of each batch; the main process alone opens and ends
    the MLflow run, logs, validates, checkpoints and scores the test set, and returns the
    summary; the others return None once training is over."""
    from .distributed import Ranks

    started = time.perf_counter()
    ranks = Ranks()  # before the threads: accelerate may set them when it starts the process group
    try:
        return _execute(catalog, config, uri, experiment, extra_tags, resume, ranks, started)
    finally:
        ranks.close()


def _execute(catalog: Catalog, config: dict, uri: str, experiment: str | None, extra_tags: dict[str, str] | None,
             resume: str | None, ranks, started: float) -> dict[str, Any] | None:
    import torch

    from . import tracking
    from .checkpoint import ensure_writable

    torch.set_num_threads(config["train"]["threads"])
    _warn_on_emulated_bf16(config, ranks.device)
    if config["train"]["deterministic"]:
        _deterministic()
    _seed_everything(config["seed"])
    show = ranks.is_main  # one process speaks for a multi-process run
    # The main process first: a teacher that generates (and caches) rationales runs once.
    with phase(f"loading data: {config['task']['name']}, teacher {config['teacher']['name']}", show):
        prep = ranks.lead(lambda: prepare(catalog, config))
    if not ranks.is_main:
        prep = prepare(catalog, config)
    loss = prep.components["loss"]
    with phase(f"building the student: {config['student']['name']}", show):
        student = build_student(catalog, config, prep.data, prep.teacher_rationales, prep.targets,
                                loss.predict_prefix)
    tags = {**tags_for(config), "qcrd.loss": loss.describe(config["loss"]),
            "qcrd.rationales_sha256": prep.rationale_checksum or "none", **(extra_tags or {})}
    name = f"{tags['qcrd.variant']}-{config['task']['name']}-s{config['seed']}"
    experiment = experiment or f"qcrd-bench/{config['task']['name']}"
    processes = {"qcrd.processes": str(ranks.world)}  # a tag, not in the config: it may change on --resume

    if not ranks.is_main:
        return _follow(catalog, config, prep, student, loss, ranks, tags, resume)
    with contextlib.ExitStack() as stack:
        def open_run():
            held = None
            if resume:  # the lock first: a run still training in another process is left untouched
                held = _resumed_checkpoints(config, uri, resume, tags)
                stack.callback(held.close)
            elif config["train"]["checkpoint_every"]:
                # Before the run opens: a bad folder leaves no run behind.
                ensure_writable(_checkpoint_root(config, uri), "output.checkpoint_dir")
            with phase(f"opening the MLflow run in {experiment}"):
                run = stack.enter_context(tracking.open_run(
                    uri, experiment, name, {**tags, **processes}, {**params_for(config), **_student_params(student)},
                    resume=resume, start_time=time.time() - (time.perf_counter() - started)))
            if resume:
                run.set_tags(processes)
            run.describe(running_description(config, {**tags, **run.tags}, run.run_id, uri))
            return run, held or _checkpoints(config, uri, run, tags)

        # The other processes wait for the run id and the checkpoint folder (or the error).
        run, checkpoints = ranks.lead(open_run, share=lambda opened: {"run_id": opened[0].run_id,
                                                                      "folder": str(opened[1].directory)})
        status = "FAILED"
        try:
            state = _load_checkpoint(ranks, checkpoints, resume)
            metrics = _train_and_evaluate(catalog, config, prep, student, loss, run, started, checkpoints, state,
                                          ranks)
            summary = {"run_id": run.run_id, "experiment": experiment, "experiment_id": run.experiment_id,
                       "config_hash": tags["qcrd.config_hash"], "smoke": is_smoke(config), **metrics}
            run.describe(run_description(config, {**tags, **run.tags}, summary, uri))
            status = "FINISHED"
        finally:
            catalog.pm.hook.qcrd_run_end(config=config, status=status, summary=metrics if status == "FINISHED" else {})
            checkpoints.close(remove=status == "FINISHED" and not config["output"]["keep_checkpoint"])
    return summary


def _follow(catalog: Catalog, config: dict, prep: Prepared, student, loss, ranks, tags: dict[str, Any],
            resume: str | None) -> None:
    """A process other than the main one: wait for the main process to open the run (and
    its checkpoint folder), then train in step with it.  It tracks nothing."""
    from .checkpoint import Checkpoints

    shared = ranks.lead(lambda: None)  # the run id and checkpoint folder (the main process holds its lock)
    checkpoints = Checkpoints(Path(shared["folder"]), config["train"]["checkpoint_every"], shared["run_id"],
                              tags["qcrd.config_hash"])
    state = _load_checkpoint(ranks, checkpoints, resume)
    _train_and_evaluate(catalog, config, prep, student, loss, None, 0.0, checkpoints, state, ranks)
    return None


def _load_checkpoint(ranks, checkpoints, resume: str | None) -> dict | None:
    """The checkpoint a resumed run continues from: every process reads the same file (one
    machine), and they must agree on its step before training goes on."""
    from .errors import QcrdError

    state, error = None, None
    if resume:
        try:
            state = checkpoints.load()
        except QcrdError as exc:
            error = str(exc)
    found = ranks.gather((error, None if state is None else state["step"]))
    errors = [e for e, _ in found if e is not None]
    if errors:
        raise QcrdError(error or f"another process could not read the checkpoint: {errors[0]}")
    steps = [step for _, step in found]
    if any(step != steps[0] for step in steps):
        raise QcrdError(f"the processes found different checkpoints in {checkpoints.directory} (steps {steps}); "
                        f"several processes must share the checkpoint folder")
    return state


def _checkpoints(config: dict, uri: str, run, tags: dict[str, Any]):
    """A new run's checkpoint folder, opened (writable, locked) before training starts."""
    from .checkpoint import Checkpoints

    folder = _checkpoint_root(config, uri) / run.run_id
    checkpoints = Checkpoints(folder, config["train"]["checkpoint_every"], run.run_id, tags["qcrd.config_hash"])
    checkpoints.open()
    if config["train"]["checkpoint_every"]:  # after the lock: a sweep reads a free lock as a dead run
        run.set_tags({"qcrd.checkpoint_dir": str(folder)})
    return checkpoints


def _resumed_checkpoints(config: dict, uri: str, run_id: str, tags: dict[str, Any]):
    """A stopped run's checkpoint folder, locked before the run is reopened: a second
    ``--resume`` of a run still training must not touch its MLflow status."""
    from .checkpoint import Checkpoints
    from .errors import ConfigError
    from .tracking import find_run

    stored = find_run(uri, run_id).data.tags
    if stored.get("qcrd.rationales_sha256", tags["qcrd.rationales_sha256"]) != tags["qcrd.rationales_sha256"]:
        raise ConfigError(f"run {run_id}: its rationales changed since it started "
                          f"({stored['qcrd.rationales_sha256']} -> {tags['qcrd.rationales_sha256']}); cannot resume")
    folder = Path(stored["qcrd.checkpoint_dir"]) if "qcrd.checkpoint_dir" in stored else \
        _checkpoint_root(config, uri) / run_id
    checkpoints = Checkpoints(folder, config["train"]["checkpoint_every"], run_id, tags["qcrd.config_hash"])
    checkpoints.open()
    return checkpoints


def _checkpoint_root(config: dict, uri: str) -> Path:
    """Where runs keep their checkpoint folders: ``output.checkpoint_dir``, else
    ``checkpoints/`` beside a SQLite store, else ``./checkpoints``."""
    from .tracking import sqlite_path

    store = sqlite_path(uri)
    root = config["output"]["checkpoint_dir"] or (store.parent / "checkpoints" if store else Path("checkpoints"))
    return Path(root).resolve()


def _deterministic() -> None:
    """Deterministic kernels (CPU kernels already are; on CUDA this needs cuBLAS's workspace setting)."""
    import os

    import torch

    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)


def resume_config(uri: str, run_id: str) -> tuple[dict, str]:
    """(config, experiment name) of a stored run that can be resumed."""
    from .errors import ConfigError
    from .tracking import find_run, run_artifact_json

    stored = find_run(uri, run_id)
    if stored.info.status == "FINISHED":
        raise ConfigError(f"--resume {run_id}: the run has already finished")
    config = run_artifact_json(uri, run_id, "config.json")
    if config_hash(config) != stored.data.tags.get("qcrd.config_hash"):
        raise ConfigError(f"--resume {run_id}: its config.json does not match its qcrd.config_hash tag "
                          f"(made by another version of qcrd-bench?)")
    import mlflow

    experiment = mlflow.MlflowClient(tracking_uri=uri).get_experiment(stored.info.experiment_id).name
    return config, experiment


def _train_and_evaluate(catalog: Catalog, config: dict, prep: Prepared, student, loss, run, started: float,
                        checkpoints=None, state: dict | None = None, ranks=None) -> dict | None:
    """Train, then score the test set.  ``run`` is None in a process other than the main
    one: it trains, logs nothing and returns None."""
    from .evaluation import EXPLAIN, evaluate, generate
    from .training import Tokens, encode_examples, train

    if run is not None:
        catalog.pm.hook.qcrd_run_start(config=config, run_id=run.run_id)
        log = _logger(run, catalog)
        if not run.logged:  # a resumed run has these already
            _log_setup(run, catalog, prep)
            if student.info.get("source", "").startswith("config:"):
                _log_tokenizer(run, student)
    else:
        def log(metrics: dict[str, float], step: int) -> None:
            pass
    log({f"data/{k}": v for k, v in prep.teacher_stats.items()}
        | {"data/train_size": len(prep.data.train), "data/val_size": len(prep.data.val),
           "data/test_size": len(prep.data.test)} | (prep.truth_stats or {}), 0)
    tokens = Tokens(student.tokenizer, config, getattr(student.model.config, "decoder_start_token_id", None))
    encoded = encode_examples(tokens, prep.data.train, prep.positives, prep.targets, loss.predict_prefix)
    rationales = [r.text for e in prep.data.train for r in prep.positives.get(e.id, [])]
    log({"data/label_target_truncated": _share_longer(tokens.tokenizer, list((prep.targets or {}).values()),
                                                      tokens.max_out),
         "data/rationale_truncated": _share_longer(tokens.tokenizer, rationales, tokens.max_out),
         "data/input_truncated": _share_longer(tokens.tokenizer, [loss.predict_prefix + e.input for e in prep.data.train],
                                               tokens.max_in)}, 0)
    judge = _judge(prep, student, config, log, pretrain=state is None, device=None if ranks is None else ranks.device,
                   show=run is not None)
    result = train(student, prep.task, tokens, encoded, prep.data.val, loss, config["loss"], config, log, judge,
                   checkpoints, state)
    if run is None:
        return None
    device = next(student.model.parameters()).device
    if judge.sample_rows:
        run.log_table(judge.sample_rows, "negatives/scored_samples.json")
    if judge.negatives is not None and judge.negatives.samples():
        run.log_table(judge.negatives.samples(), "negatives/student_samples.json")

    final, final_rows = evaluate(student.model, student.tokenizer, prep.task, prep.data.test, config, device, loss,
                                 progress=progress(f"decoding the test set (step {config['train']['steps']})"))
    summary = {"final/test_accuracy": final["accuracy"], "final/parse_rate": final["parse_rate"],
               "final/test_accuracy_flexible": final["accuracy_flexible"]}
    rows = final_rows
    if result.best_state is not None and result.best_step != config["train"]["steps"]:
        student.model.load_state_dict(result.best_state)
        best, rows = evaluate(student.model, student.tokenizer, prep.task, prep.data.test, config, device, loss,
                              progress=progress(f"decoding the test set (best step {result.best_step})"))
    else:
        best = final
    summary.update({"test/accuracy": best["accuracy"], "eval/parse_rate": best["parse_rate"],
                    "test/accuracy_flexible": best["accuracy_flexible"],
                    "best/step": result.best_step or config["train"]["steps"]})
    if result.best_val_accuracy is not None:
        summary["best/val_accuracy"] = result.best_val_accuracy
        # How fast it learned: runs that end equal may have got there at different steps.
        summary["val/mean_accuracy"] = statistics.mean(h["accuracy"] for h in result.history)
    summary.update(_log_samples(run, student, prep, rows, config, device, generate, EXPLAIN))
    if config["output"]["save_model"]:
        _log_model(run, student)
    summary["time/run_seconds"] = time.perf_counter() - started
    log(summary, config["train"]["steps"])
    return summary


def _share_longer(tokenizer, texts: list[str], limit: int) -> float:
    """Share of ``texts`` longer than ``limit`` tokens, which training cuts at the end: for
    a cot target that is where its answer is; a rationale loses its last steps (the judge
    reads it cut the same way); an input, the end of its question."""
    if not texts:
        return 0.0
    # verbose=False: measuring a text longer than the model takes is the point here.
    from .training import distinct_map

    lengths = distinct_map(lambda distinct: [len(ids) for ids in tokenizer(distinct, verbose=False)["input_ids"]], texts)
    return sum(n > limit for n in lengths) / len(lengths)


def _warn_on_emulated_bf16(config: dict, device) -> None:
    from .students import native_bf16

    if config["train"]["mixed_precision"] == "bf16" and not native_bf16(device):
        print(f"warning: train.mixed_precision=bf16, but {device} has no native bf16 (on a CPU: AVX512-BF16 "
              "or AMX); training will be slower than in float32. Pass --set train.mixed_precision=no.",
              file=sys.stderr)


def _judge(prep: Prepared, student, config: dict, log, pretrain: bool = True, device=None, show: bool = False):
    """Negative generator and discriminator sessions for a loss that uses negatives
    (``show``: a bar over the judge's pre-training)."""
    from .components import TrainContext
    from .training import Judge

    tc = config["train"]
    iteration_steps = tc["iteration_steps"] or tc["eval_every"]
    if not prep.components["loss"].uses_negatives:
        return Judge(iteration_steps=iteration_steps)
    check = prep.check
    if device is None:
        from .distributed import process_state

        device = process_state().device
    # The device accelerate will train on, so the judge and the generator sit beside the student.
    context = TrainContext(student=student, task=prep.task, train=prep.data.train, positives=prep.positives,
                           teacher_negatives=prep.teacher_negatives, config=config, device=device,
                           iteration_steps=iteration_steps)
    negatives = prep.components["negatives"].session(context, config["negatives"])
    discriminator = prep.components["discriminator"].session(context, config["discriminator"])
    if pretrain and discriminator is not None:  # a resumed run's judge comes from its checkpoint
        _pretrain(discriminator, config["discriminator"].get("pretrain_steps", 0), log, show)
    return Judge(negatives=negatives, discriminator=discriminator,
                 disc_variant=config["discriminator"].get("loss", "eq2"), iteration_steps=iteration_steps,
                 lr_decay=config["loss"].get("alpha3_decay", 1.0), truth=check,
                 update_fraction=config["discriminator"].get("update_fraction", 1.0),
                 label_noise=config["discriminator"].get("label_noise", 0.0),
                 teacher_negatives={k: {r.text for r in v} for k, v in prep.teacher_negatives.items()})


def _pretrain(discriminator, steps: int, log, show: bool) -> None:
    """The judge's pre-training, with a bar advanced each time it logs (five times)."""
    if not (show and steps and discriminator.parameters()):
        discriminator.pretrain(log)
        return
    with bar("pre-training the judge", steps) as progress_bar:
        def log_and_advance(metrics: dict[str, float], step: int) -> None:
            log(metrics, step)
            progress_bar.update(step - progress_bar.n)
            if "disc_pretrain/accuracy" in metrics:
                progress_bar.set_postfix(accuracy=f"{metrics['disc_pretrain/accuracy']:.2f}")

        discriminator.pretrain(log_and_advance)


def _seed_everything(seed: int) -> None:
    from transformers import set_seed

    set_seed(seed)


def _student_params(student) -> dict[str, Any]:
    return {f"student.{k}": v for k, v in student.info.items() if k != "name"}


def _logger(run, catalog: Catalog):
    def log(metrics: dict[str, float], step: int) -> None:
        logged = run.log_metrics(metrics, step)  # a resumed run drops steps it logged before
        if logged:
            catalog.pm.hook.qcrd_log_metrics(metrics=logged, step=step)
    return log


def _log_setup(run, catalog: Catalog, prep: Prepared) -> None:
    run.log_dict(prep.config, "config.json")
    run.log_dict(versions(catalog), "versions.json")
    run.log_dict({"files": prep.data_files, "splits": {k: len(v) for k, v in prep.data.splits().items()},
                  "notes": prep.data.notes}, "data.json")
    rationale_rows = [{"id": e.id, "input": e.input, "gold": e.label, "rationale": r.text,
                       "teacher_answer": None if r.answer is None else str(r.answer)}
                      for e in prep.data.train[: prep.config["eval"]["samples_logged"]]
                      for r in prep.positives.get(e.id, [])]
    run.log_table(rationale_rows, "teacher_rationales.json")
    if prep.teacher_prompt:
        run.log_dict(prep.teacher_prompt, "teacher_prompt.json")


def _log_samples(run, student, prep: Prepared, rows: list[dict], config: dict, device, generate,
                 explain) -> dict[str, float]:
    """The test predictions, the student's own rationales for a few test questions, and
    what its rationales for the first ``eval.rationale_limit`` test questions reach
    (``truth.rationale_metrics``): the rationale metrics of the summary."""
    run.log_table(rows, "predictions/test.json")
    loss, test = prep.components["loss"], prep.data.test
    shown, limit = config["eval"]["samples_logged"], config["eval"]["rationale_limit"] or len(test)
    examples = test[: max(shown, limit)]
    if loss.uses_rationales:
        texts = generate(student.model, student.tokenizer, [explain + e.input for e in examples],
                         batch_size=config["eval"]["batch_size"],
                         max_input_length=config["train"]["max_input_length"],
                         max_new_tokens=config["train"]["max_target_length"], device=device,
                         progress=progress(f"decoding rationales ({len(examples)} test questions)"))
    else:  # a rationale in the label-side output (cot), or none
        texts = [loss.rationale_text(row["prediction"]) for row in rows[: len(examples)]]
        if any(text is None for text in texts):
            return {}
    check = prep.check
    if shown and examples:
        run.log_table([{**row, "student_rationale": text, **({"truth": check(e, text)} if check else {})}
                       for row, e, text in zip(rows[:shown], examples, texts)], "predictions/test_rationales.json")
    return truth.rationale_metrics(prep.task, examples[:limit], texts[:limit], check)


def _log_tokenizer(run, student) -> None:
    """A config-built student's tokenizer was trained for this run: keep it with the run."""
    with tempfile.TemporaryDirectory() as tmp:
        student.tokenizer.save_pretrained(tmp)
        run.log_artifacts(Path(tmp), "tokenizer")


def _log_model(run, student) -> None:
    from .students import save_student

    with tempfile.TemporaryDirectory() as tmp:
        save_student(student, Path(tmp))
        run.log_artifacts(Path(tmp), "student")


def plan(config: dict) -> dict[str, Any]:
    """The resolved plan ``--dry-run`` prints."""
    return {"method": config["method"], "task": config["task"]["name"], "seed": config["seed"],
            "config_hash": config_hash(config), "smoke": is_smoke(config),
            "components": {slot: config[slot]["name"] for slot in SLOTS}, "config": config}


def dumps(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, default=str)
