"""The ``ecomforge`` command line: one-line errors, exit codes 0/1/2, plugin commands via a hook."""
from __future__ import annotations

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


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI and turn errors into one line and an exit code."""
    args = _verbose_first(list(sys.argv[1:] if argv is None else argv))
    verbose = bool(args) and args[0] == "--verbose"
    try:
        code = cli.main(args=args, prog_name="ecomforge", standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2 if isinstance(exc, click.UsageError) or exc.exit_code == 2 else exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except EcomforgeError as exc:
        if verbose:
            import traceback

            traceback.print_exc()
        click.echo(f"error: {exc.one_line()}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted (resume with --resume RUN_DIR)", err=True)
        sys.exit(130)
    except Exception as exc:  # an unexpected failure: one line unless --verbose
        if verbose:
            import traceback

            traceback.print_exc()
        click.echo(f"error: {type(exc).__name__}: {exc} (run with --verbose for the traceback)", err=True)
        sys.exit(1)
    sys.exit(0)
