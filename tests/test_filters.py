from __future__ import annotations

from qcrd_bench.components import Example, Rationale
from qcrd_plugins.filters import All, First, SelfConsistency
from qcrd_plugins.tasks import Svamp

TASK = Svamp()
GOLD = Example(id="q", input="x", label="( 2.0 + 2.0 )", answer=4.0, source=("train", 0))


def samples(*answers):
    return [Rationale(text=f"sample {i}", answer=a) for i, a in enumerate(answers)]


def split(rationales, require_gold=False, example=GOLD):
    pos, neg = SelfConsistency().split(example, rationales, TASK, {"require_gold": require_gold})
    return [r.text for r in pos], [r.text for r in neg]


def test_majority_positive_minority_and_unparseable_negative():
    assert split(samples(4.0, 5.0, 4.0, None, 4.00001)) == (
        ["sample 0", "sample 2", "sample 4"], ["sample 1", "sample 3"])


def test_tie_goes_to_gold_else_first_seen():
    assert split(samples(5.0, 4.0, 5.0, 4.0))[0] == ["sample 1", "sample 3"]
    assert split(samples(6.0, 7.0, 7.0, 6.0))[0] == ["sample 0", "sample 3"]


def test_require_gold():
    assert split(samples(5.0, 5.0, 4.0), require_gold=True) == ([], ["sample 2"])
    assert split(samples(5.0, 5.0, 4.0), require_gold=False) == (["sample 0", "sample 1"], ["sample 2"])


def test_nothing_parseable():
    assert split(samples(None, None)) == ([], ["sample 0", "sample 1"])


def test_first_and_all():
    rationales = [Rationale(text=""), Rationale(text="a", answer=1.0), Rationale(text="b", answer=None)]
    assert [r.text for r in First().split(GOLD, rationales, TASK, {})[0]] == ["a"]
    assert [r.text for r in All().split(GOLD, rationales, TASK, {})[0]] == ["a", "b"]
