"""Make the local toy task family importable as ``toy`` from these tests."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
