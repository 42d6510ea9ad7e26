"""The MLflow UI as a person meets it: `qcrd-bench ui` on a store with a small sweep, the
link it prints opened in Chromium (Playwright driving the system's browser).

Needs Chromium (`apt-get install chromium` on Debian, or $QCRD_BENCH_CHROMIUM) and the
playwright package (the dev extra); skipped, with the reason, without them.  One server and
one browser serve every test here.  With QCRD_BENCH_SCREENSHOTS=docs the README's
screenshots are written to docs/.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import MIRROR

CHROMIUM = os.environ.get("QCRD_BENCH_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
SCREENSHOTS = os.environ.get("QCRD_BENCH_SCREENSHOTS")
# Two children, as small as a sweep gets: the store, the server and the browser take most of the time.
SWEEP = ["ablate", "-m", "dss,finetune", "--seeds", "0", "--task", "svamp", "--preset", "smoke", "--limit", "16",
         "--set", "train.steps=2", "--set", "train.eval_every=1", "--set", "train.threads=1",
         "--set", "eval.max_new_tokens=8"]
NAME = "dss,finetune × svamp × seed 0 (smoke)"
TIMEOUT_MS = 60_000

if CHROMIUM is None:
    pytest.skip("no Chromium found: apt-get install chromium (Debian), or set QCRD_BENCH_CHROMIUM to a Chromium "
                "binary (README: Browse the results)", allow_module_level=True)
sync_playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright (in the dev extra)") \
    .sync_playwright


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A tracking store holding one small smoke sweep: dss and finetune, seed 0."""
    from click.testing import CliRunner

    from qcrd_bench.cli import main

    if not (MIRROR / "svamp" / "dss" / "svamp_train.json").exists():
        pytest.skip(f"no data mirror at {MIRROR}")
    folder = tmp_path_factory.mktemp("ui")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("QCRD_BENCH_DATA_DIR", str(MIRROR))
        patch.chdir(folder)
        result = CliRunner().invoke(main, [*SWEEP, "--tracking-uri", uri])
    assert result.exit_code == 0, result.output
    return uri


@pytest.fixture(scope="module")
def link(store):
    """`qcrd-bench ui` on the store; the runs link it prints once its server answers."""
    with socket.socket() as probe:  # an ephemeral port: none of them is on Chromium's list of unsafe ports
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "qcrd_bench.cli", "ui", "--tracking-uri", store, "--port",
                             str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        lines = [proc.stdout.readline() for _ in range(2)]  # the header, then the link once it works
        assert lines[1].startswith("runs: http://127.0.0.1:"), "".join(lines) + proc.stdout.read()
        yield lines[1].split(" ", 1)[1].strip()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # `ui` stops its server on the way out
        proc.wait(timeout=60)


@pytest.fixture(scope="module")
def page():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        page = browser.new_page(viewport={"width": 1600, "height": 820})
        page.set_default_timeout(TIMEOUT_MS)
        yield page
        browser.close()


@pytest.fixture(scope="module")
def runs(store):
    import mlflow

    client = mlflow.MlflowClient(store)
    [experiment] = [e for e in client.search_experiments() if e.name == "qcrd-bench/ablate"]
    found = client.search_runs([experiment.experiment_id])
    return {r.data.tags.get("mlflow.runName"): r for r in found}


def test_the_link_opens_the_runs_table_with_the_sweep_nested_and_its_accuracy(page, link):
    page.goto(link)
    parent = page.locator("[role=row]", has_text=NAME).first
    parent.wait_for()
    _tidy(page)
    for column in ("metrics.`test/accuracy`", "metrics.`best/val_accuracy`", "tags.`qcrd.method`",
                   "tags.`qcrd.task`", "tags.`qcrd.seed`"):
        assert page.locator(f'[role=columnheader][col-id="{column}"]').count() == 1, column
    assert page.locator("[role=row]", has_text="dss-svamp-s0").count() == 0  # nested, folded
    parent.locator('[col-id="attributes.`Run Name`"] button').first.click()  # the + beside the parent
    child = page.locator("[role=row]", has_text="dss-svamp-s0").first
    child.wait_for()
    # ag-grid draws a row in two parts (pinned name, scrolled columns) that share its row-id.
    cell = page.locator(f'[role=row][row-id="{child.get_attribute("row-id")}"] [col-id="metrics.`test/accuracy`"]')
    assert re.fullmatch(r"\d+(\.\d+)?", cell.inner_text().strip()), cell.inner_text()
    assert page.locator("[role=row]", has_text="finetune-svamp-s0").count() >= 1
    _screenshot(page, "ui-runs.png", height=400)  # the table's rows, not the empty page below


def test_a_run_shows_its_result_in_its_description_and_its_predictions_as_a_table(page, link, runs):
    run = runs["dss-svamp-s0"]
    base = link.split("#", 1)[0]
    page.goto(f"{base}#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}?workflowType=machine_learning")
    page.get_by_text("at the best-validation step").first.wait_for()
    assert "a cell of a sweep" in page.inner_text("body")
    page.goto(f"{base}#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}/artifacts/predictions/test.json"
              "?workflowType=machine_learning")
    page.get_by_text("parsed_answer", exact=True).first.wait_for()
    _tidy(page)
    for header in ("input", "gold", "prediction", "correct"):
        assert page.get_by_text(header, exact=True).count() >= 1, header
    _screenshot(page, "ui-predictions.png")


def test_the_sweep_parent_has_the_results_table_and_the_report_command(page, link, runs):
    parent = runs[NAME]
    base = link.split("#", 1)[0]
    page.goto(f"{base}#/experiments/{parent.info.experiment_id}/runs/{parent.info.run_id}"
              "?workflowType=machine_learning")
    page.get_by_text("qcrd-bench report --run").first.wait_for()
    text = page.inner_text("body")
    assert "dss/svamp" in text and "finetune/svamp" in text and "--include-smoke" in text


def _tidy(page) -> None:
    """Close what MLflow opens beside the table (its assistant panel, the shared-view banner)."""
    for label in ("Close", "Hide banner"):
        button = page.locator(f'button[aria-label="{label}"]')
        if button.count():
            button.first.click()


def _screenshot(page, name: str, height: int | None = None) -> None:
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        time.sleep(1)  # the last cells settle
        clip = {"x": 0, "y": 0, "width": page.viewport_size["width"], "height": height} if height else None
        page.screenshot(path=str(Path(SCREENSHOTS) / name), clip=clip)
