"""The ``synthetic`` teacher: K rationales per ``synth-arith`` question with noise of known
kinds and rates, as a controlled stand-in for an LLM.

Each sample is drawn, independently, as one of:

- dynamic (``p_dynamic``): one step goes wrong (a wrong operation, a distractor's number,
  or a result off by 1-3) and the error carries through to a wrong final answer;
- static (``p_static``): one number in the text is wrong (an intermediate result or the
  start), but the later steps and the final answer stay right: unfaithful, right answer;
- irrelevant (``p_irrelevant``): a true but irrelevant sentence is inserted;
- clean otherwise.

For a ``q_systematic`` share of questions every sample carries the same misconception (a
transfer in the wrong direction, a gain as a loss, a doubling as an addition) instead, so
the majority answer is wrong.  With ``systematic_kind`` (an event kind: give, gain, lose,
times) the misconception is always that kind's step done the wrong way, and hits that share
of the questions that have such a step: at ``q_systematic`` = 1 the teacher is consistently
wrong about one kind of event, an error the student can learn, where independent errors
average out.  ``phrasings`` sets how many wordings the steps use.

Methods see only each sample's text and the answer parsed from its reply, as from a real
LLM.  What noise a sample carries is never part of a Rationale; the run's diagnostics label
every rationale with the task's checker instead (which labels each injected kind as itself,
tests/test_synth.py), and the realised rates of the injected kinds are logged as
``data/teacher_injected_*``.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any

from qcrd_bench.components import Rationale, Task, TaskData, Teacher, TeacherOutput
from qcrd_bench.errors import ConfigError
from qcrd_bench.hookspecs import hookimpl

from .tasks.synth_arith import (KINDS, STEP_PHRASINGS, Event, Problem, apply_op, event_op, start_text, step_text)

NOISE = ("clean", "dynamic", "static", "irrelevant", "systematic")


@dataclass(frozen=True)
class Step:
    """One step as a rationale writes it: ``event`` worked from ``before`` with ``op`` and
    ``amount`` to ``after`` (``shown`` is the result the text prints, if different)."""

    event: Event
    before: int
    op: str
    amount: int
    after: int
    shown: int | None = None


def true_steps(problem: Problem) -> tuple[int, list[Step]]:
    value = start = problem.start[problem.asked]
    steps = []
    for event in problem.relevant():
        op = event_op(event, problem.asked)
        after = apply_op(value, op, event.amount)
        steps.append(Step(event, value, op, event.amount, after))
        value = after
    return start, steps


def carry(steps: list[Step], index: int, changed: Step) -> list[Step]:
    """``steps`` with step ``index`` replaced and every later step worked from its result."""
    out = steps[:index] + [changed]
    value = changed.after
    for step in steps[index + 1:]:
        after = apply_op(value, step.op, step.amount)
        out.append(replace(step, before=value, after=after))
        value = after
    return out


FLIP = {"+": "-", "-": "+", "*": "+"}  # a gain as a loss, a transfer reversed, a doubling as an addition


# The checker's label (synth_check.LABELS) of each injected kind, and of each way a dynamic
# error goes wrong: what a test holds the checker to.
EXPECTED = {"clean": "valid", "static": "unfaithful-right-answer", "irrelevant": "irrelevant-step",
            "systematic": "wrong-operation"}
DYNAMIC = {"operation": "wrong-operation", "distractor": "uses-distractor", "arithmetic": "arithmetic-error"}


def dynamic_error(problem: Problem, steps: list[Step], rng: random.Random) -> tuple[list[Step], str]:
    """One step gone wrong, carried to a wrong final answer, and the checker's label for
    how it went wrong (a value of ``DYNAMIC``)."""
    gold = problem.answer
    foreign = sorted({e.amount for e in problem.distractors()})
    for _ in range(20):
        index = rng.randrange(len(steps))
        step = steps[index]
        kinds = ["operation", "arithmetic"]
        if step.op != "*" and any(n != step.amount for n in foreign):
            kinds.append("distractor")
        kind = rng.choice(kinds)
        if kind == "operation":
            op = FLIP[step.op]
            changed = replace(step, op=op, after=apply_op(step.before, op, step.amount))
        elif kind == "distractor":
            amount = rng.choice([n for n in foreign if n != step.amount])
            changed = replace(step, amount=amount, after=apply_op(step.before, step.op, amount))
        else:
            changed = replace(step, after=nudge(step.after, rng))
        wrong = carry(steps, index, changed)
        if wrong[-1].after != gold:
            return wrong, DYNAMIC[kind]
    last = steps[-1]  # a last result off by some amount always changes the answer
    return carry(steps, len(steps) - 1, replace(last, after=nudge(last.after, rng))), DYNAMIC["arithmetic"]


def systematic_error(problem: Problem, steps: list[Step], rng: random.Random, kind: str = "") -> list[Step] | None:
    """The question's one misconception: a transfer the wrong way round if there is one, else
    the first other step's operation flipped; with ``kind``, only a step of that kind is
    flipped.  None if there is no such step or the flip would leave the answer right."""
    if kind:
        candidates = [i for i, s in enumerate(steps) if s.event.kind == kind]
    else:
        candidates = [i for i, s in enumerate(steps) if s.event.kind == "give"] + list(range(len(steps)))
    for index in candidates:
        step = steps[index]
        op = FLIP[step.op]
        wrong = carry(steps, index, replace(step, op=op, after=apply_op(step.before, op, step.amount)))
        if wrong[-1].after != problem.answer:
            return wrong
    return None


def render(problem: Problem, start: int, steps: list[Step], rng: random.Random, phrasings: int,
           start_shown: int | None = None) -> list[str]:
    sentences = [start_text(problem.asked, start if start_shown is None else start_shown, rng.randrange(phrasings))]
    for step in steps:
        sentences.append(step_text(step.event, problem.asked, step.before,
                                   step.after if step.shown is None else step.shown, op=step.op, amount=step.amount,
                                   phrasing=rng.randrange(phrasings)))
    return sentences


def static_error(problem: Problem, start: int, steps: list[Step], rng: random.Random,
                 phrasings: int) -> list[str]:
    """A wrong number in the text that the chain does not use: a non-final result, or the start."""
    position = rng.randrange(len(steps))  # 0: the start; i > 0: the result of step i - 1
    if position == 0:
        return render(problem, start, steps, rng, phrasings, start_shown=nudge(start, rng))
    index = position - 1
    steps = steps[:index] + [replace(steps[index], shown=nudge(steps[index].after, rng))] + steps[index + 1:]
    return render(problem, start, steps, rng, phrasings)


def nudge(value: int, rng: random.Random) -> int:
    """``value`` off by 1 to 3, never below 0."""
    off = rng.choice((1, 2, 3))
    return value - off if value - off >= 0 and rng.random() < 0.5 else value + off


def irrelevant_sentence(problem: Problem, rng: random.Random, phrasings: int) -> str:
    """A true sentence the chain does not need: another person's start, or a distractor
    event worked out for its own person."""
    history = problem.counts()
    before = dict(zip(map(id, problem.events), history))
    options = [start_text(p, n, rng.randrange(phrasings)) for p, n in problem.start.items() if p != problem.asked]
    for event in problem.distractors():
        value = before[id(event)][event.person]
        op = event_op(event, event.person)
        options.append(step_text(event, event.person, value, apply_op(value, op, event.amount),
                                 phrasing=rng.randrange(phrasings) if event.kind != "give" else 0))
    return rng.choice(options)


def sample_rationale(problem: Problem, kind: str, rng: random.Random, phrasings: int,
                     misconception: list[Step] | None = None) -> tuple[str, int, str]:
    """(text, the answer it reaches, the checker's label it was made to have) of one sample
    of noise ``kind``.  The label is for tests and diagnostics: it never enters a Rationale."""
    start, steps = true_steps(problem)
    label = EXPECTED["clean"]
    if kind == "dynamic":
        steps, label = dynamic_error(problem, steps, rng)
    elif kind == "systematic" and misconception is not None:
        steps, label = misconception, EXPECTED["systematic"]
    if kind == "static":
        sentences, label = static_error(problem, start, steps, rng, phrasings), EXPECTED["static"]
    else:
        sentences = render(problem, start, steps, rng, phrasings)
    if kind == "irrelevant":
        # Anywhere after the start and before the last step, so the last result stays the answer.
        sentences.insert(rng.randint(1, len(sentences) - 1), irrelevant_sentence(problem, rng, phrasings))
        label = EXPECTED["irrelevant"]
    return " ".join(sentences), steps[-1].after, label


class Synthetic(Teacher):
    name = "synthetic"
    description = ("K noisy rationales per synth-arith question with noise of known kinds and rates "
                   "(p_dynamic, p_static, p_irrelevant, q_systematic, systematic_kind)")
    # seed -1: the run's seed (teach: 0), so the methods of one seed see the same samples.
    defaults = {"samples": 5, "p_dynamic": 0.0, "p_static": 0.0, "p_irrelevant": 0.0, "q_systematic": 0.0,
                "systematic_kind": "", "phrasings": 1, "seed": -1}

    def check(self, params: dict[str, Any]) -> None:
        for key in ("p_dynamic", "p_static", "p_irrelevant", "q_systematic"):
            if not 0 <= params[key] <= 1:
                raise ConfigError(f"teacher.{key}: a probability in [0, 1], got {params[key]}")
        total = params["p_dynamic"] + params["p_static"] + params["p_irrelevant"]
        if total > 1 + 1e-9:
            raise ConfigError(f"teacher.p_dynamic + p_static + p_irrelevant: at most 1 (each sample carries one "
                              f"kind of noise), got {total:g}")
        if params["samples"] < 1:
            raise ConfigError(f"teacher.samples: must be >= 1, got {params['samples']}")
        if params["systematic_kind"] not in ("", *KINDS):
            raise ConfigError(f"teacher.systematic_kind: an event kind ({', '.join(KINDS)}) or empty for any, "
                              f"got {params['systematic_kind']!r}")
        if not 1 <= params["phrasings"] <= STEP_PHRASINGS:
            raise ConfigError(f"teacher.phrasings: must be in [1, {STEP_PHRASINGS}], got {params['phrasings']}")

    def rationales(self, task: Task, data: TaskData, params: dict[str, Any]) -> TeacherOutput:
        if not hasattr(task, "problem"):
            raise ConfigError(f"teacher 'synthetic' writes rationales for generated tasks (synth-arith), "
                              f"not for {task.name!r}")
        seed = max(params["seed"], 0)
        rationales, replies, injected = {}, {}, Counter()
        for example in data.train:
            problem = task.problem(example, data.params)
            rng = random.Random(f"synthetic/{seed}/{example.id}")
            misconception = None
            if rng.random() < params["q_systematic"]:
                misconception = systematic_error(problem, true_steps(problem)[1], rng, params["systematic_kind"])
            samples, texts = [], []
            for _ in range(params["samples"]):
                kind = "systematic" if misconception is not None else draw_kind(rng, params)
                text, answer, _ = sample_rationale(problem, kind, rng, params["phrasings"], misconception)
                injected[kind] += 1
                samples.append(Rationale(text, float(answer), origin="synthetic"))
                texts.append(f"<Explanation>: {text} <Answer>: {answer}")
            rationales[example.id], replies[example.id] = samples, texts
        total = max(sum(injected.values()), 1)
        stats = {f"teacher_injected_{kind}": injected[kind] / total for kind in NOISE}
        return TeacherOutput(rationales=rationales, stats=stats, replies=replies, prompt=task.prompt)


def draw_kind(rng: random.Random, params: dict[str, Any]) -> str:
    u = rng.random()
    for kind in ("dynamic", "static", "irrelevant"):
        if u < params[f"p_{kind}"]:
            return kind
        u -= params[f"p_{kind}"]
    return "clean"


@hookimpl
def register_teachers(register):
    register(Synthetic())
