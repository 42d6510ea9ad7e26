"""The `hf` teacher with a tiny randomly initialised GPT-2 saved to a directory: `teach`
writes a complete set, a second teach is served from the cache, the same seed draws
the same samples, chat templates are used when the tokenizer has one, and a missing
model fails with one line naming teacher.model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from qcrd_bench.cli import main
from qcrd_bench.components import TaskData
from qcrd_bench.errors import ConfigError
from qcrd_bench.prompting import Job, TeacherError
from qcrd_bench.rationales import read_set
from qcrd_plugins.hf_teacher import HFTeacher, batch_seed, batches, load, model_key, render
from qcrd_plugins.tasks.prompts import MATH

PAD, EOS, UNK = "<pad>", "</s>", "<unk>"
CHAT = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}")
NO_SYSTEM = ("{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
             "{% endif %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}"
             "{% if add_generation_prompt %}[assistant]{% endif %}")


def tiny_tokenizer():
    import string

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=[PAD, EOS, UNK],
                                  initial_alphabet=list(string.printable), show_progress=False)
    # The prompt's own words, so the svamp prompt is a few hundred tokens, not a character each.
    tok.train_from_iterator([MATH.system, "Jack had 8 apples and ate 3. How many apples are left?"] * 4,
                            trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=PAD, eos_token=EOS, unk_token=UNK)


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory) -> Path:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    tokenizer = tiny_tokenizer()
    # A wide initialisation makes greedy replies differ from prompt to prompt (the default
    # one answers every prompt with the same token), so padding mistakes would show.
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=512, n_embd=32, n_layer=1, n_head=2,
                        initializer_range=0.3, bos_token_id=tokenizer.eos_token_id,
                        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    directory = tmp_path_factory.mktemp("tiny-gpt2")
    GPT2LMHeadModel(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def params(model: Path, cache: Path, **extra) -> dict:
    return {**HFTeacher.defaults, "model": str(model), "cache": str(cache), "samples": 2, "max_tokens": 8,
            "threads": 1, **extra}


def teach_args(model: Path, tmp_path: Path, name: str, *extra: str) -> list[str]:
    return ["teach", "--task", "svamp", "--teacher", "hf", "--set", f"teacher.model={model}",
            "--set", f"teacher.cache={tmp_path / 'gen.sqlite'}", "--set", "teacher.threads=1",
            "--limit", "3", "--samples", "2", "--set", "teacher.max_tokens=8",
            "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}", "-o", str(tmp_path / f"{name}.jsonl"),
            "--json", *extra]


@pytest.fixture
def svamp(mirror):
    from qcrd_plugins.tasks import Svamp

    task = Svamp()
    data = task.load(dict(Svamp.defaults))
    return task, TaskData(train=data.train[:3], val=[], test=[], params=data.params)


# ---------------------------------------------------------------- teach through the CLI


def test_teach_writes_the_set_and_a_second_teach_asks_for_nothing(tiny_lm, mirror, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first = CliRunner().invoke(main, teach_args(tiny_lm, tmp_path, "first"))
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["teacher/samples_requested"] == 6
    header, rows = read_set(tmp_path / "first.jsonl")
    assert header["teacher"] == "hf" and header["params"]["model"] == str(tiny_lm)
    assert header["prompt"]["system"] == MATH.system and len(header["prompt_sha256"]) == 64
    assert len(rows) == 3 and all(len(r["samples"]) == 2 for r in rows)

    def no_sampling(*args):
        raise AssertionError("a cached teach must not sample")

    monkeypatch.setattr(HFTeacher, "sample", no_sampling)
    second = CliRunner().invoke(main, teach_args(tiny_lm, tmp_path, "second"))
    assert second.exit_code == 0, second.output
    assert json.loads(second.stdout)["teacher/samples_requested"] == 0
    assert read_set(tmp_path / "second.jsonl")[1] == rows


@pytest.mark.parametrize("model, message", [
    ("{tmp}/no-such-model", "teacher.model: no such model directory"),
    ("{tmp}", "has no model weights"),
])
def test_missing_model_is_one_clear_line(model, message, tmp_path):
    result = CliRunner().invoke(main, teach_args(Path(model.format(tmp=tmp_path)), tmp_path, "x"))
    assert result.exit_code == 2
    assert result.stderr.startswith("error: teacher.model") and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_hub_name_not_cached_offline_names_teacher_model(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigError, match=r"teacher\.model: cannot load 'qcrd-test/no-such-model'.*offline"):
        load("qcrd-test/no-such-model", "cpu", "float32")


# ---------------------------------------------------------------- sampling


def replies(task, data, p) -> dict:
    return HFTeacher().rationales(task, data, p).replies


def test_same_seed_same_samples_on_fresh_caches(tiny_lm, svamp, tmp_path):
    task, data = svamp
    one = replies(task, data, params(tiny_lm, tmp_path / "a.sqlite"))
    two = replies(task, data, params(tiny_lm, tmp_path / "b.sqlite"))
    other = replies(task, data, params(tiny_lm, tmp_path / "c.sqlite", seed=1))
    assert one == two and one != other
    assert all(len(v) == 2 and v[0] != v[1] for v in one.values())  # two draws, not one copied
    assert len(set(tuple(v) for v in one.values())) == 3  # questions do not share a random stream


def test_greedy_replies_fill_every_index_and_do_not_depend_on_the_batch(tiny_lm, svamp, tmp_path):
    task, data = svamp
    batched = replies(task, data, params(tiny_lm, tmp_path / "g3.sqlite", temperature=0.0, samples=3, batch_size=3))
    alone = replies(task, data, params(tiny_lm, tmp_path / "g1.sqlite", temperature=0.0, samples=1, batch_size=1))
    assert all(len(v) == 3 and len(set(v)) == 1 for v in batched.values())
    # Left padding: a question padded in a batch gets the reply it gets alone.
    assert {k: v[:1] for k, v in batched.items()} == alone
    assert len({v[0] for v in alone.values()}) == 3


def test_samples_are_stored_as_each_batch_finishes(tiny_lm, svamp, tmp_path, monkeypatch):
    from transformers import GPT2LMHeadModel

    task, data = svamp
    calls, stored = [], []
    generate = GPT2LMHeadModel.generate

    def counted(self, *args, **kwargs):
        calls.append(1)
        return generate(self, *args, **kwargs)

    monkeypatch.setattr(GPT2LMHeadModel, "generate", counted)
    teacher, p = HFTeacher(), params(tiny_lm, tmp_path / "s.sqlite", batch_size=1)
    jobs = teacher._jobs(task, data, p, _NoCache())
    teacher.sample(jobs, p, lambda job, index, sample: stored.append((len(calls), job.example_id, index,
                                                                      0 < sample.tokens <= 8)))
    assert stored == [(i + 1, job.example_id, k, True) for i, job in enumerate(jobs) for k in range(2)]


def test_prompt_past_the_context_is_a_clear_error(tiny_lm, svamp, tmp_path):
    task, data = svamp
    with pytest.raises(TeacherError, match=r"teacher\.max_tokens=600 exceeds the model's context of 512"):
        HFTeacher().rationales(task, data, params(tiny_lm, tmp_path / "gen.sqlite", max_tokens=600))


class _NoCache:
    def get(self, key):
        return {}


# ---------------------------------------------------------------- prompts, batches, keys


def test_chat_template_renders_the_prompt():
    tokenizer = tiny_tokenizer()
    messages = MATH.messages("Jack had 8 apples.")
    assert render(tokenizer, messages) == f"{MATH.system}\n\nJack had 8 apples.\n"  # no template: plain text
    tokenizer.chat_template = CHAT
    assert render(tokenizer, messages) == f"<|system|>{MATH.system}\n<|user|>Jack had 8 apples.\n<|assistant|>"
    tokenizer.chat_template = NO_SYSTEM  # a template without a system role gets it folded into the user turn
    assert render(tokenizer, messages) == f"[user] {MATH.system}\n\nJack had 8 apples.\n[assistant]"


def test_batches_group_equal_sample_counts():
    jobs = [Job(str(i), str(i), [], indices, 0) for i, indices in enumerate([(0, 1), (1,), (0, 1), (0, 1)])]
    assert [[j.key for j in b] for b in batches(jobs, 2, sampled=True)] == [["0", "2"], ["3"], ["1"]]
    assert [[j.key for j in b] for b in batches(jobs, 3, sampled=False)] == [["0", "1", "2"], ["3"]]
    assert batch_seed(jobs[:1]) != batch_seed(jobs[2:3]) and batch_seed(jobs[:1]) == batch_seed(jobs[:1])


def test_cache_key_names_the_weights_device_and_dtype(tiny_lm, monkeypatch):
    monkeypatch.chdir(tiny_lm.parent)
    key = HFTeacher().sampling({**HFTeacher.defaults, "model": tiny_lm.name, "device": "cpu"})
    assert key["model"] == str(tiny_lm.resolve()) and key["device"] == "cpu" and key["dtype"] == "float32"
    assert model_key("org/name") == "org/name"


@pytest.mark.parametrize("change, key", [
    ({"batch_size": 0}, "teacher.batch_size"), ({"threads": 0}, "teacher.threads"),
    ({"device": "tpu"}, "teacher.device"), ({"dtype": "int8"}, "teacher.dtype"), ({"model": ""}, "teacher.model"),
])
def test_bad_parameters_name_the_key(change, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        HFTeacher().check({**HFTeacher.defaults, "model": "org/name", **change})
