"""``python -m ecomforge_scorers.fidelity``: the same command as ``ecomforge bench fidelity``."""
import sys

import click

from ecomforge.errors import EcomforgeError
from ecomforge_scorers.command import fidelity

try:
    fidelity.main(prog_name="python -m ecomforge_scorers.fidelity", standalone_mode=False)
except click.ClickException as exc:
    exc.show()
    sys.exit(2)
except EcomforgeError as exc:
    click.echo(f"error: {exc.one_line()}", err=True)
    sys.exit(exc.exit_code)
