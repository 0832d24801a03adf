"""Layer order: tasks -> l2o (optimizers, guard, io) -> meta_train, baselines -> l2o.app."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UPPER = ("meta_train", "baselines", "tasks")
CORE = sorted((ROOT / "l2o").glob("*.py"))


def imported_packages(path: Path) -> set[str]:
    """Top-level package of every import statement in ``path`` (nested ones included)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("path", CORE, ids=lambda p: p.name)
def test_core_modules_import_no_upper_layer(path):
    assert imported_packages(path).isdisjoint(UPPER), path.name


def test_core_modules_are_found():
    assert {"base.py", "guard.py", "io.py", "lstm.py", "mlp.py"} <= {p.name for p in CORE}
    assert not (ROOT / "l2o" / "cli.py").exists() and not (ROOT / "l2o" / "demo.py").exists()


def test_importing_l2o_loads_no_upper_layer():
    code = ("import sys, l2o; print(sorted({m.split('.')[0] for m in sys.modules} & "
            f"set({UPPER!r})))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"


def test_app_module_runs_the_cli():
    done = subprocess.run([sys.executable, "-m", "l2o.app", "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    for command in ("demo", "meta-train", "compare", "pretrained"):
        assert command in done.stdout
