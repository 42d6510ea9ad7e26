"""Files only the DSS datasets.zip provides: downloaded once into the cache, verified by
git blob id, members extracted atomically.  A local HTTP server stands in for GitHub."""

from __future__ import annotations

import dataclasses
import json
import zipfile
from pathlib import Path

import pytest

from qcrd_bench import data
from qcrd_bench.data import DSS_ARCHIVE, DataError, fetch_archived, fetch_dss, git_blob_id
from test_data import _all_files, _serve

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
TRAIN = "anli1/dss/anli1_train.json"


def rows(n: int) -> str:
    return "".join(json.dumps({"uid": str(i), "premise": f"p{i}", "hypothesis": f"h{i}", "label": i % 3,
                               "reason": ""}) + "\n" for i in range(n))


def build_zip(path: Path, members: dict[str, str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, text in members.items():
            zf.writestr(name, text)
    return path


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.delenv("QCRD_BENCH_DATA_DIR", raising=False)
    monkeypatch.setenv("QCRD_BENCH_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def serve_zip(tmp_path, monkeypatch, members: dict[str, str], trust: bool = True):
    """Serve a zip at the archive's path; ``trust`` pins its git blob id as the expected one."""
    root = tmp_path / "upstream"
    archive = build_zip(root / DSS_ARCHIVE.name, members)
    if trust:
        monkeypatch.setattr(data, "DSS_ARCHIVE", dataclasses.replace(DSS_ARCHIVE, git_blob=git_blob_id(archive)))
    return _serve(root, monkeypatch)


MEMBERS = {
    "datasets/anli1/anli1_train.json": rows(7),
    "datasets/anli1/llm/train_CoT_0.json": json.dumps(["x. So the answer is neutral."]),
    "__MACOSX/datasets/anli1/._anli1_train.json": "resource fork junk",
}


def test_archive_is_pinned_to_the_dss_commit():
    assert DSS_ARCHIVE.url() == ("https://raw.githubusercontent.com/google-research/distilling-step-by-step/"
                                 "ef944263c9ddfd40a9888557f3e7d17513fd1a7e/datasets.zip")
    assert DSS_ARCHIVE.git_blob == "fb9d88a0b44c2daac1ec1639f0bdae993e7e5bcd"
    assert DSS_ARCHIVE.member_for("esnli/dss/llm/train_CoT_7.json") == "esnli/llm/train_CoT_7.json"
    with pytest.raises(DataError, match="not a DSS file"):
        DSS_ARCHIVE.member_for("gsm8k/original/train.jsonl")


def test_git_blob_id_matches_git(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    assert git_blob_id(path) == "f2ba8f84ab5c1bce84a7b441cb1959cfc7093b7f"  # git hash-object


def test_download_once_extract_members(cache, tmp_path, monkeypatch):
    with serve_zip(tmp_path, monkeypatch, MEMBERS) as server:
        path = fetch_archived(TRAIN)
        assert path == cache / TRAIN and path.read_text() == rows(7)
        assert fetch_archived("anli1/dss/llm/train_CoT_0.json").is_file()
        assert fetch_archived(TRAIN) == path
        assert server.requests == [f"/{DSS_ARCHIVE.name}"]  # one download serves every member
    assert sorted(p.relative_to(cache).as_posix() for p in _all_files(cache)) == [
        "anli1/dss/anli1_train.json", "anli1/dss/llm/train_CoT_0.json", DSS_ARCHIVE.name]


def test_blob_mismatch_leaves_nothing(cache, tmp_path, monkeypatch):
    with serve_zip(tmp_path, monkeypatch, MEMBERS, trust=False), pytest.raises(DataError) as info:
        fetch_archived(TRAIN)
    message = str(info.value)
    assert "checksum mismatch for datasets.zip" in message and DSS_ARCHIVE.git_blob in message
    assert _all_files(cache) == []


def test_missing_member_and_non_zip(cache, tmp_path, monkeypatch):
    with serve_zip(tmp_path, monkeypatch, {"datasets/cqa/cqa_train.json": "{}"}):
        with pytest.raises(DataError, match="has no member for 'anli1/anli1_train.json'"):
            fetch_archived(TRAIN)
    assert not (cache / TRAIN).exists()

    cache = tmp_path / "cache2"  # a fresh cache: the valid zip above stays cached
    monkeypatch.setenv("QCRD_BENCH_CACHE_DIR", str(cache))
    root = tmp_path / "html"
    (root / DSS_ARCHIVE.name).parent.mkdir(parents=True)
    (root / DSS_ARCHIVE.name).write_text("<html>an error page</html>")
    monkeypatch.setattr(data, "DSS_ARCHIVE", dataclasses.replace(
        DSS_ARCHIVE, git_blob=git_blob_id(root / DSS_ARCHIVE.name)))
    with _serve(root, monkeypatch), pytest.raises(DataError, match="is not a zip file"):
        fetch_archived("anli1/dss/anli1_valid.json")
    assert _all_files(cache) == []


def test_fetch_dss_prefers_mirror_then_manifest(tmp_path, monkeypatch):
    monkeypatch.setenv("QCRD_BENCH_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError, match=f"data file not found: {tmp_path / TRAIN}"):
        fetch_dss(TRAIN)  # a mirror never falls back to a download


@pytest.mark.skipif(not (SHARED / "anli1" / "dss" / "anli1_test.json").is_file(), reason="no shared mirror")
def test_anli1_trains_on_the_archived_split(cache, tmp_path, monkeypatch):
    """Download mode end to end: valid/test per file (manifest sha256), train from the zip."""
    from qcrd_plugins.tasks import Anli1

    root = tmp_path / "upstream"
    for name in ("anli1_valid.json", "anli1_test.json"):
        (root / "anli1" / "dss").mkdir(parents=True, exist_ok=True)
        (root / "anli1" / "dss" / name).write_bytes((SHARED / "anli1" / "dss" / name).read_bytes())
    with serve_zip(tmp_path, monkeypatch, MEMBERS):
        task = Anli1()
        loaded = task.load(dict(task.defaults))
    assert (len(loaded.train), len(loaded.val), len(loaded.test)) == (7, 1000, 1000)
    assert loaded.train[0].input == "p0</s>h0" and loaded.train[1].label == "neutral"
    assert set(loaded.files) == {"anli1/dss/anli1_train.json", "anli1/dss/anli1_valid.json",
                                 "anli1/dss/anli1_test.json"}
