"""The ``ecomforge`` command line: one-line errors, exit codes 0/1/2, plugin commands via a hook."""
from __future__ import annotations

import signal
import sys

import click

from ..errors import EcomforgeError
from .group import cli


def _register_core() -> None:
    """Import the modules that attach the core commands."""
    from ..web import cli as _web  # noqa: F401  (``serve``; fastapi/gradio load only when it runs)
    from . import analyze, info, recreate, run  # noqa: F401  (the modules attach their commands to ``cli``)


_register_core()


def _verbose_first(args: list[str]) -> list[str]:
    """``-v``/``--verbose`` may come anywhere (errors say "run with --verbose"): move it to the group's place."""
    end = args.index("--") if "--" in args else len(args)
    flags = [a for a in args[:end] if a in ("-v", "--verbose")]
    if not flags:
        return args
    return ["--verbose", *[a for a in args[:end] if a not in ("-v", "--verbose")], *args[end:]]


# click >= 8.2 shows the help for a group called without a command through this UsageError (exit 2)
_NO_ARGS_IS_HELP: tuple[type[click.UsageError], ...] = tuple(
    c for c in [getattr(click.exceptions, "NoArgsIsHelpError", None)] if c is not None)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI and turn errors into one line and an exit code (128 + N after signal N)."""
    from . import signals

    with signals.handled():
        try:
            _main(argv)
        except SystemExit as exc:
            code = signals.exit_code()
            if code is not None and exc.code not in (0, None):  # stopped by SIGTERM: 143, not Ctrl-C's 130
                raise SystemExit(code) from None
            raise


def _main(argv: list[str] | None) -> None:
    args = _verbose_first(list(sys.argv[1:] if argv is None else argv))
    verbose = bool(args) and args[0] == "--verbose"
    try:
        code = cli.main(args=args, prog_name="ecomforge", standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except click.exceptions.Abort as exc:
        # click turns Ctrl-C into Abort; ``run`` says which folder to resume before it gets here
        interrupted = isinstance(exc.__cause__ or exc.__context__, KeyboardInterrupt)
        click.echo("interrupted" if interrupted else "aborted", err=True)
        sys.exit(130)
    except _NO_ARGS_IS_HELP as exc:  # `ecomforge` alone: the help text, as click shows it
        exc.show()
        sys.exit(2)
    except click.UsageError as exc:
        click.echo(f"error: {usage_line(exc)}", err=True)
        sys.exit(2)
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except EcomforgeError as exc:
        _report(exc, verbose)
    except KeyboardInterrupt:
        from .signals import received

        click.echo("terminated" if received() == signal.SIGTERM else "interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # an unexpected failure: one line unless --verbose
        if verbose:
            import traceback

            traceback.print_exc()
        click.echo(f"error: {type(exc).__name__}: {exc} (run with --verbose for the traceback)", err=True)
        sys.exit(1)
    sys.exit(0)


def _report(exc: EcomforgeError, verbose: bool) -> None:
    """An ecomforge error: its lines after ``error:`` (the traceback first with --verbose), then its exit code."""
    if verbose:
        import traceback

        traceback.print_exc()
    for line in exc.lines():
        click.echo(f"error: {line}", err=True)
    sys.exit(exc.exit_code)


def usage_line(exc: click.UsageError) -> str:
    """click's usage error on one line, with where to read more (instead of its Usage/Try/Error lines)."""
    text = " ".join(exc.format_message().split()).rstrip(".")
    if exc.ctx is not None:
        text += f" (see '{exc.ctx.command_path} --help')"
    return text
