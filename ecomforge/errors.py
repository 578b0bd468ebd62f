"""The error hierarchy: plugins raise these; only the CLI turns them into a message and exit code."""
from __future__ import annotations


class EcomforgeError(Exception):
    """Base of every error ecomforge raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:  # the hint too, wherever the error is shown (a test's failure, a log), not only in the CLI
        return f"{self.message} ({self.hint})" if self.hint else self.message

    def one_line(self) -> str:
        """The message and its hint, on one line, as the CLI prints it."""
        text = " ".join(self.message.split())
        if self.hint:
            text += f" ({' '.join(self.hint.split())})"
        return text

    def lines(self) -> list[str]:
        """The lines the CLI prints, each after ``error:``: this error's one line, or one per error it gathers
        (a catalogue's bad rows)."""
        return [self.one_line()]


class UsageError(EcomforgeError):
    """Bad usage or bad input from the user: exit code 2."""

    exit_code = 2


class RecipeError(UsageError):
    """A recipe key is unknown, missing or out of range; names the key's path."""

    def __init__(self, path: str, message: str, *, hint: str | None = None) -> None:
        self.path = path
        super().__init__(f"{path}: {message}" if path else message, hint=hint)


class InputError(UsageError):
    """An input file (image, mask, recipe) is missing, unreadable or invalid; names the file."""


class PluginError(EcomforgeError):
    """A plugin is missing, broken, or two plugins claim the same name."""


class PluginConflict(PluginError, UsageError):
    """Two installed distributions register the same plugin name; the recipe must not guess which."""

    exit_code = 2


class PluginContractError(PluginError):
    """A plugin broke its stage's contract (wrong number of outputs, a score outside [0,1], ...); names the plugin.

    ``kind`` says which kind of plugin it is ("generator 'flat' broke its contract: ...").
    """

    def __init__(self, plugin: str, message: str, *, kind: str = "plugin") -> None:
        self.plugin, self.kind = plugin, kind
        super().__init__(f"{kind} '{plugin}' broke its contract: {message}")


class PluginNotFound(PluginError, UsageError):
    """A recipe names a plugin that is not installed."""

    exit_code = 2


class ModelNotFound(UsageError):
    """A model's weights are not on disk and cannot be fetched; says what to download and where."""


class StageError(EcomforgeError):
    """A plugin failed at run time; names the step, plugin and product (raised ``from`` the cause)."""

    def __init__(self, step: str, plugin: str, product: str, cause: BaseException) -> None:
        self.step, self.plugin, self.product, self.cause = step, plugin, product, cause
        detail = cause.one_line() if isinstance(cause, EcomforgeError) else f"{type(cause).__name__}: {cause}"
        if product == "*":  # a pre-flight check, before any product
            super().__init__(f"{step} plugin '{plugin}' is not ready: {detail}")
        else:
            super().__init__(f"{step} failed in plugin '{plugin}' for product '{product}': {detail}")
        # A user error surfacing inside a stage (a bad mask file, say) stays a usage error.
        if isinstance(cause, EcomforgeError):
            self.exit_code = cause.exit_code


class NothingFound(UsageError):
    """A masker found no product above its confidence threshold (reports the best score)."""


class HookError(EcomforgeError):
    """A lifecycle hook raised; names the plugin and the hook (raised ``from`` the cause).

    Policy: a hook of the run store (or of any plugin marking itself ``hook_errors = "raise"``) stops
    the run; any other observer's failure is logged as a warning and the run goes on.
    """

    def __init__(self, plugin: str, hook: str, cause: BaseException) -> None:
        self.plugin, self.hook = plugin, hook
        detail = cause.one_line() if isinstance(cause, EcomforgeError) else f"{type(cause).__name__}: {cause}"
        super().__init__(f"hook {hook} of plugin '{plugin}' failed: {detail}")


class Cancelled(BaseException):
    """The work was cancelled (``ecomforge.run.cancel``); its run folder stays resumable.

    A BaseException like KeyboardInterrupt, not an EcomforgeError: every ``except Exception`` that
    isolates a failing product or wraps a stage's failure lets it through, so a cancel ends the whole
    run instead of being recorded as one product's failure.
    """

    def __init__(self, reason: str = "cancelled") -> None:
        super().__init__(reason)
        self.reason = reason
