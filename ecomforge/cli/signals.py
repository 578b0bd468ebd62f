"""Ctrl-C and SIGTERM: the first stops the run cleanly (the resume hint), a second stops the process at once.

A second Ctrl-C used to land inside the clean-up itself (a generator's ``finally``, the interpreter's
shutdown joining threads) and print ``Exception ignored in ...`` or abort in native code; SIGTERM (a
service manager, ``kill``) gave no message and no hint at all.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

_received: list[int] = []  # the signal that asked this process to stop, once one did


def received() -> int | None:
    """SIGINT or SIGTERM when one asked the process to stop, else None."""
    return _received[0] if _received else None


def exit_code() -> int | None:
    """128 + the signal's number (130 for SIGINT, 143 for SIGTERM), or None when none came."""
    sig = received()
    return None if sig is None else 128 + sig


def _handle(signum: int, frame: FrameType | None) -> None:
    if _received:  # asked twice: the clean stop is taking too long
        try:
            sys.stderr.write(f"{signal.Signals(signum).name} again: stopped at once (the run folder keeps every "
                             "finished product; --resume goes on from there)\n")
            sys.stderr.flush()
        finally:
            os._exit(128 + signum)
    _received.append(signum)
    raise KeyboardInterrupt  # the run stops the way Ctrl-C stops it, and names the folder to resume


@contextmanager
def handled() -> Iterator[None]:
    """Handle SIGINT and SIGTERM for one CLI invocation (the main thread only; an ignored SIGINT stays ignored).

    Once a signal came, the handlers stay until the process ends: the interpreter's own shutdown is where
    a second Ctrl-C would otherwise break in.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old: dict[int, Any] = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(sig) is not signal.SIG_IGN:
            old[sig] = signal.signal(sig, _handle)
    _received.clear()
    try:
        yield
    finally:
        if not _received:
            for num, handler in old.items():
                signal.signal(num, handler)
