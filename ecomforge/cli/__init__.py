"""The ``ecomforge`` command line: one-line errors, exit codes 0/1/2, plugin commands via a hook."""
from __future__ import annotations

import logging
import sys

import click

from .. import __version__
from ..errors import EcomforgeError


class PluginGroup(click.Group):
    """A group whose commands also come from plugins (``register_commands``), loaded on first use."""

    _loaded = False

    def _load_plugins(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        from ..plugins import get_plugin_manager

        pm = get_plugin_manager()
        for impl in pm.hook.register_commands.get_hookimpls():
            try:
                impl.function(cli=self)
            except Exception as exc:  # a broken plugin must not break the CLI
                click.echo(f"warning: plugin {impl.plugin_name} failed to add commands: {exc}", err=True)

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Core and plugin commands."""
        self._load_plugins()
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        """Find a core command first, then plugin commands."""
        cmd = super().get_command(ctx, name)
        if cmd is None:
            self._load_plugins()
            cmd = super().get_command(ctx, name)
        return cmd


@click.group(cls=PluginGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ecomforge")
@click.option("-v", "--verbose", is_flag=True, help="Show tracebacks and debug logs.")
@click.pass_context
def cli(ctx: click.Context, verbose: bool) -> None:
    """Turn a few reference photos of a product into many faithful product images."""
    ctx.ensure_object(dict)["verbose"] = verbose
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, format="%(message)s")


def _register_core() -> None:
    from . import analyze, info, run  # noqa: F401  (the modules attach their commands to ``cli``)
    from ..web import cli as _web  # noqa: F401  (``serve``; fastapi/gradio load only when it runs)


_register_core()


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI and turn errors into one line and an exit code."""
    args = sys.argv[1:] if argv is None else argv
    verbose = "-v" in args or "--verbose" in args
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
