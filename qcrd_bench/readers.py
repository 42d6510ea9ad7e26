"""Readers for the published file formats that fail with file and line, never a traceback."""

from __future__ import annotations

import codecs
import json
from pathlib import Path
from typing import Any

from .errors import InputFileError


def _text(path: Path) -> str:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InputFileError(f"{path}: cannot read: {exc.strerror}") from None
    # A BOM some editors add (Windows tools) is not part of the JSON.
    bom = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        return data[bom:].decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, bom + exc.start) + 1
        raise InputFileError(f"{path}:{line}: not UTF-8 text (byte {bom + exc.start})") from None


def json_lines(path: Path) -> list[tuple[int, Any]]:
    """(line number, value) of each non-blank line of a JSON Lines file.  Lines end at
    "\n" only: str.splitlines would also cut at U+2028, which JSON leaves raw in strings."""
    values = []
    for number, line in enumerate(_text(path).split("\n"), start=1):
        if not line.strip():
            continue
        try:
            values.append((number, json.loads(line)))
        except json.JSONDecodeError as exc:
            raise InputFileError(f"{path}:{number}: invalid JSON ({exc.msg} at column {exc.colno})") from None
    return values


def read_jsonl(path: Path, required: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """JSON Lines as a list of objects; each must hold the ``required`` fields."""
    rows = []
    for number, row in json_lines(path):
        _check_row(row, required, f"{path}:{number}")
        rows.append(row)
    if not rows:
        raise InputFileError(f"{path}: no rows")
    return rows


def read_json(path: Path) -> Any:
    text = _text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputFileError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg} at column {exc.colno})") from None


def read_json_list(path: Path, item_type: type = dict, required: tuple[str, ...] = ()) -> list:
    """A file holding one JSON array whose items are ``item_type`` (with ``required`` fields)."""
    data = read_json(path)
    if not isinstance(data, list):
        raise InputFileError(f"{path}: expected a JSON array, got {type(data).__name__}")
    for index, item in enumerate(data):
        if not isinstance(item, item_type):
            raise InputFileError(f"{path}: item {index}: expected {item_type.__name__}, got {type(item).__name__}")
        if item_type is dict:
            _check_row(item, required, f"{path}: item {index}")
    return data


def _check_row(row: Any, required: tuple[str, ...], where: str) -> None:
    if not isinstance(row, dict):
        raise InputFileError(f"{where}: expected a JSON object, got {type(row).__name__}")
    for field in required:
        if field not in row:
            raise InputFileError(f"{where}: missing field {field!r} (has: {', '.join(sorted(row)) or 'none'})")


def read_lines(path: Path) -> list[str]:
    """The non-blank lines of a text file, stripped (e.g. a list of ids)."""
    lines = [line.strip() for line in _text(path).splitlines() if line.strip()]
    if not lines:
        raise InputFileError(f"{path}: no rows")
    return lines
