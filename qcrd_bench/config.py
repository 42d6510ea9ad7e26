"""One resolved config per run.

Layers, later wins:  core defaults + the chosen components' defaults
  ← method defaults ← preset ← ``--config FILE`` ← command-line options and ``--set``.

Every key a layer sets must exist in the core schema or in the parameters of the
component chosen for its slot; values are typed by the default they replace.
When a layer picks a different component for a slot (``student.name``), the
parameters earlier layers gave the old component are dropped, since they belong
to it.  The config names components, never import paths.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .plugins import Catalog, did_you_mean

# config slot -> registry kind
SLOTS = {
    "task": "tasks",
    "student": "students",
    "teacher": "teachers",
    "positive_filter": "filters",
    "negatives": "negatives",
    "discriminator": "discriminators",
    "loss": "losses",
}

CORE = {
    "method": "",
    "preset": "",
    "seed": 0,
    "limit": 0,  # >0: cap every split at this many examples (a smoke run)
    "train": {
        "steps": 1000,
        "batch_size": 16,
        "lr": 1e-4,
        "weight_decay": 0.0,
        "warmup_steps": 0,
        # After the warm-up: linear (down to 0 at the last step, as DSS's Trainer does),
        # constant, or wsd (constant, then linear down to 0 over the last lr_decay_fraction of
        # the steps: a fraction, so that a shortened run still anneals).
        "lr_schedule": "linear",
        "lr_decay_fraction": 0.2,
        "grad_accum": 1,
        "max_grad_norm": 1.0,
        "max_input_length": 512,
        "max_target_length": 128,
        "mixed_precision": "no",  # no | bf16 | fp16 (accelerate)
        "eval_every": 250,
        "iteration_steps": 0,  # QCRD iteration (snapshots, α3 decay) in optimizer steps; 0: eval_every
        "log_every": 10,
        "threads": 2,  # torch intra-op threads on CPU; never more than the cores
        "group_by_length": 0,  # >0: batches drawn from runs of N batches sorted by length (less padding)
        "checkpoint_every": 250,  # steps between checkpoints for `run --resume` (0: none)
        "deterministic": False,  # torch.use_deterministic_algorithms (GPU: slower, bit-identical reruns)
    },
    "eval": {
        "batch_size": 64,
        "max_new_tokens": 64,
        "val_limit": 0,  # >0: validate on the first N validation examples only
        "samples_logged": 20,  # predictions/rationales shown in the run's sample table
        # The student's own rationales are decoded for the first N test questions (0: all) to
        # measure what they reach (test/rationale_answer_accuracy, and test/rationale_valid on
        # tasks with a checker).
        "rationale_limit": 1000,
    },
    "output": {
        "save_model": False,  # log the best-validation student as an artifact
        "checkpoint_dir": "",  # "": checkpoints/ beside a SQLite store, else ./checkpoints; one folder per run
        "keep_checkpoint": False,  # keep a finished run's last checkpoint (it is deleted by default)
    },
}

# The controlled testbed (task synth-arith): the level of the task a
# T5 built from a config (word tokenizer, no dropout) learns from scratch on 2 CPU cores
# in minutes, as calibrated in benchmarks/suites/synth-calibration.yaml: two people, one
# event of the asked person and up to one distractor, one phrasing, small numbers.  The
# task's own defaults (2 events, 24 names, 4 phrasings, answers to 99) are the harder
# levels of the ladder, for longer budgets.
SYNTH_PRESET: dict[str, Any] = {
    # No ×2/×3 events: with them one seed in three learned the task (which event is the asked
    # person's) only after ~55k examples, the others after ~20k; without, every seed tried did
    # by step 700.  Transfers (give) keep question sensitivity, distractors keep their trap.
    "task": {"names": 2, "people_max": 2, "events": 1, "max_distractors": 1, "kinds": "give,gain,lose",
             "phrasings": 1, "start_max": 9, "amount_max": 9, "max_value": 30, "train_size": 20000},
    "student": {"name": "t5-tiny-h16", "tokenizer": "word", "dropout": 0.0},
    # The judge an encoder of its own, as the paper's (T5-base beside T5-small students): t5-tiny over
    # the student's tokenizer, the student's width and depth with 4 heads of 16 instead of 16 of 4, a
    # quarter of the attention scores over its ~60-token (x, r) pairs.  qcrd in 0.86x the time, its
    # accuracy and AUROC measured against the student-shaped judge in reports/synth-judge.
    "discriminator": {"pretrain_steps": 100, "encoder": "t5-tiny"},
    # Self-play samples of a tiny student, drawn 1024 to a generate call: 16% faster than 256.
    "negatives": {"sample_batch_size": 1024},
    # A constant rate of 3e-3 after the warm-up, annealed to 0 over the last 20% of the steps
    # (wsd): the linear decay of 2e-3 from step 100 also lowered the rate through the
    # transition, which came late and at a different step for each seed (std 2.9 points).
    # Batch 64 for 1500 steps (ten iterations of 150): at batch 32 and 2000 steps a third of
    # the suites' runs were still learning when they stopped, and paired differences had CI
    # half-widths up to 72 points; at this budget every dss seed screened finished (dss seed
    # std 0.6, qcrd - dss CI half-width 2.1 on the dynamic teacher), for 1.33-1.36x a dss run's time.
    "train": {"steps": 1500, "batch_size": 64, "lr": 3e-3, "lr_schedule": "wsd", "warmup_steps": 100,
              "eval_every": 250, "log_every": 50, "iteration_steps": 150, "checkpoint_every": 500,
              "max_input_length": 64,
              # The longest teacher rationale was 27 tokens with ×2/×3 events: 32 truncates none
              # (data/rationale_truncated is 0 without them too), and caps self-play samples,
              # which a weak student at τ = 1.5 runs to the limit.
              "max_target_length": 32},
    "eval": {"batch_size": 256, "max_new_tokens": 8, "val_limit": 500},
}

PRESETS: dict[str, dict[str, Any]] = {
    # The whole pipeline in well under two minutes on 2 cores: a tiny config-built T5.
    # Component keys apply only to runs whose method uses that component.
    "smoke": {
        "student": {"name": "t5-tiny"},
        "discriminator": {"pretrain_steps": 10},
        # 30 steps, but QCRD still sees several iterations (snapshots, α3 decay).
        "train": {"steps": 30, "batch_size": 8, "lr": 1e-3, "eval_every": 15, "log_every": 5, "iteration_steps": 4,
                  "max_input_length": 128, "max_target_length": 64, "checkpoint_every": 0},
        "eval": {"batch_size": 64, "max_new_tokens": 24, "val_limit": 40},
    },
    # The most meaningful comparison that fits a CPU: the encoder-decoder warm-started from
    # MiniLM-L6 (the one pretrained model installable offline), the only offline student
    # measured to learn SVAMP here (29% after 1117 label-only steps; a 2-layer decoder
    # reached only 6% after 800).  bf16 autocast: dss steps 2.4x and qcrd steps 1.8x faster
    # (2.2x with self-play sampling) on a CPU with AVX512-BF16 (a run warns where bf16 is
    # emulated; pass --set train.mixed_precision=no).
    "cpu": {
        "student": {"name": "minilm", "decoder_layers": 6},
        # An iteration of 50 steps (~one pass over SVAMP's 720 questions) gives 20 iterations,
        # so a self-play lag of up to 10 reaches past the initial student.
        "train": {"steps": 1000, "batch_size": 16, "lr": 1e-4, "eval_every": 250, "log_every": 25,
                  "iteration_steps": 50, "checkpoint_every": 100, "mixed_precision": "bf16",
                  "max_input_length": 128, "max_target_length": 64},
        "eval": {"batch_size": 64, "max_new_tokens": 32},
    },
    "synth": SYNTH_PRESET,
    # synth-arith's default: the `synth` level, student and schedule on a third of the examples
    # (1000 steps of 32), for a first run in ten minutes on 2 cores.  Some seeds are still
    # learning at step 1000 (dss, seeds 0-6: 65-96%, synth-calibration.yaml), so comparisons
    # use `synth`, as the suites do.
    "synth-quick": {**SYNTH_PRESET, "train": {**SYNTH_PRESET["train"], "steps": 1000, "batch_size": 32,
                                              "iteration_steps": 100}},
    # The paper's setting (DSS hyperparameters): needs a GPU and the Hugging Face hub.
    "paper": {
        "student": {"name": "google/t5-v1_1-base"},
        "train": {"steps": 10000, "batch_size": 64, "lr": 5e-5, "eval_every": 250, "log_every": 50,
                  "max_input_length": 1024, "max_target_length": 256, "mixed_precision": "bf16"},
        "eval": {"batch_size": 64, "max_new_tokens": 64},
    },
}
DEFAULT_PRESET = "cpu"

POSITIVE = ("train.steps", "train.batch_size", "train.lr", "train.grad_accum", "train.eval_every",
            "train.log_every", "train.threads", "train.max_input_length", "train.max_target_length",
            "eval.batch_size", "eval.max_new_tokens")
NON_NEGATIVE = ("seed", "limit", "train.weight_decay", "train.warmup_steps", "train.lr_decay_fraction",
                "train.max_grad_norm", "train.iteration_steps", "train.group_by_length", "train.checkpoint_every",
                "eval.val_limit", "eval.samples_logged", "eval.rationale_limit")
CHOICES = {"train.mixed_precision": ("no", "bf16", "fp16"), "train.lr_schedule": ("linear", "constant", "wsd")}


# ---------------------------------------------------------------- dotted dicts


def flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, path + "."))
        else:
            flat[path] = value
    return flat


def unflatten(flat: dict[str, Any]) -> dict:
    tree: dict = {}
    for path, value in flat.items():
        node = tree
        *parents, leaf = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree


_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def parse_set(item: str) -> tuple[str, Any]:
    """``"train.lr=3e-4"`` -> ``("train.lr", 3e-4)``; values are read as YAML scalars."""
    import yaml

    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. --set train.lr=3e-4")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        value = float(value)  # YAML 1.1 reads "3e-4" (no dot) as a string
    if isinstance(value, (dict, list)):
        raise ConfigError(f"--set {item!r}: only scalar values can be set")
    return key, value


def _unique_key_loader():
    import yaml

    class UniqueKeyLoader(yaml.SafeLoader):
        """SafeLoader refusing a key given twice in one mapping: PyYAML keeps the last one
        silently, so a pasted-in duplicate would override a setting unnoticed."""

        def construct_mapping(self, node, deep=False):
            if isinstance(node, yaml.MappingNode):
                seen: dict[Any, int] = {}
                for key_node, _ in node.value:
                    if key_node.tag == "tag:yaml.org,2002:merge":
                        continue
                    key = self.construct_object(key_node, deep=True)
                    try:
                        duplicate = key in seen
                    except TypeError:  # an unhashable key: SafeLoader reports it itself
                        continue
                    if duplicate:
                        raise yaml.constructor.ConstructorError(
                            None, None, f"duplicate key {key!r} (first on line {seen[key]})", key_node.start_mark)
                    seen[key] = key_node.start_mark.line + 1
            return super().construct_mapping(node, deep)

    return UniqueKeyLoader


def read_config_file(path: str | Path) -> dict[str, Any]:
    """A YAML (or JSON) mapping of config keys, nested or dotted, as a flat dict."""
    import yaml

    path = Path(path)
    try:
        data = path.read_bytes()
        text = data.decode("utf-8")
    except OSError as exc:
        raise ConfigError(f"--config {path}: cannot read: {exc}") from None
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(f"--config {path}:{line}: not UTF-8 text (byte {exc.start})") from None
    try:
        tree = yaml.load(text, Loader=_unique_key_loader())  # a BOM is skipped by the YAML reader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise ConfigError(f"--config {path}{where}: invalid YAML: {getattr(exc, 'problem', exc)}") from None
    if tree is None:
        return {}
    if not isinstance(tree, dict):
        raise ConfigError(f"--config {path}: expected a mapping of config keys, got {type(tree).__name__}")
    return flatten(tree)


# ---------------------------------------------------------------- resolution


def resolve(catalog: Catalog, method: str, task: str, preset: str | None = None,
            file_layer: dict[str, Any] | None = None, cli_layer: dict[str, Any] | None = None,
            file_name: str | None = None) -> dict:
    """The resolved config as a nested dict.  ``file_layer``/``cli_layer`` are flat
    ``{dotted key: value}`` maps; the CLI layer includes options like --seed.
    ``file_name`` (the --config file) is named in errors about keys from it."""
    recipe = catalog.methods.get(method)
    task_component = catalog.tasks.get(task)
    preset = preset or task_component.default_preset or DEFAULT_PRESET
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; {did_you_mean(preset, PRESETS)}")

    base_choice = {"method": method, "preset": preset, "task.name": task,
                   **{f"{slot}.name": name for slot, name in recipe.slots().items()}}
    task_layer = {}
    if task_component.default_teacher and recipe.teacher != "none":
        task_layer["teacher.name"] = task_component.default_teacher
    layers = [
        ("method " + method, dict(recipe.defaults)),
        ("task " + task, task_layer),
        ("preset " + preset, flatten(PRESETS[preset])),
        ("--config" + (f" {file_name}" if file_name else ""), dict(file_layer or {})),
        ("command line", dict(cli_layer or {})),
    ]
    for where, layer in layers[3:]:
        for key in ("method", "preset", "task.name"):
            if key in layer:
                option = {"task.name": "--task"}.get(key, f"--{key}")
                raise ConfigError(f"config key {key!r} (from {where}) cannot be set there; use {option}")
    merged = dict(base_choice)
    for _, layer in layers:
        for slot in SLOTS:
            chosen = layer.get(f"{slot}.name")
            if chosen is not None and chosen != merged.get(f"{slot}.name"):
                merged = {k: v for k, v in merged.items() if not k.startswith(slot + ".")}
        merged.update(layer)
    # The task and method are chosen on the command line, not inside a layer.
    for key in ("method", "task.name"):
        merged[key] = base_choice[key]

    schema = _schema(catalog, merged)
    origin = {key: name for name, layer in layers for key in layer}
    resolved = copy.deepcopy(schema)
    for key, value in merged.items():
        where = origin.get(key, "config")
        if key not in schema and where.startswith("preset ") and key.split(".")[0] in SLOTS:
            continue  # a preset tunes components for every method; this run does not use that one
        if key not in schema:
            raise _unknown_key(catalog, key, where, merged, schema)
        resolved[key] = _typed(key, value, schema[key], where)
    _check_values(resolved)
    config = unflatten(resolved)
    for slot, kind in SLOTS.items():
        registry = getattr(catalog, kind)
        if config[slot]["name"] in registry:
            registry.get(config[slot]["name"]).check(config[slot])
    _check_iterations(catalog, config)
    _check_precision(catalog, config)
    return config


def resolve_teach(catalog: Catalog, task: str, teacher: str, cli_layer: dict[str, Any] | None = None) -> dict:
    """The config of ``qcrd-bench teach``: only the task's and the teacher's parameters,
    and ``limit`` (the first N training questions)."""
    catalog.tasks.get(task)
    catalog.teachers.get(teacher)
    layer = dict(cli_layer or {})
    for key in ("task.name", "teacher.name"):
        if key in layer:
            raise ConfigError(f"config key {key!r} cannot be set with --set; use --{key.split('.')[0]}")
    schema = {k: v for k, v in _schema(catalog, {"task.name": task, "teacher.name": teacher}).items()
              if k == "limit" or k.startswith(("task.", "teacher."))}
    resolved = dict(schema)
    for key, value in layer.items():
        if key not in schema:
            raise ConfigError(f"unknown key {key!r} for `teach`; {did_you_mean(key, schema)}")
        resolved[key] = _typed(key, value, schema[key], "command line")
    if resolved["limit"] < 0:
        raise ConfigError(f"--limit: must be >= 1, got {resolved['limit']}")
    config = unflatten(resolved)
    catalog.tasks.get(task).check(config["task"])
    catalog.teachers.get(teacher).check(config["teacher"])
    return config


def teacher_choice(value: str) -> dict[str, Any]:
    """``--teacher NAME`` or ``--teacher file:PATH`` as config keys."""
    if value.startswith("file:"):
        return {"teacher.name": "file", "teacher.path": value[len("file:"):]}
    return {"teacher.name": value}


def _check_iterations(catalog: Catalog, config: dict) -> None:
    """A lagged negative generator needs more iterations than its lag, or the initial
    student generates throughout and the variant silently equals ``fixed``."""
    generator = catalog.negatives.get(config["negatives"]["name"])
    lag = generator.lag(config["negatives"])
    if lag is None or config["limit"]:
        return
    steps, every = config["train"]["steps"], config["train"]["iteration_steps"] or config["train"]["eval_every"]
    iterations = -(-steps // every)
    if iterations <= lag and config["preset"] != "smoke":
        raise ConfigError(f"negatives.lag={lag} but train.steps={steps} / train.iteration_steps={every} gives only "
                          f"{iterations} iterations: the initial student would generate every negative; "
                          f"lower train.iteration_steps or the lag")


def _unknown_key(catalog: Catalog, key: str, where: str, merged: dict[str, Any], schema: dict[str, Any]) -> ConfigError:
    """The error for a key outside this run's schema.  A parameter of another component of
    the same slot (``negatives.lag`` for dss, whose negatives are 'none') says which
    components take it; any other key gets the closest key of its own section."""
    slot, _, param = key.partition(".")
    if slot in SLOTS and param:
        registry = getattr(catalog, SLOTS[slot])
        owners = [name for name in registry.names() if param in getattr(registry.get(name), "defaults", {})]
        chosen = merged.get(f"{slot}.name")
        if owners and chosen in registry:
            what = registry.get(chosen).description
            return ConfigError(f"config key {key!r} (from {where}) does not apply to method {merged['method']!r}, "
                               f"which uses {slot} {chosen!r}" + (f" ({what})" if what else "") + f": {param!r} is "
                               f"a parameter of {slot} {', '.join(map(repr, owners))}; choose one with "
                               f"--set {slot}.name=NAME")
    sections = sorted({k.split(".")[0] for k in schema if "." in k})
    if param and slot not in sections:
        return ConfigError(f"unknown config key {key!r} (from {where}): no section {slot!r}; "
                           f"{did_you_mean(slot, sections)}")
    candidates = [k for k in schema if k.split(".")[0] == slot] if param else [k for k in schema if "." not in k]
    return ConfigError(f"unknown config key {key!r} (from {where}); {did_you_mean(key, candidates)}")


def _check_precision(catalog: Catalog, config: dict) -> None:
    """fp16 needs a gradient scaler on every optimizer, and accelerate's scales only the
    student's: a learning judge's gradients would stay scaled and its overflow steps would
    not be skipped."""
    discriminator = catalog.discriminators.get(config["discriminator"]["name"])
    if (config["train"]["mixed_precision"] == "fp16" and discriminator.learns
            and catalog.losses.get(config["loss"]["name"]).uses_negatives):
        raise ConfigError(f"train.mixed_precision=fp16 is not supported with discriminator "
                          f"{discriminator.name!r}, which trains outside accelerate's gradient scaler; "
                          f"use bf16 or no")


def _schema(catalog: Catalog, merged: dict[str, Any]) -> dict[str, Any]:
    """Every valid flat key with its default, for the components chosen in ``merged``."""
    schema = flatten(CORE)
    for slot, kind in SLOTS.items():
        name = merged.get(f"{slot}.name")
        if name is None:
            continue
        registry = getattr(catalog, kind)
        if name in registry:
            component = registry.get(name)
            defaults = dict(getattr(component, "defaults", {}))
        elif slot == "student":
            defaults = {}  # any other student name is loaded with from_pretrained
        else:
            raise ConfigError(f"{slot}.name: unknown {kind[:-1]} {name!r}; {did_you_mean(name, registry.names())}")
        schema[f"{slot}.name"] = name
        schema.update({f"{slot}.{key}": value for key, value in defaults.items()})
    return schema


def _typed(key: str, value: Any, default: Any, where: str) -> Any:
    if default is None or value is None:
        return value
    expected = type(default)
    if expected is bool:
        if isinstance(value, bool):
            return value
    elif expected is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif expected is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif expected is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
    elif isinstance(value, expected):
        return value
    raise ConfigError(f"config key {key!r} (from {where}): expected {expected.__name__}, got {value!r}")


def _check_values(flat: dict[str, Any]) -> None:
    for key in POSITIVE:
        if not flat[key] > 0:
            raise ConfigError(f"config key {key!r}: must be > 0, got {flat[key]!r}")
    for key in NON_NEGATIVE:
        if flat[key] < 0:
            raise ConfigError(f"config key {key!r}: must be >= 0, got {flat[key]!r}")
    for key, choices in CHOICES.items():
        if flat[key] not in choices:
            raise ConfigError(f"config key {key!r}: must be one of {', '.join(choices)}, got {flat[key]!r}")
    if flat["train.lr"] > 1.0:
        raise ConfigError(f"config key 'train.lr': {flat['train.lr']} is not a plausible learning rate (> 1)")
    if flat["train.lr_decay_fraction"] > 1:
        raise ConfigError(f"config key 'train.lr_decay_fraction': must be <= 1, got {flat['train.lr_decay_fraction']}")


# Keys that change how a run is executed, not what it computes: left out of the config hash.
# (Thread count and deterministic kernels change only the order of float reductions.)
OPERATIONAL = {"train": {"threads", "checkpoint_every", "deterministic"},
               "output": {"checkpoint_dir", "keep_checkpoint"}}
# Knobs added after suites were run, at the value that leaves a run as it was: left out of the
# hash there, so a recorded sweep stays one version and resumes instead of running again.
NEUTRAL = {"discriminator": {"label_noise": 0.0}}


def config_hash(config: dict) -> str:
    """A short hash of everything but the seed, the OPERATIONAL keys and the NEUTRAL ones at
    their neutral value: runs that differ only in seed share it, so a report groups them and a
    changed default shows up as a new version (a sweep splits cores among workers without
    making new versions)."""
    payload = {k: v for k, v in config.items() if k != "seed"}
    for section, keys in OPERATIONAL.items():
        if section in payload:
            payload[section] = {k: v for k, v in payload[section].items() if k not in keys}
    for section, values in NEUTRAL.items():
        if section in payload:
            payload[section] = {k: v for k, v in payload[section].items() if k not in values or values[k] != v}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:10]


def is_smoke(config: dict) -> bool:
    return config["preset"] == "smoke" or config["limit"] > 0
