"""Cooperative cancel: a token carried in a context variable, checked wherever long work loops.

A caller (the web server's job worker) runs a recipe inside ``scope(token)``; ``token.cancel()``
from any other thread makes the next ``check()`` in that run raise ``Cancelled``. The runner
checks between products, steps, jobs and while planning jobs; the executor and the product
pipeline run their helper threads in a copy of the caller's context (``in_context``), so the
same token is seen there; a long plugin call (a diffusion loop, a scoring pass) calls ``check()``
in its own loop. With no token set, ``check()`` is one context-variable read. A child token
(``CancelToken(parent=...)``) stops with its parent and can be stopped alone: the executor gives its
generation thread one, so a caller that stops early (an error, Ctrl-C) ends the call in flight.
"""
from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from ..errors import Cancelled

__all__ = ["CancelToken", "Cancelled", "check", "current", "in_context", "run_under", "scope"]

T = TypeVar("T")

_CURRENT: contextvars.ContextVar[CancelToken | None] = contextvars.ContextVar("ecomforge_cancel", default=None)


class CancelToken:
    """A one-way switch: once cancelled (with a reason), every ``check()`` under it raises ``Cancelled``."""

    def __init__(self, parent: CancelToken | None = None) -> None:
        self._event = threading.Event()
        self.reason = "cancelled"
        self.parent = parent  # a child is cancelled with its parent, and may also be cancelled alone

    def cancel(self, reason: str = "cancelled") -> None:
        """Ask the work under this token to stop (thread-safe; the first reason given is kept)."""
        if not self._event.is_set():
            self.reason = reason
            self._event.set()

    @property
    def cancelled(self) -> bool:
        """True once ``cancel()`` was called on it or on a parent."""
        return self._stopped() is not None

    def check(self) -> None:
        """Raise ``Cancelled`` (with the reason of whichever token was cancelled) when cancelled."""
        if (token := self._stopped()) is not None:
            raise Cancelled(token.reason)

    def _stopped(self) -> CancelToken | None:
        token: CancelToken | None = self
        while token is not None:
            if token._event.is_set():
                return token
            token = token.parent
        return None

    def wait(self, timeout: float | None = None) -> bool:
        """Sleep up to ``timeout`` seconds, waking early when this token is cancelled; True when cancelled."""
        return self._event.wait(timeout) or self.cancelled


def current() -> CancelToken | None:
    """The token of the work running in this context, or None."""
    return _CURRENT.get()


def check() -> None:
    """Raise ``Cancelled`` if the current work was cancelled; a cheap no-op when no token is set."""
    token = _CURRENT.get()
    if token is not None:
        token.check()


def run_under(token: CancelToken, fn: Callable[..., T]) -> Callable[..., T]:
    """``fn`` run with ``token`` as the current token (a thread's target: its own, child, token)."""
    def run(*args: Any, **kwargs: Any) -> T:
        with scope(token):
            return fn(*args, **kwargs)
    return run


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
