"""Cooperative cancel: a token carried in a context variable, checked wherever long work loops.

A caller (the web server's job worker) runs a recipe inside ``scope(token)``; ``token.cancel()``
from any other thread makes the next ``check()`` in that run raise ``Cancelled``. The runner
checks between products, steps, jobs and while planning jobs; the executor and the product
pipeline run their helper threads in a copy of the caller's context (``in_context``), so the
same token is seen there; a long plugin call (a diffusion loop, a scoring pass) calls ``check()``
in its own loop. With no token set, ``check()`` is one context-variable read.
"""
from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from ..errors import Cancelled

__all__ = ["CancelToken", "Cancelled", "check", "current", "in_context", "scope"]

T = TypeVar("T")

_CURRENT: contextvars.ContextVar[CancelToken | None] = contextvars.ContextVar("ecomforge_cancel", default=None)


class CancelToken:
    """A one-way switch: once cancelled (with a reason), every ``check()`` under it raises ``Cancelled``."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason = "cancelled"

    def cancel(self, reason: str = "cancelled") -> None:
        """Ask the work under this token to stop (thread-safe; the first reason given is kept)."""
        if not self._event.is_set():
            self.reason = reason
            self._event.set()

    @property
    def cancelled(self) -> bool:
        """True once ``cancel()`` was called."""
        return self._event.is_set()

    def check(self) -> None:
        """Raise ``Cancelled`` when cancelled."""
        if self._event.is_set():
            raise Cancelled(self.reason)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until cancelled or ``timeout`` seconds passed; True when cancelled (an interruptible sleep)."""
        return self._event.wait(timeout)


def current() -> CancelToken | None:
    """The token of the work running in this context, or None."""
    return _CURRENT.get()


def check() -> None:
    """Raise ``Cancelled`` if the current work was cancelled; a cheap no-op when no token is set."""
    token = _CURRENT.get()
    if token is not None and token._event.is_set():
        raise Cancelled(token.reason)


@contextmanager
def scope(token: CancelToken) -> Iterator[CancelToken]:
    """Make ``token`` the current one in this context (and in threads started with ``in_context``)."""
    reset = _CURRENT.set(token)
    try:
        yield token
    finally:
        _CURRENT.reset(reset)


def in_context(fn: Callable[..., T]) -> Callable[..., T]:
    """``fn`` bound to a copy of the caller's context: give it to a thread or a pool so it sees the token.

    Threads do not inherit context variables (a new thread starts in an empty context), so every helper
    thread of a run is started through this.
    """
    ctx = contextvars.copy_context()

    def run(*args: Any, **kwargs: Any) -> T:
        return ctx.run(fn, *args, **kwargs)
    return run
