"""The classic plugin's tests share composites.py (real products in real scenes)."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
