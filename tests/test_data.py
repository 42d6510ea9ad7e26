"""Tests for qcrd_bench.data: manifest parsing, mirror mode, verified downloads.

Downloads are exercised against a throwaway local HTTP server serving the
shared data mirror, so no test touches the network.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from qcrd_bench import data
from qcrd_bench.data import DataError, ManifestEntry, fetch, manifest, sha256_file

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SAMPLE = "svamp/dss/svamp_test.json"

needs_shared_data = pytest.mark.skipif(
    not (SHARED_DATA / SAMPLE).is_file(), reason=f"shared data mirror not found at {SHARED_DATA}"
)


class _Server:
    """A static file server on an ephemeral port that records request paths."""

    def __init__(self, root: Path) -> None:
        self.requests: list[str] = []
        requests = self.requests

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self) -> None:
                requests.append(self.path)
                super().do_GET()

            def log_message(self, format: str, *args: object) -> None:
                pass  # keep pytest output clean

        handler = functools.partial(Handler, directory=str(root))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port = self.httpd.server_address[1]
        # A short poll interval keeps shutdown() (and so each test) fast.
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@contextlib.contextmanager
def _serve(root: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[_Server]:
    """Serve ``root`` and point QCRD_BENCH_DATA_URL at it for the duration."""
    server = _Server(root)
    monkeypatch.setenv("QCRD_BENCH_DATA_URL", f"http://127.0.0.1:{server.port}/{{path}}")
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Download mode with an empty, private cache."""
    cache = tmp_path / "cache"
    monkeypatch.delenv("QCRD_BENCH_DATA_DIR", raising=False)
    monkeypatch.setenv("QCRD_BENCH_CACHE_DIR", str(cache))
    return cache


@pytest.fixture
def server(cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[_Server]:
    if not (SHARED_DATA / SAMPLE).is_file():
        pytest.skip(f"shared data mirror not found at {SHARED_DATA}")
    with _serve(SHARED_DATA, monkeypatch) as srv:
        yield srv


@pytest.fixture
def tampered_server(
    cache_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[_Server]:
    if not (SHARED_DATA / SAMPLE).is_file():
        pytest.skip(f"shared data mirror not found at {SHARED_DATA}")
    root = tmp_path / "tampered"
    target = root / SAMPLE
    target.parent.mkdir(parents=True)
    payload = bytearray((SHARED_DATA / SAMPLE).read_bytes())
    payload[len(payload) // 2] ^= 0x01
    target.write_bytes(bytes(payload))
    with _serve(root, monkeypatch) as srv:
        yield srv


def _all_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


# --- manifest ---------------------------------------------------------------


def test_manifest_entries_are_well_formed() -> None:
    entries = manifest()
    assert SAMPLE in entries
    assert len(entries) > 50
    for path, entry in entries.items():
        assert isinstance(entry, ManifestEntry)
        assert entry.path == path
        assert entry.bytes > 0
        assert len(entry.sha256) == 64
        assert not path.startswith("/") and ".." not in path.split("/")
    assert manifest() is entries  # cached


def test_manifest_entry_url() -> None:
    entry = manifest()[SAMPLE]
    assert entry.url() == (
        "https://raw.githubusercontent.com/maxh119Z/distilling-step-by-step1/"
        "5b76a471c46c61f45114eab6621ffdff12d676b6/datasets/svamp/svamp_test.json"
    )
    assert entry.url("http://mirror/{path}") == f"http://mirror/{SAMPLE}"
    with pytest.raises(DataError, match="bad URL template"):
        entry.url("http://mirror/{nope}")


def test_manifest_rejects_malformed_rows() -> None:
    header = "\t".join(data._MANIFEST_COLUMNS)
    good_row = "a/b.json\t3\t" + "0" * 64 + "\tblob\to/r\tc\tp"
    assert list(data._parse_manifest(f"{header}\n{good_row}\n")) == ["a/b.json"]
    for bad in (
        good_row.replace("\t3\t", "\tthree\t"),
        good_row.replace("0" * 64, "xyz"),
        good_row.replace("a/b.json", "../escape.json"),
        good_row + "\textra",
        f"{good_row}\n{good_row}",
    ):
        with pytest.raises(DataError, match="line"):
            data._parse_manifest(f"{header}\n{bad}\n")
    with pytest.raises(DataError, match="header"):
        data._parse_manifest("path\tbytes\n")


def test_sha256_file(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"abc")
    assert sha256_file(f) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


# --- mirror mode ------------------------------------------------------------


def test_data_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("QCRD_BENCH_DATA_DIR", raising=False)
    assert data.data_root() is None
    monkeypatch.setenv("QCRD_BENCH_DATA_DIR", "")
    assert data.data_root() is None
    monkeypatch.setenv("QCRD_BENCH_DATA_DIR", str(tmp_path))
    assert data.data_root() == tmp_path


def test_mirror_returns_mirror_path_without_checksum(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    mirror = tmp_path / "mirror"
    local = mirror / SAMPLE
    local.parent.mkdir(parents=True)
    local.write_text("edited by the user\n")  # wrong checksum on purpose
    monkeypatch.setenv("QCRD_BENCH_DATA_DIR", str(mirror))
    assert fetch(SAMPLE) == local
    # Mirror files need not be in the manifest either.
    (mirror / "extra.json").write_text("{}")
    assert fetch("extra.json") == mirror / "extra.json"


@needs_shared_data
def test_mirror_shared_data(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QCRD_BENCH_DATA_DIR", str(SHARED_DATA))
    path = fetch(SAMPLE)
    assert path == SHARED_DATA / SAMPLE
    assert sha256_file(path) == manifest()[SAMPLE].sha256


def test_mirror_missing_file_names_absolute_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("QCRD_BENCH_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError) as info:
        fetch(SAMPLE)
    message = str(info.value)
    assert f"data file not found: {tmp_path / SAMPLE}" in message
    assert "QCRD_BENCH_DATA_DIR" in message
    assert "\n" not in message


@pytest.mark.parametrize("bad", ["", "/etc/passwd", "../outside.json", "svamp/../../x", "a\\b"])
def test_invalid_relpaths_rejected(
    bad: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("QCRD_BENCH_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError, match="invalid data path"):
        fetch(bad)


# --- download mode ----------------------------------------------------------


def test_unknown_relpath_without_mirror(cache_dir: Path) -> None:
    with pytest.raises(DataError, match="no/such/file.json"):
        fetch("no/such/file.json")
    assert _all_files(cache_dir) == []


def test_download_verifies_and_caches(server: _Server, cache_dir: Path) -> None:
    path = fetch(SAMPLE)
    assert path == cache_dir / SAMPLE
    assert sha256_file(path) == manifest()[SAMPLE].sha256
    assert server.requests == [f"/{SAMPLE}"]
    assert _all_files(cache_dir) == [path]  # no temp files left behind

    assert fetch(SAMPLE) == path
    assert len(server.requests) == 1  # served from cache


def test_download_accepts_path_objects(server: _Server, cache_dir: Path) -> None:
    assert fetch(Path(SAMPLE)) == cache_dir / SAMPLE  # type: ignore[arg-type]


def test_wrong_size_cache_is_redownloaded(server: _Server, cache_dir: Path) -> None:
    stale = cache_dir / SAMPLE
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"truncated")
    assert fetch(SAMPLE) == stale
    assert sha256_file(stale) == manifest()[SAMPLE].sha256
    assert len(server.requests) == 1


def test_checksum_mismatch_leaves_nothing(tampered_server: _Server, cache_dir: Path) -> None:
    with pytest.raises(DataError) as info:
        fetch(SAMPLE)
    message = str(info.value)
    assert "checksum mismatch" in message
    assert SAMPLE in message
    assert f"http://127.0.0.1:{tampered_server.port}/{SAMPLE}" in message
    assert manifest()[SAMPLE].sha256 in message
    assert not (cache_dir / SAMPLE).exists()
    assert _all_files(cache_dir) == []


def test_oversized_download_is_cut_off(
    cache_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "big"
    (root / SAMPLE).parent.mkdir(parents=True)
    (root / SAMPLE).write_bytes(b"x" * (manifest()[SAMPLE].bytes + 1))
    with _serve(root, monkeypatch), pytest.raises(DataError, match="checksum mismatch.*more than"):
        fetch(SAMPLE)
    assert _all_files(cache_dir) == []


def test_http_404_is_data_error(
    cache_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "empty").mkdir()
    with _serve(tmp_path / "empty", monkeypatch) as server, pytest.raises(DataError) as info:
        fetch(SAMPLE)
    message = str(info.value)
    assert "download failed" in message and "404" in message
    assert f"http://127.0.0.1:{server.port}/{SAMPLE}" in message
    assert "QCRD_BENCH_DATA_DIR" in message
    assert _all_files(cache_dir) == []


def test_connection_refused_is_data_error(
    cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Reserve a port and release it so nothing is listening there.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("QCRD_BENCH_DATA_URL", f"http://127.0.0.1:{port}/{{path}}")
    with pytest.raises(DataError) as info:
        fetch(SAMPLE)
    message = str(info.value)
    assert f"http://127.0.0.1:{port}/{SAMPLE}" in message
    assert "QCRD_BENCH_DATA_DIR" in message
    assert _all_files(cache_dir) == []


def test_unwritable_cache_is_data_error(
    cache_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("")
    monkeypatch.setenv("QCRD_BENCH_CACHE_DIR", str(blocker))
    with pytest.raises(DataError, match="QCRD_BENCH_CACHE_DIR"):
        fetch(SAMPLE)
