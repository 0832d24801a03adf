"""The ``l2o`` command line: ``demo``, ``meta-train``, ``compare`` and ``pretrained``.

Each subcommand lives next to the code it drives (``meta_train/cli.py``,
``baselines/cli.py``, ``l2o/app/demo.py``); this module only wires them together, reports
errors as one line (`l2o.app.errors`) and answers ``l2o --help`` without importing JAX.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from l2o.app.errors import FAILURE, USAGE, RunFailure, UsageError, error_line

DESCRIPTION = ("Meta-train learned optimizers with PES and compare them with tuned Adam, "
               "Lion and Lookahead.")

# Subcommand -> (module with add_parser, one-line help). Imported only when used.
COMMANDS = {
    "demo": ("l2o.app.demo", "quick meta-training + comparison report on the embedded digits "
                             "data (no download)"),
    "meta-train": ("meta_train.cli", "meta-train a learned optimizer with PES (or truncated "
                                     "ES / NRES)"),
    "compare": ("baselines.cli", "tune Adam/Lion/Lookahead and compare them with learned "
                                 "optimizers"),
    "pretrained": ("l2o.app.pretrained", "list or describe the learned optimizers shipped "
                                         "with l2o"),
}

EPILOG = """examples:
  l2o demo --out runs/demo
  l2o meta-train --family mlp-digits --outer-steps 1500 --out runs/mlp
  l2o compare --family mlp-digits --optimizers adam,lion,mlp-image,runs/mlp/theta --guard
  l2o pretrained mlp-image

'l2o COMMAND --help' lists each command's flags, defaults, task families and optimizers.
Exit status: 0 done, 1 failed at run time, 2 bad usage, 130/143 interrupted (checkpointed)."""


def _parser(commands) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="l2o", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_) in COMMANDS.items():
        if name in commands:
            importlib.import_module(module).add_parser(subparsers)
        else:  # listed in the help, parsed only when chosen
            subparsers.add_parser(name, help=help_)
    return parser


def build_parser() -> argparse.ArgumentParser:
    """The full ``l2o`` argument parser (imports every subcommand)."""
    return _parser(COMMANDS)


def _run_failures() -> tuple[type[BaseException], ...]:
    """Exceptions that mean 'failed at run time' (exit 1) rather than a bug."""
    failures: list[type[BaseException]] = [RunFailure, OSError]
    for module, name in (("meta_train.checkpoint", "CheckpointError"),):
        if module in sys.modules:
            failures.append(getattr(sys.modules[module], name))
    return tuple(failures)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``l2o`` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    chosen = [a for a in argv[:1] if a in COMMANDS]
    parser = _parser(chosen)
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return USAGE
    try:
        return int(args.func(args) or 0)
    except UsageError as err:
        print(error_line(args.command, err), file=sys.stderr)
        return USAGE
    except BaseException as err:
        interrupted = getattr(sys.modules.get("meta_train.interrupt"), "Interrupted", ())
        if interrupted and isinstance(err, interrupted):
            print(err, file=sys.stderr, flush=True)
            return err.exit_status
        if isinstance(err, KeyboardInterrupt):  # before meta-training's first step, or twice
            print(f"l2o {args.command}: interrupted", file=sys.stderr)
            return 130
        if not isinstance(err, _run_failures()):
            raise
        print(error_line(args.command, err), file=sys.stderr)
        return FAILURE


if __name__ == "__main__":
    sys.exit(main())
