"""The `openai` teacher against a fake OpenAI-compatible server (real HTTP on
127.0.0.1): faults are retried into the same set a fault-free run gets, an interrupted
`teach` resumes with only the missing requests, and the API key never reaches MLflow."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from fake_openai import FakeOpenAI, completion
from qcrd_bench.cli import main
from qcrd_bench.rationales import read_set

SECRET = "sk-test-5ecret-never-logged-0123456789"
QUESTIONS, SAMPLES = 4, 3


def teach_args(server: FakeOpenAI, tmp_path: Path, name: str, *extra: str) -> list[str]:
    return ["teach", "--task", "svamp", "--teacher", "openai", "--limit", str(QUESTIONS), "--samples", str(SAMPLES),
            "--set", "teacher.model=fake-model", "--set", f"teacher.base_url={server.url}",
            "--set", f"teacher.cache={tmp_path / (name + '.sqlite')}", "--set", "teacher.timeout=1.5",
            "--set", "teacher.concurrency=1", "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
            "-o", str(tmp_path / f"{name}.jsonl"), "--json", *extra]


def teach(server, tmp_path, name, *extra):
    result = CliRunner().invoke(main, teach_args(server, tmp_path, name, *extra))
    return result, json.loads(result.stdout) if result.exit_code == 0 else None


def content(path: Path) -> list[dict]:
    return read_set(path)[1]


@pytest.fixture
def env(mirror, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)


def test_fault_free_set_is_complete_and_parsed(env, tmp_path):
    with FakeOpenAI() as server:
        result, summary = teach(server, tmp_path, "clean")
    assert result.exit_code == 0, result.output
    header, rows = read_set(tmp_path / "clean.jsonl")
    assert header["teacher"] == "openai" and header["params"]["model"] == "fake-model"
    assert header["prompt"]["system"].startswith("You are a math word problem solving robot")
    assert len(header["prompt_sha256"]) == 64
    assert len(rows) == QUESTIONS and all(len(r["samples"]) == SAMPLES for r in rows)
    # The fake server answers 7 for two seeds in three and 8 for the third.
    assert [s["answer"] for s in rows[0]["samples"]] == ["8.0", "7.0", "7.0"]
    assert rows[0]["samples"][0]["text"].startswith("step ")
    assert len(server.requests) == QUESTIONS  # one request per question: n = all samples
    assert all(r["auth"] == f"Bearer {SECRET}" for r in server.requests)
    assert summary["teacher/parse_rate"] == 1.0 and summary["teacher/agreement"] == pytest.approx(2 / 3)
    assert summary["teacher/completion_tokens"] == 12 * SAMPLES * QUESTIONS


def test_faults_are_retried_into_the_fault_free_set(env, tmp_path):
    with FakeOpenAI() as server:
        assert teach(server, tmp_path, "clean")[0].exit_code == 0
    with FakeOpenAI() as server:
        server.faults = ["500", ("429", 0.3), ("hang", 3.0), "malformed", ("fewer", 1), "500"]
        started = time.perf_counter()
        result, summary = teach(server, tmp_path, "faulty")
        elapsed = time.perf_counter() - started
    assert result.exit_code == 0, result.output
    assert content(tmp_path / "faulty.jsonl") == content(tmp_path / "clean.jsonl")
    # Question 1: five faults (the fifth a reply with 1 of 3 choices), a 500 on the follow-up
    # for the missing 2, then the follow-up again; one request for each other question.
    assert len(server.requests) == 7 + QUESTIONS - 1
    short = server.requests[4]["body"]
    follow_up = server.requests[5]["body"]
    assert short["n"] == SAMPLES and (follow_up["n"], follow_up["seed"]) == (SAMPLES - 1, short["seed"] + 1)
    assert elapsed >= 0.3  # Retry-After was honoured


def test_retry_budget_gives_a_clear_error_and_keeps_what_arrived(env, tmp_path):
    with FakeOpenAI() as server:
        server.faults = [None, None] + ["500"] * 20
        result, _ = teach(server, tmp_path, "broken", "--set", "teacher.max_retries=2")
        assert result.exit_code == 2
        assert "gave up after 3 attempt(s)" in result.output and "server error 500" in result.output
        assert "re-run to resume" in result.output
        served_first = len(server.requests)
    with FakeOpenAI() as server:  # the endpoint recovered: only the two missing questions are asked
        result, _ = teach(server, tmp_path, "broken")
        assert result.exit_code == 0, result.output
        assert len(server.requests) == QUESTIONS - 2
    assert served_first == 2 + 3
    assert not (tmp_path / "mlflow.db").exists() or _no_running_runs(tmp_path)


def test_client_errors_are_not_retried_and_name_the_endpoint(env, tmp_path):
    with FakeOpenAI() as server:
        server.faults = ["401"]
        result, _ = teach(server, tmp_path, "denied")
        assert len(server.requests) == 1
    assert result.exit_code == 2
    assert "answered 401" in result.output and server.url in result.output
    assert SECRET not in result.output


def test_killed_teach_resumes_with_only_the_missing_requests(env, tmp_path):
    with FakeOpenAI() as server:
        server.block_after = 2  # the third request hangs: kill the process while it waits
        args = teach_args(server, tmp_path, "resume")
        args[args.index("teacher.timeout=1.5")] = "teacher.timeout=600"
        proc = subprocess.Popen([sys.executable, "-m", "qcrd_bench.cli", *args], env=os.environ.copy(),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while len(server.requests) < 3 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert len(server.requests) == 3, proc.communicate(timeout=5)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        assert not (tmp_path / "resume.jsonl").exists()  # no half-written set
        server.block_after = None
        before = len(server.requests)
        result, summary = teach(server, tmp_path, "resume")
    assert result.exit_code == 0, result.output
    assert len(server.requests) - before == QUESTIONS - 2
    assert summary["teacher/samples_requested"] == (QUESTIONS - 2) * SAMPLES
    rows = content(tmp_path / "resume.jsonl")
    assert len(rows) == QUESTIONS and all(len(r["samples"]) == SAMPLES for r in rows)


def test_second_teach_is_served_from_the_cache(env, tmp_path):
    with FakeOpenAI() as server:
        teach(server, tmp_path, "cached")
        count = len(server.requests)
        result, summary = teach(server, tmp_path, "cached")
    assert result.exit_code == 0 and len(server.requests) == count
    assert summary["teacher/samples_requested"] == 0


def test_api_key_never_reaches_mlflow(env, tmp_path):
    """A teach and a training run with the openai teacher: search every param, tag,
    metric key, artifact and the printed output for the key."""
    with FakeOpenAI() as server:
        result, summary = teach(server, tmp_path, "secret")
        assert result.exit_code == 0, result.output
        run = CliRunner().invoke(main, [
            "run", "-m", "dss", "-t", "svamp", "--teacher", "openai", "--preset", "smoke", "--limit", str(QUESTIONS),
            "--set", "teacher.model=fake-model", "--set", f"teacher.base_url={server.url}",
            "--set", f"teacher.cache={tmp_path / 'secret.sqlite'}", "--set", f"teacher.samples={SAMPLES}",
            "--set", "train.steps=2",
            "--set", "train.threads=1", "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"])
    assert run.exit_code == 0, run.output
    assert SECRET not in result.output + run.output
    import mlflow

    from conftest import runs_in

    runs = runs_in(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert len(runs) == 2
    for r in runs:
        assert SECRET not in json.dumps([r.data.params, r.data.tags, list(r.data.metrics)])
        assert r.data.tags["qcrd.teacher"] == "openai"
        local = Path(mlflow.artifacts.download_artifacts(run_id=r.info.run_id, dst_path=str(tmp_path / r.info.run_id),
                                                         tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}"))
        files = [p for p in local.rglob("*") if p.is_file()]
        assert files and all(SECRET.encode() not in p.read_bytes() for p in files)
    assert SECRET.encode() not in (tmp_path / "mlflow.db").read_bytes()
    assert SECRET.encode() not in (tmp_path / "secret.sqlite").read_bytes()
    # The run used the set teach made: same content checksum on both.
    teach_run = next(r for r in runs if r.data.tags.get("qcrd.kind") == "teach")
    train_run = next(r for r in runs if r.data.tags.get("qcrd.kind") != "teach")
    assert teach_run.data.tags["qcrd.rationales_sha256"] == summary["checksum"]
    assert train_run.data.tags["qcrd.rationales_sha256"] == summary["checksum"]
    assert len(server.requests) == QUESTIONS  # the run asked for nothing: all cached by teach


def test_completion_is_deterministic():
    assert completion("q", 3) == completion("q", 3) != completion("q", 4)


def _no_running_runs(tmp_path: Path) -> bool:
    from conftest import runs_in

    return all(r.info.status != "RUNNING" for r in runs_in(f"sqlite:///{tmp_path / 'mlflow.db'}"))


def test_credentials_in_urls_are_scrubbed_before_logging():
    from qcrd_bench.tracking import scrub

    config = {"teacher": {"base_url": "https://user:hunter2@llm.example.org:8443/v1", "model": "m"}}
    assert scrub(config) == {"teacher": {"base_url": "https://***@llm.example.org:8443/v1", "model": "m"}}
    assert scrub("failed: http://a:b@h/x and http://h/y") == "failed: http://***@h/x and http://h/y"


def test_concurrent_requests_raise_throughput(env, tmp_path):
    """Against a server that takes 0.3 s a reply (as a vLLM-style server generating would),
    4 requests in flight deliver the same set about 4x faster than 1; teach reports it."""
    with FakeOpenAI() as server:
        server.latency = 0.3
        _, serial = teach(server, tmp_path, "serial", "--set", "teacher.concurrency=1")
        _, parallel = teach(server, tmp_path, "parallel", "--set", "teacher.concurrency=4")
    assert serial["teacher/requests"] == parallel["teacher/requests"] == QUESTIONS
    assert parallel["teacher/concurrency"] == 4 and serial["teacher/retries"] == 0
    assert parallel["teacher/samples_per_s"] > 2 * serial["teacher/samples_per_s"]
    assert content(tmp_path / "serial.jsonl") == content(tmp_path / "parallel.jsonl")
