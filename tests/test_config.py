from __future__ import annotations

import pytest

from qcrd_bench.config import config_hash, flatten, parse_set, read_config_file, resolve
from qcrd_bench.errors import ConfigError, PluginError


def test_layers_in_order(catalog, tmp_path):
    cfg = resolve(catalog, "dss", "svamp", "smoke")
    assert cfg["student"]["name"] == "t5-tiny" and cfg["train"]["steps"] == 30  # preset
    assert cfg["loss"] == {"name": "dss", "alpha": 0.5}  # method recipe + loss defaults
    assert cfg["teacher"]["name"] == "dss-palm" and cfg["task"]["val_fraction"] == 0.1
    file_layer = {"train.steps": 7, "loss.alpha": 0.3}
    cfg = resolve(catalog, "dss", "svamp", "smoke", file_layer, {"train.steps": 9, "seed": 4})
    assert cfg["train"]["steps"] == 9 and cfg["loss"]["alpha"] == 0.3 and cfg["seed"] == 4


def test_default_preset_is_cpu(catalog):
    cfg = resolve(catalog, "finetune", "svamp")
    assert cfg["preset"] == "cpu" and cfg["student"]["name"] == "minilm"


def test_set_values_are_typed():
    assert parse_set("train.lr=3e-4") == ("train.lr", 3e-4)
    assert parse_set("output.save_model=true") == ("output.save_model", True)
    assert parse_set("student.name=./my model") == ("student.name", "./my model")
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        parse_set("train.lr")


def test_int_accepted_for_float_and_rejected_the_other_way(catalog):
    cfg = resolve(catalog, "dss", "svamp", "smoke", None, {"train.lr": 1})
    assert cfg["train"]["lr"] == 1.0 and isinstance(cfg["train"]["lr"], float)
    with pytest.raises(ConfigError, match=r"'train.steps' \(from command line\): expected int, got 'many'"):
        resolve(catalog, "dss", "svamp", "smoke", None, {"train.steps": "many"})
    with pytest.raises(ConfigError, match="expected int"):
        resolve(catalog, "dss", "svamp", "smoke", None, {"train.steps": 2.5})


def test_unknown_key_suggests(catalog):
    with pytest.raises(ConfigError, match=r"unknown config key 'train.step' \(from command line\); did you mean 'train.steps'"):
        resolve(catalog, "dss", "svamp", "smoke", None, {"train.step": 3})
    # A parameter of a component that the method does not use is refused, naming who takes it.
    with pytest.raises(ConfigError, match=r"config key 'loss.alpha' \(from command line\) does not apply to method "
                                          r"'finetune', which uses loss 'label-ce' .*: 'alpha' is a parameter of loss 'dss'"):
        resolve(catalog, "finetune", "svamp", "smoke", None, {"loss.alpha": 0.2})


def test_a_self_play_key_on_dss_says_dss_has_no_such_negatives(catalog):
    with pytest.raises(ConfigError) as error:
        resolve(catalog, "dss", "svamp", "smoke", None, {"negatives.lag": 3})
    message = str(error.value)
    assert message.startswith("config key 'negatives.lag' (from command line) does not apply to method 'dss', "
                              "which uses negatives 'none' (no negatives): 'lag' is a parameter of negatives "
                              "'self-play', 'teacher+self-play'; choose one with --set negatives.name=NAME")
    assert "train.steps" not in message  # no list of every key


def test_an_unknown_key_lists_only_its_section(catalog):
    with pytest.raises(ConfigError) as error:
        resolve(catalog, "dss", "svamp", "smoke", None, {"train.lrr": 0.1})
    assert "did you mean 'train.lr'?" in str(error.value) and "eval." not in str(error.value)
    with pytest.raises(ConfigError, match=r"unknown config key 'trian.lr' \(from command line\): no section 'trian'; "
                                          r"did you mean 'train'\? available: discriminator, eval, loss"):
        resolve(catalog, "dss", "svamp", "smoke", None, {"trian.lr": 0.1})


@pytest.mark.parametrize("key,value,message", [
    ("train.steps", 0, "must be > 0"), ("train.batch_size", -1, "must be > 0"), ("train.lr", -0.1, "must be > 0"),
    ("train.lr", 5.0, "not a plausible learning rate"), ("seed", -3, "must be >= 0"),
    ("train.mixed_precision", "fp8", "must be one of no, bf16, fp16"),
])
def test_absurd_values_rejected(catalog, key, value, message):
    with pytest.raises(ConfigError, match=message):
        resolve(catalog, "dss", "svamp", "smoke", None, {key: value})


def test_unknown_method_task_preset(catalog):
    with pytest.raises(PluginError, match=r"unknown method 'nosuch'; available: cot, distill, dss, finetune"):
        resolve(catalog, "nosuch", "svamp")
    with pytest.raises(PluginError, match="did you mean 'svamp'"):
        resolve(catalog, "dss", "svamp2")
    with pytest.raises(ConfigError, match="unknown preset 'smok'; did you mean 'smoke'"):
        resolve(catalog, "dss", "svamp", "smok")
    with pytest.raises(ConfigError, match="unknown teacher 'palm'"):
        resolve(catalog, "dss", "svamp", "smoke", None, {"teacher.name": "palm"})


def test_choosing_another_component_drops_the_old_ones_params(catalog):
    # The cpu preset sets minilm's decoder_layers; picking t5-tiny drops it instead of failing.
    cfg = resolve(catalog, "dss", "svamp", "cpu", None, {"student.name": "t5-tiny"})
    assert cfg["student"] == {"name": "t5-tiny", "vocab_size": 2048, "tokenizer": "bpe", "dropout": 0.1,
                              "attention": "eager"}
    # Any other student name is loaded with from_pretrained and takes no parameters.
    assert resolve(catalog, "dss", "svamp", "smoke", None, {"student.name": "/models/t5"})["student"] == {
        "name": "/models/t5"}


def test_config_file(tmp_path, catalog):
    path = tmp_path / "exp.yaml"
    path.write_text("train:\n  steps: 12\nloss.alpha: 0.7\n")
    assert read_config_file(path) == {"train.steps": 12, "loss.alpha": 0.7}
    cfg = resolve(catalog, "dss", "svamp", "smoke", read_config_file(path), None)
    assert cfg["train"]["steps"] == 12 and cfg["loss"]["alpha"] == 0.7
    path.write_text("train:\n  steps: [1\n")
    with pytest.raises(ConfigError, match=r"exp.yaml:\d+: invalid YAML"):
        read_config_file(path)
    path.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        read_config_file(path)
    with pytest.raises(ConfigError, match="cannot read"):
        read_config_file(tmp_path / "missing.yaml")
    path.write_text("train:\n  stepz: 3\n")
    with pytest.raises(ConfigError, match=r"'train.stepz' \(from --config\); did you mean 'train.steps'"):
        resolve(catalog, "dss", "svamp", "smoke", read_config_file(path), None)


def test_hash_ignores_seed_only(catalog):
    a = resolve(catalog, "dss", "svamp", "smoke", None, {"seed": 1})
    b = resolve(catalog, "dss", "svamp", "smoke", None, {"seed": 2})
    c = resolve(catalog, "dss", "svamp", "smoke", None, {"seed": 1, "train.lr": 0.01})
    assert config_hash(a) == config_hash(b) != config_hash(c)
    assert len(config_hash(a)) == 10


def test_a_knob_added_later_keeps_the_hash_at_its_neutral_value(catalog):
    """discriminator.label_noise came after suites were run: at 0 the hash is what it was
    without the key, so those sweeps resume; any other value is a new version."""
    config = resolve(catalog, "qcrd", "svamp", "smoke")
    assert config["discriminator"]["label_noise"] == 0.0
    before = {**config, "discriminator": {k: v for k, v in config["discriminator"].items() if k != "label_noise"}}
    noisy = resolve(catalog, "qcrd", "svamp", "smoke", None, {"discriminator.label_noise": 0.5})
    assert config_hash(config) == config_hash(before) != config_hash(noisy)


def test_resolved_config_covers_all_slots(catalog):
    flat = flatten(resolve(catalog, "dss", "svamp", "smoke"))
    for slot in ("task", "student", "teacher", "positive_filter", "negatives", "discriminator", "loss"):
        assert f"{slot}.name" in flat


def test_preset_component_keys_apply_only_where_the_component_is_used(catalog):
    assert resolve(catalog, "qcrd", "svamp", "smoke")["discriminator"]["pretrain_steps"] == 10
    assert resolve(catalog, "qcrd-no-qj", "svamp", "smoke")["discriminator"] == {"name": "constant"}
    # The same key from the command line is still an error for a component without it.
    with pytest.raises(ConfigError, match="config key 'discriminator.pretrain_steps' .* does not apply to method 'dss'"):
        resolve(catalog, "dss", "svamp", "smoke", None, {"discriminator.pretrain_steps": 3})


def test_component_parameters_are_checked_at_resolve_time(catalog):
    with pytest.raises(ConfigError, match="loss.alpha: must be in"):
        resolve(catalog, "dss", "svamp", "smoke", None, {"loss.alpha": 1.5})
    with pytest.raises(ConfigError, match="loss.scheme: must be one of"):
        resolve(catalog, "qcrd", "svamp", "smoke", None, {"loss.scheme": "median"})
    with pytest.raises(ConfigError, match="negatives.temperature: must be > 0"):
        resolve(catalog, "qcrd", "svamp", "smoke", None, {"negatives.temperature": 0})
    with pytest.raises(ConfigError, match="discriminator.loss: must be one of"):
        resolve(catalog, "qcrd", "svamp", "smoke", None, {"discriminator.loss": "hinge"})
    with pytest.raises(ConfigError, match="teacher.samples: must be >= 1"):
        resolve(catalog, "qcrd", "svamp", "smoke", None, {"teacher.samples": 0})


def test_lag_needs_enough_iterations(catalog):
    with pytest.raises(ConfigError, match="negatives.lag=10 .* gives only 4 iterations"):
        resolve(catalog, "qcrd-j10", "svamp", "cpu", None, {"train.iteration_steps": 250})
    assert resolve(catalog, "qcrd-j10", "svamp", "cpu")["train"]["iteration_steps"] == 50


def test_method_preset_and_task_come_from_their_options(catalog):
    for key in ("method", "preset", "task.name"):
        with pytest.raises(ConfigError, match=f"'{key}' \\(from --config\\) cannot be set there"):
            resolve(catalog, "dss", "svamp", "smoke", {key: "x"}, None)
