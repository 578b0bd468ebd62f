"""Helpers of the run-folder tests: the CLI's exit code and error line, and a run folder's manifest lines."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from ecomforge.cli import main


def cli(capsys, *args: str) -> tuple[int, str]:
    """(exit code, stderr) of the CLI."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        main(list(args))
    return exit_.value.code, capsys.readouterr().err


def one_error(err: str) -> str:
    """The single ``error:`` line of ``err`` (no traceback, nothing else)."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


def manifest(run: Path) -> list[dict]:
    """The records of a run folder's manifest, in order."""
    return [json.loads(line) for line in (run / "manifest.jsonl").read_text().splitlines()]
