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
import zipfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path, PurePosixPath

from .errors import DataError  # defined with the other user-facing errors; re-exported here

__all__ = [
    "DataError",
    "ManifestEntry",
    "manifest",
    "data_root",
    "cache_root",
    "fetch",
    "sha256_file",
    "Archive",
    "DSS_ARCHIVE",
    "ARCHIVE_ONLY",
    "fetch_archived",
    "fetch_dss",
    "git_blob_id",
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
    return _absolute(Path(value)) if value else None


def cache_root() -> Path:
    """The download cache directory (``QCRD_BENCH_CACHE_DIR`` or the default)."""
    value = os.environ.get(ENV_CACHE_DIR)
    return _absolute(Path(value) if value else DEFAULT_CACHE_DIR)


def _absolute(path: Path) -> Path:
    """``path`` absolute and without ``..`` (``../shared/data`` from /work/x is /work/shared/data),
    as messages and ``data list`` show it.  Resolved, not normalised as text: ``link/..`` is the
    folder above the link's target."""
    return path.expanduser().resolve()


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


# ---------------------------------------------------------------- the DSS datasets.zip
#
# A few DSS files are too large for the per-file manifest (ANLI1 and e-SNLI train, the
# 100 e-SNLI train rationale files).  They are read from the original datasets.zip of
# google-research/distilling-step-by-step, pinned by commit and verified by its git
# blob id (the only checksum published for it), downloaded once into the cache.


@dataclass(frozen=True)
class Archive:
    """A zip published upstream whose members provide files the manifest lacks."""

    name: str  # where it lives in the cache, also the URL template's {path}
    git_blob: str
    upstream_repo: str
    upstream_commit: str
    upstream_path: str
    root: str  # the member folder that holds ``<task>/...``
    max_bytes: int = 2 << 30  # stop a wrong URL from filling the disk

    def url(self, template: str = DEFAULT_URL_TEMPLATE) -> str:
        entry = ManifestEntry(self.name, 0, "0" * 64, self.git_blob, self.upstream_repo,
                              self.upstream_commit, self.upstream_path)
        return entry.url(template)

    def member_for(self, relpath: str) -> str:
        """``anli1/dss/anli1_train.json`` -> ``anli1/anli1_train.json`` (below :attr:`root`)."""
        parts = PurePosixPath(relpath).parts
        if len(parts) < 3 or parts[1] != "dss":
            raise DataError(f"{relpath!r} is not a DSS file (expected '<task>/dss/...'); "
                            f"only DSS files come from {self.upstream_path}")
        return "/".join((parts[0], *parts[2:]))


DSS_ARCHIVE = Archive(
    name="archives/distilling-step-by-step/datasets.zip",
    git_blob="fb9d88a0b44c2daac1ec1639f0bdae993e7e5bcd",
    upstream_repo="google-research/distilling-step-by-step",
    upstream_commit="ef944263c9ddfd40a9888557f3e7d17513fd1a7e",
    upstream_path="datasets.zip",
    root="datasets",
)

# DSS files that only the archive provides (not in the manifest, not in the shared mirror).
ARCHIVE_ONLY = frozenset(
    ["anli1/dss/anli1_train.json", "esnli/dss/esnli_train.json"]
    + [f"esnli/dss/llm/train_CoT_{i}.json" for i in range(100)]
)


def git_blob_id(path: Path) -> str:
    """The git blob id of a file: sha1 of ``b"blob <size>\\0"`` + its bytes."""
    digest = hashlib.sha1(b"blob %d\0" % path.stat().st_size)
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_dss(relpath: str) -> Path:
    """A file of the DSS release: from the mirror when one is set (like :func:`fetch`),
    else downloaded per file when the manifest lists it, else from the DSS datasets.zip."""
    relpath = os.fspath(relpath)
    if data_root() is not None or relpath in manifest():
        return fetch(relpath)
    return fetch_archived(relpath)


def fetch_archived(relpath: str, archive: Archive | None = None) -> Path:
    """Return a cached copy of ``relpath`` extracted from ``archive`` (default: the DSS
    datasets.zip), downloading and verifying the archive first when needed.

    Both the archive and each extracted member are moved into place atomically, so a
    cached path is always complete.  Raises DataError with the remedy on any failure.
    """
    archive = archive or DSS_ARCHIVE
    relpath = os.fspath(relpath)
    rel = _checked_relpath(relpath)
    member = archive.member_for(relpath)
    dest = cache_root().joinpath(rel)
    if dest.is_file():
        return dest
    zip_path = cache_root().joinpath(_checked_relpath(archive.name))
    if not zip_path.is_file():
        template = os.environ.get(ENV_DATA_URL) or DEFAULT_URL_TEMPLATE
        _download_archive(archive, archive.url(template), zip_path)
    _extract_member(archive, zip_path, member, dest)
    return dest


def _download_archive(archive: Archive, url: str, dest: Path) -> None:
    # Same discipline as _download: a temp file next to the destination, verified
    # (git blob id: the size must be known first, hence a second pass), then os.replace.
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    except OSError as exc:
        raise DataError(f"cannot write to data cache {dest.parent}: {exc}; "
                        f"set {ENV_CACHE_DIR} to a writable directory") from exc
    tmp = Path(tmp_name)
    log.info("downloading %s from %s", archive.upstream_path, url)
    try:
        size = 0
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as resp:
                while chunk := resp.read(_CHUNK):
                    size += len(chunk)
                    if size > archive.max_bytes:
                        raise DataError(f"download of {archive.upstream_path} from {url} exceeds "
                                        f"{archive.max_bytes} bytes; check {ENV_DATA_URL}")
                    out.write(chunk)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            raise DataError(f"download failed for {archive.upstream_path} from {url}: {exc}; check the "
                            f"network, or set {ENV_DATA_DIR} to a local copy of the data") from exc
        got = git_blob_id(tmp)
        if got != archive.git_blob:
            raise DataError(f"checksum mismatch for {archive.upstream_path} from {url}: "
                            f"expected git blob {archive.git_blob}, got {got}")
        if not zipfile.is_zipfile(tmp):
            raise DataError(f"{archive.upstream_path} from {url} is not a zip file")
        try:
            os.replace(tmp, dest)
        except OSError as exc:
            raise DataError(f"cannot move verified download into {dest}: {exc}; "
                            f"set {ENV_CACHE_DIR} to a writable directory") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _find_member(archive: Archive, names: list[str], member: str) -> str:
    """The archive's name for ``member``: ``<root>/<member>``, else the one name ending in
    ``/<member>`` (zips made on macOS also carry ``__MACOSX/`` copies, never wanted)."""
    exact = f"{archive.root}/{member}"
    if exact in names:
        return exact
    found = [n for n in names if not n.startswith("__MACOSX/") and (n == member or n.endswith("/" + member))]
    if len(found) == 1:
        return found[0]
    what = "no member" if not found else f"{len(found)} members ({', '.join(found[:3])})"
    raise DataError(f"{archive.upstream_path} has {what} for {member!r}; the archive layout is unexpected")


def _extract_member(archive: Archive, zip_path: Path, member: str, dest: Path) -> None:
    try:
        with zipfile.ZipFile(zip_path) as zf:
            name = _find_member(archive, zf.namelist(), member)
            dest.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
            tmp = Path(tmp_name)
            try:
                # Only this member's bytes are written, to a path we chose: the member
                # name never becomes a file system path.
                with os.fdopen(fd, "wb") as out, zf.open(name) as src:
                    while chunk := src.read(_CHUNK):
                        out.write(chunk)
                os.replace(tmp, dest)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
    except (OSError, zipfile.BadZipFile) as exc:
        raise DataError(f"cannot extract {member} from {zip_path}: {exc}; delete the file to download "
                        f"it again, or set {ENV_CACHE_DIR} to a writable directory") from exc
