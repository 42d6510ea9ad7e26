"""Locating dataset files without ever committing them.

Two sources, chosen by environment:

* ``QCRD_BENCH_DATA_DIR`` set: a local mirror laid out like the manifest's
  ``path`` column. Files are used as they are -- users may deliberately edit
  a mirror, so its checksums are recorded (see :func:`sha256_file`) rather
  than enforced.
* otherwise: a per-user cache (``QCRD_BENCH_CACHE_DIR``, default
  ``~/.cache/qcrd-bench/data``) filled on demand from upstream, pinned by
  commit and verified against the sha256 in ``data_manifest.tsv``.

``QCRD_BENCH_DATA_URL`` overrides the download URL template (placeholders
``{path}``, ``{upstream_repo}``, ``{upstream_commit}``, ``{upstream_path}``),
e.g. to point at an internal HTTP mirror.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import http.client
import io
import logging
import os
import re
import tempfile
import urllib.parse
import urllib.request
from dataclasses import dataclass
from importlib import resources
from pathlib import Path, PurePosixPath

from .errors import QcrdError

__all__ = [
    "DataError",
    "ManifestEntry",
    "manifest",
    "data_root",
    "cache_root",
    "fetch",
    "sha256_file",
    "ENV_DATA_DIR",
    "ENV_CACHE_DIR",
    "ENV_DATA_URL",
    "DEFAULT_URL_TEMPLATE",
]

log = logging.getLogger(__name__)

ENV_DATA_DIR = "QCRD_BENCH_DATA_DIR"
ENV_CACHE_DIR = "QCRD_BENCH_CACHE_DIR"
ENV_DATA_URL = "QCRD_BENCH_DATA_URL"
DEFAULT_URL_TEMPLATE = (
    "https://raw.githubusercontent.com/{upstream_repo}/{upstream_commit}/{upstream_path}"
)
DEFAULT_CACHE_DIR = Path("~/.cache/qcrd-bench/data")
DOWNLOAD_TIMEOUT_S = 60
_CHUNK = 1 << 20

_MANIFEST_NAME = "data_manifest.tsv"
_MANIFEST_COLUMNS = (
    "path",
    "bytes",
    "sha256",
    "git_blob",
    "upstream_repo",
    "upstream_commit",
    "upstream_path",
)
_SHA256_RE = re.compile(r"[0-9a-f]{64}")


class DataError(QcrdError):
    """One-line, user-facing message (names the file and the remedy)."""


@dataclass(frozen=True)
class ManifestEntry:
    """One row of ``data_manifest.tsv``: a file and where it comes from."""

    path: str
    bytes: int
    sha256: str
    git_blob: str
    upstream_repo: str
    upstream_commit: str
    upstream_path: str

    def url(self, template: str = DEFAULT_URL_TEMPLATE) -> str:
        """Fill ``template`` with this entry's (URL-quoted) fields."""
        fields = {
            "path": urllib.parse.quote(self.path, safe="/"),
            "upstream_repo": urllib.parse.quote(self.upstream_repo, safe="/"),
            "upstream_commit": urllib.parse.quote(self.upstream_commit, safe=""),
            "upstream_path": urllib.parse.quote(self.upstream_path, safe="/"),
        }
        try:
            return template.format_map(fields)
        except (KeyError, IndexError, ValueError) as exc:
            raise DataError(
                f"bad URL template {template!r} ({type(exc).__name__}: {exc}); "
                f"allowed placeholders are {{{'}, {'.join(fields)}}}"
            ) from None


def _checked_relpath(relpath: str) -> PurePosixPath:
    # Joining an absolute or '..' path onto the mirror/cache root would escape
    # it; for the cache that would mean writing files anywhere on disk.
    rel = PurePosixPath(relpath)
    if not relpath or rel.is_absolute() or ".." in rel.parts or "\\" in relpath:
        raise DataError(
            f"invalid data path {relpath!r}: "
            "expected a relative path like 'svamp/dss/svamp_test.json'"
        )
    return rel


def _parse_manifest(text: str) -> dict[str, ManifestEntry]:
    reader = csv.reader(io.StringIO(text), delimiter="\t", quoting=csv.QUOTE_NONE)
    header = tuple(next(reader, ()))
    if header != _MANIFEST_COLUMNS:
        raise DataError(
            f"{_MANIFEST_NAME}: unexpected header {header!r}; the package install is corrupt, "
            "reinstall qcrd-bench"
        )
    entries: dict[str, ManifestEntry] = {}
    for lineno, row in enumerate(reader, start=2):
        if not row:
            continue
        try:
            if len(row) != len(_MANIFEST_COLUMNS):
                raise ValueError(f"{len(row)} columns")
            record = dict(zip(_MANIFEST_COLUMNS, row))
            entry = ManifestEntry(**{**record, "bytes": int(record["bytes"])})
            if not _SHA256_RE.fullmatch(entry.sha256):
                raise ValueError("malformed sha256")
            _checked_relpath(entry.path)
            if entry.path in entries:
                raise ValueError("duplicate path")
        except (ValueError, DataError) as exc:
            raise DataError(
                f"{_MANIFEST_NAME} line {lineno}: {exc}; the package install is corrupt, "
                "reinstall qcrd-bench"
            ) from None
        entries[entry.path] = entry
    return entries


@functools.lru_cache(maxsize=1)
def manifest() -> dict[str, ManifestEntry]:
    """All known data files, keyed by local relative path.

    Cached because the bundled manifest cannot change while running; callers
    must treat the returned dict as read-only.
    """
    text = resources.files(__package__).joinpath(_MANIFEST_NAME).read_text(encoding="utf-8")
    return _parse_manifest(text)


def data_root() -> Path | None:
    """The local mirror directory from ``QCRD_BENCH_DATA_DIR``, or None.

    An empty value counts as unset, so ``QCRD_BENCH_DATA_DIR=`` in a shell
    cannot silently turn the working directory into the mirror.
    """
    value = os.environ.get(ENV_DATA_DIR)
    return Path(value).expanduser().absolute() if value else None


def cache_root() -> Path:
    """The download cache directory (``QCRD_BENCH_CACHE_DIR`` or the default)."""
    value = os.environ.get(ENV_CACHE_DIR)
    return (Path(value) if value else DEFAULT_CACHE_DIR).expanduser().absolute()


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks so large files stay cheap."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(relpath: str) -> Path:
    """Return a local path to the data file ``relpath``, downloading if needed.

    Raises DataError (never a bare OSError/URLError) when the file cannot be
    provided, with a message saying what to do about it.
    """
    # Accept Path objects too: callers often build relpaths with pathlib.
    relpath = os.fspath(relpath)
    rel = _checked_relpath(relpath)

    mirror = data_root()
    if mirror is not None:
        candidate = mirror.joinpath(rel)
        if not candidate.is_file():
            raise DataError(
                f"data file not found: {candidate} ({ENV_DATA_DIR}={os.environ[ENV_DATA_DIR]}); "
                f"unset {ENV_DATA_DIR} to download it, or fix the mirror path"
            )
        return candidate

    entry = manifest().get(str(rel))
    if entry is None:
        raise DataError(
            f"unknown data file {relpath!r}: not listed in {_MANIFEST_NAME}; "
            f"check the name, or set {ENV_DATA_DIR} to a mirror that contains it"
        )

    dest = cache_root().joinpath(rel)
    try:
        if dest.stat().st_size == entry.bytes:
            return dest
        # A size mismatch means an interrupted or foreign file, never ours:
        # downloads only reach this path after passing the checksum.
        log.warning("cached %s has the wrong size; downloading it again", dest)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise DataError(
            f"cannot read cached data file {dest}: {exc}; fix or change {ENV_CACHE_DIR}"
        ) from exc

    template = os.environ.get(ENV_DATA_URL) or DEFAULT_URL_TEMPLATE
    _download(entry, entry.url(template), dest)
    return dest


def _download(entry: ManifestEntry, url: str, dest: Path) -> None:
    # Writing to a temp file in the destination directory and os.replace-ing
    # it keeps the final path either absent or complete and verified, even if
    # we are killed mid-download or two processes race for the same file.
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    except OSError as exc:
        raise DataError(
            f"cannot write to data cache {dest.parent}: {exc}; "
            f"set {ENV_CACHE_DIR} to a writable directory"
        ) from exc
    tmp = Path(tmp_name)

    log.info("downloading %s from %s", entry.path, url)
    try:
        digest = hashlib.sha256()
        size = 0
        try:
            with os.fdopen(fd, "wb") as out:
                with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as resp:
                    while chunk := resp.read(_CHUNK):
                        size += len(chunk)
                        if size > entry.bytes:
                            # Stop early rather than let a wrong URL fill the disk.
                            raise DataError(
                                f"checksum mismatch for {entry.path} from {url}: "
                                f"expected {entry.sha256} ({entry.bytes} bytes), "
                                f"got more than {entry.bytes} bytes"
                            )
                        digest.update(chunk)
                        out.write(chunk)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            # URLError/HTTPError/timeouts are OSErrors; truncated bodies are
            # HTTPExceptions; a malformed URL from the template is a ValueError.
            raise DataError(
                f"download failed for {entry.path} from {url}: {exc}; check the network, "
                f"or set {ENV_DATA_DIR} to a local copy of the data"
            ) from exc
        got = digest.hexdigest()
        if got != entry.sha256:
            raise DataError(
                f"checksum mismatch for {entry.path} from {url}: expected {entry.sha256}, got {got}"
            )
        try:
            os.replace(tmp, dest)
        except OSError as exc:
            raise DataError(
                f"cannot move verified download into {dest}: {exc}; "
                f"set {ENV_CACHE_DIR} to a writable directory"
            ) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
