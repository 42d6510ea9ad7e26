"""The performance harness (benchmarks/perf/run_all.py) runs end to end and reports every
figure.  One step of each piece on t5-tiny: no timing is asserted here (speed goals live
in the benchmark's README, not in tests)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

PERF = Path(__file__).resolve().parents[1] / "benchmarks" / "perf"

EXPECTED = {
    "machine": {"cpu_count", "threads", "torch", "transformers"},
    "config": {"student", "n_params", "batch", "max_input_length", "max_target_length"},
    "dss_training": {"steps", "batch", "ours_examples_per_s", "reference_examples_per_s", "ours_over_reference",
                     "ours_grouped_examples_per_s", "ours_grouped_over_reference",
                     "ours_step_s_median", "reference_step_s_median", "ours_tokenise_s", "reference_tokenise_s",
                     "padding_share_encoder", "padding_share_decoder"},
    "qcrd_step": {"batch", "steps", "dss_step_s_median", "qcrd_step_s_median", "qcrd_over_dss"},
    "decode": {"n", "max_new_tokens", "batched_examples_per_s", "per_example_examples_per_s",
               "batched_over_per_example", "outputs_identical", "mean_output_tokens", "gold_label_mean_tokens",
               "fresh_batched_examples_per_s", "fresh_per_example_examples_per_s", "fresh_batched_over_per_example"},
    "selfplay": {"rationales_per_s"},
    "discriminator": {"pairs_per_s", "train_pairs_per_s", "pairs"},
    "cli": {"help_s_median", "list_s_median", "smoke_s", "smoke_wall_s", "smoke_cpu_s", "smoke_peak_rss_mb"},
    "compute": {"ours_flops_per_step", "reference_flops_per_step", "ours_flop_per_s", "reference_flop_per_s",
                "matmul_peak_flop_per_s", "ours_efficiency_pct", "reference_efficiency_pct"},
}
POSITIVE = {section: {k for k in keys if "identical" not in k} for section, keys in EXPECTED.items()
            if section != "machine"}
GOALS = {"dss_training.ours_over_reference", "qcrd_step.qcrd_over_dss", "decode.batched_over_per_example",
         "cli.help_s_median", "cli.list_s_median"}


def test_harness_reports_every_figure(mirror, tmp_path, monkeypatch, capsys):
    torch = pytest.importorskip("torch")
    monkeypatch.syspath_prepend(str(PERF))
    import run_all

    threads = torch.get_num_threads()
    out = tmp_path / "perf.json"
    try:
        run_all.main(["--student", "t5-tiny", "--threads", "1", "--batch", "4", "--steps", "1", "--qcrd-steps", "1",
                      "--decode-n", "4", "--max-new-tokens", "4", "--cli-repeats", "1", "--matmul-size", "128",
                      "--smoke-extra", "--limit 8 --set train.steps=1", "--out", str(out)])
    finally:
        torch.set_num_threads(threads)
    report = json.loads(out.read_text())
    for section, keys in EXPECTED.items():
        assert keys <= set(report[section]), (section, keys - set(report[section]))
    for section, keys in POSITIVE.items():
        for key in keys:
            value = report[section][key]
            if isinstance(value, str):
                continue
            assert math.isfinite(value) and value > 0, (section, key, value)
    assert set(report["goals"]) == GOALS
    assert all(isinstance(g["met"], bool) for g in report["goals"].values())
    assert report["dss_training"]["steps"] == 1
    assert "| dss train, ours / reference |" in capsys.readouterr().out
