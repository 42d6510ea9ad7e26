"""``synth-arith``: word problems generated from a seed, shaped like SVAMP's, where the
correctness of every rationale is known.

A problem has 2-3 people with one kind of object and starting counts, ``events`` events
that change the count of the person asked about (give k to someone, buy or find k, lose
or eat k, double or triple), 0-``max_distractors`` events that do not involve that person,
and a question about that person placed first or last.  Each sentence has several
phrasings (``phrasings``).  The gold rationale walks the asked person's count in checkable
steps::

    Mary starts with 5. Jack gives Mary 3: 5 + 3 = 8. Mary eats 2: 8 - 2 = 6.

and the label is the final count, ``6``.  Nothing is downloaded: the splits are a pure
function of the task parameters, whose hash names the data (``TaskData.files``).
:mod:`.synth_check` reads any rationale against its problem.
"""

from __future__ import annotations

import functools
import hashlib
import json
import random
from dataclasses import dataclass
from typing import Any

from qcrd_bench.components import Example, Rationale, TaskData
from qcrd_bench.errors import ConfigError

from .arithmetic import NumericTask
from .common import take_fraction

NAMES = ("Mary", "Jack", "Omar", "Lena", "Ravi", "Sofia", "Tom", "Aiko", "Ben", "Chloe", "Diego", "Emma", "Felix",
         "Grace", "Hugo", "Ines", "Jonas", "Kira", "Liam", "Maya", "Noah", "Olga", "Pedro", "Rosa")
FOOD = ("apples", "cookies", "candies", "oranges", "muffins", "grapes")
THINGS = ("marbles", "stickers", "pencils", "cards", "shells", "coins")
KINDS = ("give", "gain", "lose", "times")

# Story sentences, one list per kind; the first `phrasings` of each list are used.
# {p}: the person, {q}: the other person of a transfer, {k}: the amount, {o}: the object.
START = ("{p} has {n} {o}.", "{p} starts with {n} {o}.", "At first, {p} has {n} {o}.", "{p} owns {n} {o}.",
         "{p} begins the day with {n} {o}.", "There are {n} {o} in the bag of {p}.")
GIVE = ("{p} gives {q} {k} {o}.", "{p} hands {k} {o} to {q}.", "{q} gets {k} {o} from {p}.",
        "{p} passes {k} {o} to {q}.", "{q} receives {k} {o} from {p}.", "{p} shares {k} {o} with {q}.")
GAIN = {"buys": ("{p} buys {k} {o}.", "{p} buys {k} more {o}.", "Then {p} buys {k} {o} at the store.",
                 "{p} purchases {k} {o}.", "Later, {p} buys another {k} {o}.", "{p} goes shopping and buys {k} {o}."),
        "finds": ("{p} finds {k} {o}.", "{p} finds {k} more {o}.", "Then {p} finds {k} {o} on the way home.",
                  "{p} discovers {k} {o}.", "Later, {p} finds another {k} {o}.", "{p} picks up {k} {o} from the floor.")}
LOSE = {"eats": ("{p} eats {k} {o}.", "{p} eats {k} of the {o}.", "Then {p} eats {k} {o}.",
                 "{p} has {k} {o} for lunch.", "Later, {p} eats {k} {o}.", "{p} snacks on {k} {o}."),
        "loses": ("{p} loses {k} {o}.", "{p} loses {k} of the {o}.", "Then {p} loses {k} {o}.",
                  "{p} drops {k} {o} and cannot find them.", "Later, {p} loses {k} {o}.", "{p} misplaces {k} {o}.")}
TIMES = {2: ("The {o} of {p} double.", "{p} doubles the number of {o}.", "{p} now has twice as many {o}.",
             "The number of {o} {p} has doubles.", "{p} ends up with twice as many {o} as before.",
             "{p} gets enough {o} to double them."),
         3: ("The {o} of {p} triple.", "{p} triples the number of {o}.", "{p} now has three times as many {o}.",
             "The number of {o} {p} has triples.", "{p} ends up with three times as many {o} as before.",
             "{p} gets enough {o} to triple them.")}
QUESTION = ("How many {o} does {p} have now?", "How many {o} does {p} have at the end?",
            "How many {o} does {p} end up with?", "In the end, how many {o} does {p} have?",
            "What is the number of {o} that {p} has now?", "Count the {o} of {p} at the end.")
MAX_PHRASINGS = len(START)


@dataclass(frozen=True)
class Event:
    """One story event.  ``kind``: give (``person`` gives ``amount`` to ``other``), gain, lose
    (``person``'s count changes by ``amount``) or times (it is multiplied by ``amount``).
    ``verb`` is the surface verb (buys, finds, eats, loses), ``phrasing`` its sentence."""

    kind: str
    person: str
    amount: int
    other: str = ""
    verb: str = ""
    phrasing: int = 0

    def involves(self, who: str) -> bool:
        return who in (self.person, self.other)

    def apply(self, counts: dict[str, int]) -> dict[str, int]:
        counts = dict(counts)
        if self.kind == "give":
            counts[self.person] -= self.amount
            counts[self.other] += self.amount
        elif self.kind == "gain":
            counts[self.person] += self.amount
        elif self.kind == "lose":
            counts[self.person] -= self.amount
        else:
            counts[self.person] *= self.amount
        return counts

    def sentence(self, obj: str) -> str:
        templates = {"give": GIVE, "gain": GAIN.get(self.verb), "lose": LOSE.get(self.verb),
                     "times": TIMES.get(self.amount)}[self.kind]
        return templates[self.phrasing].format(p=self.person, q=self.other, k=self.amount, o=obj)


@dataclass(frozen=True)
class Problem:
    """A generated word problem: who starts with what, the events in story order
    (distractors included), who is asked about, and how the text was laid out."""

    people: tuple[str, ...]
    obj: str
    starts: tuple[int, ...]  # in the order of ``people``
    events: tuple[Event, ...]
    asked: str
    question_first: bool
    start_phrasing: int
    question_phrasing: int

    @property
    def start(self) -> dict[str, int]:
        return dict(zip(self.people, self.starts))

    def counts(self) -> list[dict[str, int]]:
        """Everyone's counts before the first event and after each one."""
        history = [self.start]
        for event in self.events:
            history.append(event.apply(history[-1]))
        return history

    @property
    def answer(self) -> int:
        return self.counts()[-1][self.asked]

    def relevant(self) -> list[Event]:
        return [e for e in self.events if e.involves(self.asked)]

    def distractors(self) -> list[Event]:
        return [e for e in self.events if not e.involves(self.asked)]

    def text(self) -> str:
        story = [START[self.start_phrasing].format(p=p, n=n, o=self.obj) for p, n in zip(self.people, self.starts)]
        story += [e.sentence(self.obj) for e in self.events]
        question = QUESTION[self.question_phrasing].format(p=self.asked, o=self.obj)
        return " ".join([question, *story] if self.question_first else [*story, question])


# ---------------------------------------------------------------- rationales in step form


# A rationale's wording: its start sentence and the description before each step's colon,
# in 4 phrasings each (the gold rationale uses the first; a teacher varies them).
START_STEP = ("{p} starts with {n}.", "{p} has {n} at first.", "At first, {p} has {n}.", "{p} begins with {n}.")
DESCRIBE = {"give": ("{p} gives {q} {k}", "{q} gets {k} from {p}", "{p} hands {k} to {q}", "{q} receives {k} from {p}"),
            "gain": ("{p} {v} {k}", "{p} gets {k} more", "Then {p} {v} {k}", "{p} now has {k} more"),
            "lose": ("{p} {v} {k}", "{p} has {k} fewer", "Then {p} {v} {k}", "{p} now has {k} less"),
            "times": ("{p} {v}", "The count of {p} {v}", "Then {p} {v}", "{p} now {v}")}
STEP_PHRASINGS = len(START_STEP)


def start_text(person: str, value: int, phrasing: int = 0) -> str:
    return START_STEP[phrasing].format(p=person, n=value)


def step_text(event: Event, asked: str, before: int, after: int, op: str | None = None,
              amount: int | None = None, phrasing: int = 0) -> str:
    """One step of the asked person's count: ``Jack gives Mary 3: 5 + 3 = 8.``  ``op`` and
    ``amount`` default to the event's own (a teacher's error may change them)."""
    op = op or event_op(event, asked)
    amount = event.amount if amount is None else amount
    return f"{describe(event, amount, phrasing)}: {before} {op} {amount} = {after}."


def describe(event: Event, amount: int, phrasing: int = 0) -> str:
    verb = event.verb
    if event.kind == "times":
        verb = {2: "doubles", 3: "triples"}.get(amount, f"multiplies by {amount}")
    return DESCRIBE[event.kind][phrasing].format(p=event.person, q=event.other, k=amount, v=verb)


def event_op(event: Event, asked: str) -> str:
    """The operation an event applies to ``asked``'s count."""
    if event.kind == "give":
        return "-" if event.person == asked else "+"
    return {"gain": "+", "lose": "-", "times": "*"}[event.kind]


def apply_op(value: int, op: str, amount: int) -> int:
    return value + amount if op == "+" else value - amount if op == "-" else value * amount


def gold_steps(problem: Problem) -> list[str]:
    """The gold rationale's sentences: the asked person's start, then one step per event of theirs."""
    value = problem.start[problem.asked]
    steps = [start_text(problem.asked, value)]
    for event in problem.relevant():
        after = apply_op(value, event_op(event, problem.asked), event.amount)
        steps.append(step_text(event, problem.asked, value, after))
        value = after
    return steps


def gold_rationale(problem: Problem) -> str:
    return " ".join(gold_steps(problem))


# ---------------------------------------------------------------- generation


def generator_params(params: dict[str, Any]) -> dict[str, Any]:
    """The parameters that define the generated data (not the training subset)."""
    return {k: params[k] for k in GENERATOR_KEYS}


def params_hash(params: dict[str, Any]) -> str:
    """The data's identity: the generator's parameters and what the label is."""
    identity = {**generator_params(params), "target": params["target"]}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]


def generate_splits(params: dict[str, Any]) -> dict[str, list[Problem]]:
    """Train, validation and test problems, no text repeated across or within splits."""
    return _generate(json.dumps(generator_params(params), sort_keys=True))


@functools.lru_cache(maxsize=8)
def _generate(key: str) -> dict[str, list[Problem]]:
    params = json.loads(key)
    rng = random.Random(f"synth-arith/{params['data_seed']}")
    seen: set[str] = set()
    splits: dict[str, list[Problem]] = {}
    for split in ("train", "val", "test"):
        wanted, problems, attempts = params[f"{split}_size"], [], 0
        while len(problems) < wanted:
            attempts += 1
            if attempts > 50 * wanted + 1000:
                raise ConfigError(f"task synth-arith: only {len(problems)} distinct {split} problems could be made "
                                  f"of the {wanted} asked for; widen the number ranges or add people, events or "
                                  f"phrasings")
            problem = make_problem(rng, params)
            text = problem.text() if problem is not None else None
            if text is not None and text not in seen:
                seen.add(text)
                problems.append(problem)
        splits[split] = problems
    return splits


def make_problem(rng: random.Random, params: dict[str, Any]) -> Problem | None:
    """One random problem, or None when the draw broke a bound (the caller draws again)."""
    people = tuple(rng.sample(NAMES[: params["names"]], rng.randint(params["people_min"], params["people_max"])))
    obj = rng.choice(FOOD + THINGS)
    starts = tuple(rng.randint(params["start_min"], params["start_max"]) for _ in people)
    asked = rng.choice(people)
    others = [p for p in people if p != asked]
    kinds = [k.strip() for k in params["kinds"].split(",")]
    phrasings = params["phrasings"]
    relevant = [random_event(rng, asked, others, kinds, params, obj, phrasings) for _ in range(params["events"])]
    distractors = []
    for _ in range(rng.randint(0, params["max_distractors"])):
        person = rng.choice(others)
        distractors.append(random_event(rng, person, [p for p in others if p != person], kinds, params, obj,
                                        phrasings, allow_give=len(others) > 1))
    events = relevant[:]
    for event in distractors:  # distractors fall anywhere among the asked person's events
        events.insert(rng.randint(0, len(events)), event)
    problem = Problem(people, obj, starts, tuple(events), asked, rng.random() < params["question_first"],
                      rng.randrange(phrasings), rng.randrange(phrasings))
    bound = params["max_value"]
    if any(not 0 <= n <= bound for counts in problem.counts() for n in counts.values()):
        return None
    return problem


def random_event(rng: random.Random, person: str, others: list[str], kinds: list[str], params: dict[str, Any],
                 obj: str, phrasings: int, allow_give: bool = True) -> Event:
    choices = [k for k in kinds if k != "give" or (others and allow_give)] or ["gain"]
    kind = rng.choice(choices)
    phrasing = rng.randrange(phrasings)
    if kind == "times":
        return Event("times", person, rng.choice((2, 3)), phrasing=phrasing)
    amount = rng.randint(params["amount_min"], params["amount_max"])
    if kind == "give":
        other = rng.choice(others)
        # The asked person gives or receives with equal chance.
        giver, receiver = (person, other) if rng.random() < 0.5 else (other, person)
        return Event("give", giver, amount, other=receiver, phrasing=phrasing)
    if kind == "gain":
        return Event("gain", person, amount, verb=rng.choice(tuple(GAIN)), phrasing=phrasing)
    verbs = tuple(LOSE) if obj in FOOD else ("loses",)
    return Event("lose", person, amount, verb=rng.choice(verbs), phrasing=phrasing)


# ---------------------------------------------------------------- the task


TARGETS = ("answer", "start")
GENERATOR_KEYS = ("data_seed", "names", "people_min", "people_max", "events", "max_distractors", "kinds", "start_min",
                  "start_max", "amount_min", "amount_max", "max_value", "phrasings", "question_first",
                  "train_size", "val_size", "test_size")


class SynthArith(NumericTask):
    name = "synth-arith"
    description = ("generated SVAMP-shaped word problems (people, events, distractors) with checkable step "
                   "rationales; offline, every rationale's correctness known")
    # With a published teacher's name (mcc-kd, dss-palm) a method means "its rationales": here
    # they come from the `synthetic` teacher.  The default preset is the ten-minute one; the
    # suites compare methods on the calibrated `synth` preset.
    default_teacher = "synthetic"
    default_preset = "synth-quick"
    defaults = {"data_seed": 0, "names": len(NAMES), "people_min": 2, "people_max": 3, "events": 2, "max_distractors": 2,
                "kinds": ",".join(KINDS), "start_min": 1, "start_max": 20, "amount_min": 1, "amount_max": 9,
                "max_value": 99, "phrasings": 4, "question_first": 0.5,
                "train_size": 4000, "val_size": 1000, "test_size": 5000,
                "train_fraction": 1.0, "train_fraction_seed": 0,
                # answer: the asked person's final count; start: their starting count, a copy
                # control that any student must learn before the arithmetic means anything.
                "target": "answer"}

    def check(self, params: dict[str, Any]) -> None:
        params = {**self.defaults, **params}
        ranges = (("names", 2, len(NAMES)), ("people_min", 2, params["names"]),
                  ("people_max", params["people_min"], params["names"]),
                  ("events", 1, 6), ("max_distractors", 0, 6), ("start_min", 0, params["max_value"]),
                  ("start_max", params["start_min"], params["max_value"]), ("amount_min", 1, params["max_value"]),
                  ("amount_max", params["amount_min"], params["max_value"]), ("phrasings", 1, MAX_PHRASINGS),
                  ("train_size", 1, 10**6), ("val_size", 0, 10**6), ("test_size", 1, 10**6))
        for key, low, high in ranges:
            if not low <= params[key] <= high:
                raise ConfigError(f"task.{key}: must be in [{low}, {high}], got {params[key]}")
        unknown = [k for k in params["kinds"].split(",") if k.strip() not in KINDS]
        if unknown or not params["kinds"].strip():
            raise ConfigError(f"task.kinds: a comma-separated subset of {','.join(KINDS)}, got {params['kinds']!r}")
        if not 0 <= params["question_first"] <= 1:
            raise ConfigError(f"task.question_first: a probability in [0, 1], got {params['question_first']}")
        if params["target"] not in TARGETS:
            raise ConfigError(f"task.target: one of {', '.join(TARGETS)}, got {params['target']!r}")
        if not 0 < params["train_fraction"] <= 1:
            raise ConfigError(f"task.train_fraction: must be in (0, 1], got {params['train_fraction']}")

    def load(self, params: dict[str, Any]) -> TaskData:
        params = {**self.defaults, **params}
        self.check(params)
        splits = generate_splits(params)
        examples = {split: [self._example(split, i, p, params["target"]) for i, p in enumerate(problems)]
                    for split, problems in splits.items()}
        digest = hashlib.sha256(json.dumps([[e.input, e.label] for split in examples.values() for e in split])
                                .encode()).hexdigest()
        train = take_fraction(examples["train"], params["train_fraction"], params["train_fraction_seed"])
        notes = {"source": "generated", "generator": {"name": self.name, "params_hash": params_hash(params),
                                                      "params": generator_params(params)}}
        if params["train_fraction"] < 1:
            notes["train_fraction"] = (f"{len(train)} of {len(examples['train'])} training problems kept "
                                       f"(fraction {params['train_fraction']}, seed {params['train_fraction_seed']})")
        # The generator's parameters are the data's identity; the digest checks the text it made.
        return TaskData(train=train, val=examples["val"], test=examples["test"],
                        files={f"generated:synth-arith/{params_hash(params)}": digest}, notes=notes, params=params)

    @staticmethod
    def _example(split: str, index: int, problem: Problem, target: str) -> Example:
        answer = problem.answer if target == "answer" else problem.start[problem.asked]
        return Example(id=f"{split}-{index}", input=problem.text(), label=str(answer), answer=float(answer),
                       source=(split, index))

    def problem(self, example: Example, params: dict[str, Any]) -> Problem:
        """The generated problem behind ``example`` (for the checker and the synthetic teacher)."""
        split, index = example.source
        return generate_splits({**self.defaults, **params})[split][index]

    def check_rationale(self, example: Example, text: str, params: dict[str, Any]) -> str:
        """The checker's label of ``text`` as a rationale for ``example`` (see synth_check)."""
        from .synth_check import check

        return check(self.problem(example, params), text)

    def rationale_answer(self, text: str) -> float | None:
        """The answer a rationale reaches: its last result (the number after the last '=')."""
        from .synth_check import final_value

        value = final_value(text)
        return None if value is None else float(value)

    def gold_rationale(self, example: Example, params: dict[str, Any]) -> Rationale:
        problem = self.problem(example, params)
        return Rationale(gold_rationale(problem), float(problem.answer), origin="gold")
