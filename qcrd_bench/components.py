"""The data types that flow between components, and the interface of each kind
of component.  A plugin implements one of the base classes below and registers an
instance through the matching ``register_*`` hook (see :mod:`qcrd_bench.hookspecs`).

Every component has a ``name`` (how configs refer to it) and ``defaults`` (its
parameters, which become the config keys ``<slot>.<param>``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, ClassVar

# The DSS task prefixes (re-exported by qcrd_bench.evaluation, their historical home).
PREDICT = "predict: "
EXPLAIN = "explain: "


# ---------------------------------------------------------------- data types


@dataclass(frozen=True)
class Example:
    """One question.  ``input`` is the model input without task prefix; ``label``
    the gold target text; ``answer`` the gold answer as the task compares it.
    ``source`` locates the row in the published file (split, row) so rationale
    files aligned row by row can be joined."""

    id: str
    input: str
    label: str
    answer: Any
    source: tuple[str, int]


@dataclass(frozen=True)
class Rationale:
    """A teacher or student rationale and the answer parsed from the same output
    (None when the output gave no parseable answer)."""

    text: str
    answer: Any = None
    origin: str = "teacher"


@dataclass
class TaskData:
    train: list[Example]
    val: list[Example]
    test: list[Example]
    files: dict[str, str] = field(default_factory=dict)  # data file -> sha256
    notes: dict[str, Any] = field(default_factory=dict)  # how splits were made
    params: dict[str, Any] = field(default_factory=dict)  # the task parameters it was loaded with

    def splits(self) -> dict[str, list[Example]]:
        return {"train": self.train, "val": self.val, "test": self.test}


@dataclass
class TeacherOutput:
    """Rationales per example id, plus statistics logged as ``data/*`` metrics.  A
    prompted teacher also returns the raw replies and the prompt it used."""

    rationales: dict[str, list[Rationale]]
    stats: dict[str, float] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)  # files read -> sha256
    replies: dict[str, list[str]] = field(default_factory=dict)
    prompt: PromptTemplate | None = None


@dataclass(frozen=True)
class PromptTemplate:
    """How a prompted teacher asks for one question's rationale: a system message and
    a user message with an ``{input}`` slot, and the markers its reply must use
    ("<Explanation>: ... <Answer>: ...", the paper's Fig. 3 format)."""

    system: str
    user: str
    explanation_marker: str = "<Explanation>:"
    answer_marker: str = "<Answer>:"

    def messages(self, text: str) -> list[dict[str, str]]:
        # str.replace, not str.format: a question may contain braces.
        return [{"role": "system", "content": self.system},
                {"role": "user", "content": self.user.replace("{input}", text)}]

    def sha256(self) -> str:
        return hashlib.sha256(json.dumps([self.system, self.user, self.explanation_marker, self.answer_marker])
                              .encode()).hexdigest()

    def split(self, reply: str) -> tuple[str, str | None]:
        """(explanation, answer text) of a reply; the answer is None without the answer marker."""
        head, marker, answer = reply.rpartition(self.answer_marker)
        if not marker:
            return reply.replace(self.explanation_marker, "", 1).strip(), None
        return head.replace(self.explanation_marker, "", 1).strip(), answer.strip()


# ---------------------------------------------------------------- components


class Component:
    name: ClassVar[str]
    description: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}

    def check(self, params: dict[str, Any]) -> None:
        """Reject invalid parameters with a ConfigError naming the key.  Called when the
        config is resolved, so ``--dry-run`` catches them and no run is opened."""


class Task(Component):
    """A dataset, its model input text and its answer scoring.

    A task whose rationales come from a teacher of its own (a generated task) names it in
    ``default_teacher``: it replaces the published teacher a method names (never ``none``),
    after the method's defaults and before the preset.  ``default_preset`` is the preset a
    run of the task gets when none is given.  A task that can check a rationale against
    its question (``check_rationale``, a label such as ``valid``) gets ground-truth
    diagnostics in every run."""

    prompt: ClassVar[PromptTemplate | None] = None  # how prompted teachers ask (None: not supported)
    default_teacher: ClassVar[str | None] = None
    default_preset: ClassVar[str | None] = None

    def prompt_input(self, example: Example, params: dict[str, Any]) -> str:
        """The question as a prompted teacher sees it (default: the model input)."""
        return example.input

    def load(self, params: dict[str, Any]) -> TaskData:
        raise NotImplementedError

    def parse_answer(self, text: str) -> Any:
        """The answer in a model output, or None when it has no answer in the
        expected form.  Model output is data: never executed."""
        raise NotImplementedError

    def parse_answer_flexible(self, text: str) -> Any:
        """A lenient reading of a model output (e.g. the last number anywhere in it),
        reported beside the strict one as ``accuracy_flexible``.  Default: strict."""
        return self.parse_answer(text)

    def extract_answer(self, text: str, example: Example, flexible: bool = False) -> Any:
        """The answer ``text`` gives to ``example``; what scoring and teachers call.
        Override when the answer depends on the question (e.g. a choice letter)."""
        return self.parse_answer_flexible(text) if flexible else self.parse_answer(text)

    def answers_match(self, predicted: Any, gold: Any) -> bool:
        return predicted is not None and predicted == gold

    def format_answer(self, answer: Any) -> str:
        """An answer (as ``extract_answer`` returns it) written as a training target that
        ``parse_answer`` reads back: how a teacher's answer becomes a label."""
        return str(answer)

    def rationale_answer(self, text: str) -> Any:
        """The answer a rationale reaches (default: the flexible reading of it, e.g. its
        last number); ``test/rationale_answer_accuracy`` compares it with gold."""
        return self.parse_answer_flexible(text)

    # A task with a checker also defines
    #   check_rationale(example, text, params) -> str   one of its labels, "valid" when right
    # (see plugins/qcrd_plugins/tasks/synth_check.py); ``params`` are the task's parameters.


class Teacher(Component):
    """A rationale source: published rationale sets, an LLM, a local model."""

    def rationales(self, task: Task, data: TaskData, params: dict[str, Any]) -> TeacherOutput:
        raise NotImplementedError


class PositiveFilter(Component):
    """Splits one question's teacher rationales into positives and teacher negatives."""

    def split(
        self, example: Example, rationales: list[Rationale], task: Task, params: dict[str, Any]
    ) -> tuple[list[Rationale], list[Rationale]]:
        raise NotImplementedError


class NegativeGenerator(Component):
    """Supplies negative rationales during training (teacher minority, self-play, ...).

    ``session`` is called once per run and returns an object with
    ``negatives(examples: list[Example], step: int) -> list[list[str]]`` (one list per
    example) and ``samples() -> list[dict]`` (rows for the run's sample tables).  A session
    that keeps state across steps also has ``state_dict()`` / ``load_state_dict(state)``
    (tensors and plain values) so a resumed run gets it back.
    ``lag`` (None: no lag) is how many iterations behind the student its generator is.
    """

    def lag(self, params: dict[str, Any]) -> int | None:
        return None

    def session(self, context: "TrainContext", params: dict[str, Any]) -> Any:
        raise NotImplementedError


class Discriminator(Component):
    """Scores the quality of (question, rationale) pairs in [0, 1].

    ``session`` returns an object with ``scores(inputs: list[str], rationales: list[str])``
    -> tensor [N] (differentiable w.r.t. its own parameters), ``parameters()`` (empty
    when it does not learn), ``step(lr_scale)`` and ``pretrain(log)``; one that learns also has
    ``state_dict()`` / ``load_state_dict(state)`` for checkpoints.  ``session`` returns None
    for "no judge": every rationale then weighs 1 in both terms of the loss.
    ``learns`` says whether its session has an optimizer of its own (mixed precision checks it).
    """

    learns: ClassVar[bool] = True

    def session(self, context: "TrainContext", params: dict[str, Any]) -> Any:
        raise NotImplementedError


class Loss(Component):
    """A training objective over per-sequence negative log-likelihoods.

    ``uses_rationales`` tells the trainer whether to compute rationale NLLs at all,
    ``uses_negatives`` whether to ask the negative generator and score with the
    discriminator; ``selects(params)`` whether only the arg-min positive and arg-max
    negative of each example need gradients (see ``qcrd_bench.training``), and
    ``negative_margin(params)`` the NLL above which a negative carries no gradient (a hinge's
    margin; None: every negative may).  The label side
    is the loss's too: ``predict_prefix``, ``label_target``, ``answer_text`` and
    ``max_new_tokens`` say what is trained and decoded and where the answer is read (the
    defaults: ``predict: x`` -> gold label, the whole output is the answer).
    """

    uses_rationales: ClassVar[bool] = False
    uses_negatives: ClassVar[bool] = False
    predict_prefix: ClassVar[str] = PREDICT  # prefix of the label-side input, in training and evaluation

    def selects(self, params: dict[str, Any]) -> bool:
        return False

    def negative_margin(self, params: dict[str, Any]) -> float | None:
        return None

    def label_target(self, example: Example, positives: list[Rationale], task: Task) -> str | None:
        """The label-side target of ``example`` (default: the gold label); None leaves the
        example out of training (counted as ``data/dropped_no_teacher_label``)."""
        return example.label

    def answer_text(self, output: str) -> str | None:
        """The part of a decoded output the task's strict extractor reads (default: all of it);
        None when the output has no answer in the loss's format.  The flexible extractor
        always reads the whole output."""
        return output

    def max_new_tokens(self, cfg: dict) -> int:
        """How many tokens evaluation decodes from the label-side input."""
        return cfg["eval"]["max_new_tokens"]

    def rationale_text(self, output: str) -> str | None:
        """The rationale in a decoded label-side output, for a loss that trains none on the
        ``explain:`` side (default: None, no rationale)."""
        return None

    def __call__(self, inputs: "LossInputs", params: dict[str, Any]) -> "LossOutput":
        raise NotImplementedError

    def describe(self, params: dict[str, Any]) -> str:
        """The loss as a readable formula, e.g. ``0.5·L_pred + 0.5·L_explain``."""
        return self.name


class StudentBuilder(Component):
    """Builds a named student (model + tokenizer) from a config."""

    def build(self, params: dict[str, Any], train_texts: list[str], seed: int):
        raise NotImplementedError


@dataclass
class LossInputs:
    """Per-sequence token-mean NLLs the trainer computed for one batch.

    label_nll:  [B]   NLL of the label target from ``predict: x``.
    pos_nll:    [P]   NLL of each positive rationale from ``explain: x``.
    pos_owner:  [P]   index in 0..B-1 of the example each positive belongs to.
    pos_score:  [P]   discriminator score of each positive (detached).
    neg_nll / neg_owner / neg_score: the same for negatives ([N], may be empty).
    """

    label_nll: Any
    pos_nll: Any = None
    pos_owner: Any = None
    pos_score: Any = None
    neg_nll: Any = None
    neg_owner: Any = None
    neg_score: Any = None
    disc_loss: Any = None  # L_D of the discriminator on this batch (scalar tensor), if it learns
    iteration: int = 0  # index of the current block of ``iteration_steps`` optimizer steps


@dataclass
class TrainContext:
    """What negative generators and discriminators may use during a run."""

    student: Any  # qcrd_bench.students.Student (model may be updated in place)
    task: "Task"
    train: list[Example]
    positives: dict[str, list[Rationale]]
    teacher_negatives: dict[str, list[Rationale]]
    config: dict
    device: Any
    iteration_steps: int


@dataclass
class LossOutput:
    total: Any
    terms: dict[str, Any]  # named scalar tensors, logged as train/<name>


@dataclass(frozen=True)
class Method:
    """A named recipe: which component fills each slot, plus config defaults
    (dotted keys, e.g. ``{"loss.alpha": 0.5}``) applied before presets."""

    name: str
    description: str
    teacher: str
    positive_filter: str
    negative_generator: str
    discriminator: str
    loss: str
    defaults: dict[str, Any] = field(default_factory=dict)

    def slots(self) -> dict[str, str]:
        return {
            "teacher": self.teacher,
            "positive_filter": self.positive_filter,
            "negatives": self.negative_generator,
            "discriminator": self.discriminator,
            "loss": self.loss,
        }
