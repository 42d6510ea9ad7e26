"""One-line heuristics on synth-arith's test split: the floor a learned student must clear.

    python benchmarks/calibration/heuristics.py                  # the synth preset's level
    python benchmarks/calibration/heuristics.py --set events=2   # another level of the ladder

Each heuristic reads the generated problem (not the text) and answers without one of the
skills the task tests, the way FEASIBILITY-style baselines did for SVAMP:
- majority: the most frequent training answer, for every question;
- asked start: the asked person's starting count (no events);
- question-blind solver: solves the story exactly for a person drawn at random (the
  question's person ignored), the trap SVAMP's question-sensitivity variants set;
- every event to the asked person: applies all events, distractors too, to the asked
  person's count (no tracking of who does what);
- bag of numbers: the asked person's start plus every event amount in the story.
Prints a Markdown table; ``--json`` prints the numbers.
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "plugins")]

from qcrd_bench.config import PRESETS  # noqa: E402
from qcrd_plugins.tasks.synth_arith import Event, SynthArith, generate_splits  # noqa: E402


def as_asked(event: Event, asked: str) -> Event:
    """The event with its person replaced by the asked one (a give becomes a gain or loss)."""
    if event.kind == "give":
        kind = "lose" if event.person == asked else "gain"
        return Event(kind, asked, event.amount)
    return Event(event.kind, asked, event.amount)


def heuristics(train, test, seed: int = 0) -> dict[str, float]:
    majority = collections.Counter(p.answer for p in train).most_common(1)[0][0]
    rng = random.Random(seed)
    guesses = collections.defaultdict(list)
    for p in test:
        guesses["majority answer"].append(majority)
        guesses["asked person's start"].append(p.start[p.asked])
        guesses["question-blind solver"].append(p.counts()[-1][rng.choice(p.people)])
        value = p.start[p.asked]
        for event in p.events:
            value = as_asked(event, p.asked).apply({p.asked: value})[p.asked]
        guesses["every event to the asked person"].append(value)
        guesses["bag of numbers"].append(p.start[p.asked] + sum(e.amount for e in p.events))
    return {name: sum(g == p.answer for g, p in zip(values, test)) / len(test) for name, values in guesses.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="synth", help="task settings of this preset (default: synth)")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="a task setting on top, e.g. --set events=2 (repeatable)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    params = {**SynthArith.defaults, **PRESETS[args.preset].get("task", {})}
    for item in args.sets:
        key, _, value = item.partition("=")
        params[key.removeprefix("task.")] = type(params[key.removeprefix("task.")])(value)
    splits = generate_splits(params)
    result = heuristics(splits["train"], splits["test"])
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"synth-arith test split ({len(splits['test'])} questions), task settings of preset {args.preset!r}"
          + (f" with {', '.join(args.sets)}" if args.sets else ""))
    print("| heuristic | test accuracy |\n|---|---|")
    for name, accuracy in result.items():
        print(f"| {name} | {100 * accuracy:.1f}% |")


if __name__ == "__main__":
    main()
