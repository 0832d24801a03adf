"""Every shell command of the README parses, and (slow) runs with tiny budgets.

Commands come from the README's ```bash blocks (continuation lines joined, ``&&`` split,
comments and ``[optional ...]`` parts dropped); the install and test commands are skipped.
The slow test runs each one in order in a scratch directory, with budget flags appended
(later flags and ``--set`` overrides win), so the README cannot drift from the code.
"""

from __future__ import annotations

import re
import shlex
import sys

import pytest

from helpers.cli import ROOT, run_subprocess

README = ROOT / "README.md"
SKIP = ("pip", "python -m pytest", "python3 -m venv", ".ci/")
PLACEHOLDERS = re.compile(r"--coordinator HOST0:\d+ --num-processes N --process-id i")


def readme_commands(text: str) -> list[str]:
    """The runnable commands of the ```bash blocks of ``text``, in order."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if not line or line.startswith("#"):
                continue
            for part in line.split("&&"):
                part = re.sub(r"\s*\[[^\]]*\]", "", part).strip()
                part = PLACEHOLDERS.sub("", part).strip()
                part = part.removeprefix(".venv/bin/")
                if part and not part.startswith(SKIP):
                    commands.append(part)
    return commands


TINY = {
    "demo": ["--outer-steps", "2", "--horizon", "4", "--trunc-length", "2", "--num-tasks", "1",
             "--num-pairs", "1", "--steps", "4", "--tasks", "1", "--seeds", "1",
             "--pretrained", "mlp-image", "--overwrite"],
    "meta-train": ["--no-progress", "--no-reference", "--set", "outer_steps=2", "--set",
                   "horizon=4", "--set", "trunc_length=2", "--set", "num_tasks=1", "--set",
                   "num_pairs=1", "--set", "eval_tasks=1", "--set", "eval_every=0"],
    "resume": ["--no-progress", "--no-reference", "--outer-steps", "3"],
    "compare": ["--steps", "4", "--seeds", "1", "--tasks", "1", "--num-evals", "1"],
    "suite": ["--steps", "2", "--seeds", "1", "--problems", "iris-elu"],
}


def tiny(command: str) -> list[str]:
    """``command`` as an argument list with the tiny budget of its kind appended."""
    argv = shlex.split(command)
    if argv[0] == "python":
        return [sys.executable, *argv[1:], *TINY["suite"]]
    sub = argv[1] if len(argv) > 1 else ""
    if sub == "meta-train":
        kind = "resume" if "--resume" in argv else "meta-train"
    elif sub == "compare":
        kind = "suite" if "--suite" in argv else "compare"
    else:
        kind = sub
    extra = ["--horizon-range", "2", "4"] if "--horizon-range" in argv else []
    return [sys.executable, "-m", "l2o.app.cli", *argv[1:], *TINY.get(kind, []), *extra]


def test_the_readme_shows_every_subcommand():
    commands = readme_commands(README.read_text())
    shown = {shlex.split(c)[1] for c in commands if c.startswith("l2o ")}
    assert {"demo", "meta-train", "compare", "pretrained"} <= shown
    assert any("--config scripts/pretrain/mlp-image.json" in c for c in commands)


def test_every_readme_command_parses_and_its_config_resolves():
    from l2o.app.cli import build_parser
    from meta_train.cli import resolve_config

    parser = build_parser()
    for command in readme_commands(README.read_text()):
        argv = shlex.split(command)
        if argv[0] != "l2o":
            continue
        args = parser.parse_args(argv[1:])
        if args.command == "meta-train" and args.resume is None:
            config = resolve_config(args)  # e.g. a recipe file's extra keys
            config.check_names()


@pytest.mark.slow
def test_every_readme_command_runs_with_tiny_budgets(tmp_path):
    (tmp_path / "scripts").symlink_to(ROOT / "scripts")
    for command in readme_commands(README.read_text()):
        done = run_subprocess(tiny(command), cwd=tmp_path)
        assert done.returncode == 0, f"{command}\n{done.stderr[-3000:]}"
