from __future__ import annotations

from qcrd_plugins.mcckd import MccKd, question_key
from qcrd_plugins.tasks import Svamp


def test_mcckd_joins_dss_train_questions_only(mirror):
    task = Svamp()
    data = task.load({"split": "dss", "val_fraction": 0.1, "val_seed": 0})
    out = MccKd().rationales(task, data, {"samples": 10})
    train_ids = {e.id for e in data.train}
    assert set(out.rationales) <= train_ids
    # 564 MCC-KD questions are in DSS train (data README); the carved validation rows are not trained on.
    assert 480 < out.stats["teacher_questions"] < 564
    assert out.stats["teacher_dropped"] == 700 - out.stats["teacher_questions"]
    test_keys = {question_key(e.input) for e in data.test}
    by_id = {e.id: e for e in data.train}
    assert not any(question_key(by_id[i].input) in test_keys for i in out.rationales)
    assert all(len(v) == 10 for v in out.rationales.values())
    assert 0.55 < out.stats["teacher_accuracy"] < 0.8


def test_question_key_ignores_layout():
    assert question_key("A has 3.\nHow many?") == question_key("a has 3. how  many?\n")
