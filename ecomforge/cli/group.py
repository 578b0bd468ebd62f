"""The ``ecomforge`` click group; core commands attach to it from their own modules."""
from __future__ import annotations

import logging

import click

from .. import __version__


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
