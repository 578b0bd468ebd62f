"""``python tests/toycli.py ARGS``: the real CLI with the toy plugins registered (for subprocess tests)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from ecomforge.cli import main
from ecomforge.testing import temporary_plugins

import toyplugins

if __name__ == "__main__":
    with temporary_plugins(toyplugins):
        main(sys.argv[1:])
