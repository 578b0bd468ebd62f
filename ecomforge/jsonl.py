"""JSON Lines files that come from a user (a catalogue, an earlier export, a training folder's metadata).

One reader, so every such file is decoded the same way (UTF-8, a byte-order mark tolerated, blank
lines skipped) and a bad line is named the same way: ``<file>: line <n>: ...``, an InputError (exit 2).
A key given twice in one object is refused, as in a recipe: JSON's own rule (the last wins) would
drop a value the user wrote without a word.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .errors import InputError


def read_rows(path: Path, *, limit: int | None = None, advice: str = "") -> list[tuple[int, dict[str, Any]]]:
    """(line number, object) for every non-blank line; ``advice`` ends each error message (e.g. what to do)."""
    tail = f"; {advice}" if advice else ""
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read it ({exc}){tail}") from exc
    rows: list[tuple[int, dict[str, Any]]] = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line, object_pairs_hook=_unique_keys, parse_int=_int)
        except _DuplicateKey as exc:
            raise InputError(f"{path}: line {n}: the key {exc.key!r} is given twice{tail}") from exc
        except _TooLong as exc:
            where = f"{exc.key}: " if exc.key else ""
            raise InputError(f"{path}: line {n}: {where}a number of {exc.digits} digits is over the limit of "
                             f"{exc.limit} digits{tail}") from exc
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}: line {n}: not a JSON row ({exc.msg}){tail}") from exc
        except RecursionError as exc:  # [[[[... thousands deep: Python's decoder gives up
            raise InputError(f"{path}: line {n}: not a JSON row (nested too deeply){tail}") from exc
        if (big := _big(row)) is not None:
            raise InputError(f"{path}: line {n}: a number of {big.digits} digits is over the limit of "
                             f"{big.limit} digits{tail}")
        if not isinstance(row, dict):
            raise InputError(f"{path}: line {n}: a row must be a JSON object, got {type(row).__name__}{tail}")
        rows.append((n, row))
        if limit is not None and len(rows) > limit:
            raise InputError(f"{path}: more than {limit} rows{tail}")
    return rows


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


class _TooLong(ValueError):
    """An integer longer than Python converts (``sys.get_int_max_str_digits``); ``key`` is filled by the object
    holding it."""

    def __init__(self, digits: int, limit: int) -> None:
        super().__init__(digits)
        self.digits, self.limit, self.key = digits, limit, ""


def _int(text: str) -> Any:
    import sys

    limit = getattr(sys, "get_int_max_str_digits", lambda: 0)()
    digits = len(text.lstrip("-"))
    if limit and digits > limit:
        return _BigInt(digits, limit)  # refused, with its key, by _unique_keys
    return int(text)


class _BigInt:
    def __init__(self, digits: int, limit: int) -> None:
        self.digits, self.limit = digits, limit


def _big(value: Any) -> _BigInt | None:
    if isinstance(value, _BigInt):
        return value
    if isinstance(value, list):
        return next((b for v in value if (b := _big(v)) is not None), None)
    return None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        big = _big(value)
        if big is not None:
            exc = _TooLong(big.digits, big.limit)
            exc.key = key
            raise exc
        out[key] = value
    return out
