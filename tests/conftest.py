"""Root test configuration: the repository's tests/ helpers are importable as tests.support."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
