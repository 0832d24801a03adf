"""Run the ``l2o`` command line in-process or as a subprocess, with tiny budgets."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# A meta-training that compiles and runs in seconds (quadratic tasks, 1 task x 1 pair).
TINY_META = ["--family", "quadratic", "--horizon", "4", "--trunc-length", "2",
             "--num-tasks", "1", "--num-pairs", "1", "--tasks", "1", "--no-progress"]


def run_l2o(capsys, *argv: str) -> tuple[int, str, str]:
    """``(exit status, stdout, stderr)`` of ``l2o ARGV`` run in this process."""
    from l2o.app.cli import main

    status = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def l2o_command(*argv: str) -> list[str]:
    """The subprocess command line of ``l2o ARGV`` (this interpreter, this checkout)."""
    return [sys.executable, "-m", "l2o.app.cli", *map(str, argv)]


def subprocess_env(**extra: str) -> dict:
    """Environment for a subprocess that imports this checkout first."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env.setdefault("MPLBACKEND", "Agg")
    env.update(extra)
    return env


def run_subprocess(argv: list[str], cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess:
    """Run ``argv`` in ``cwd`` with `subprocess_env`; text output captured."""
    return subprocess.run(argv, cwd=cwd, env=subprocess_env(), capture_output=True, text=True,
                          timeout=timeout)
