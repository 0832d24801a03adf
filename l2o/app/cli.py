"""The ``l2o`` command line: ``demo``, ``meta-train``, ``compare`` and ``pretrained``.

Each subcommand lives next to the code it drives (``meta_train/cli.py``,
``baselines/cli.py``, ``l2o/app/demo.py``); this module only wires them together.
"""

from __future__ import annotations

import argparse
import json
import sys


def _add_pretrained_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "pretrained", help="list or describe the learned optimizers shipped with l2o"
    )
    parser.add_argument("name", nargs="?", help="show this optimizer's metadata")
    parser.set_defaults(func=_run_pretrained)


def _run_pretrained(args) -> int:
    import l2o

    if args.name is None:
        for name in l2o.list_pretrained():
            loaded = l2o.load_pretrained(name)
            summary = loaded.record["provenance"].get("description", "")
            print(f"{name:24s} horizon {loaded.horizon or '?':>4}  {summary}")
        return 0
    available = l2o.list_pretrained()
    if args.name not in available:
        raise SystemExit(f"l2o pretrained: error: unknown optimizer {args.name!r}; "
                         f"shipped: {', '.join(available) or 'none'}.")
    loaded = l2o.load_pretrained(args.name)
    print(repr(loaded.lopt))
    print(f"meta-trained at a horizon of {loaded.horizon} steps; pass your run length as "
          "as_optax(theta, num_steps=...)")
    print(json.dumps(loaded.record, indent=2, sort_keys=True, default=str))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The full ``l2o`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="l2o",
        description="Meta-train learned optimizers with PES and compare them with "
        "tuned Adam, Lion and Lookahead.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    from l2o.app import demo
    from meta_train import cli as meta_train_cli
    from baselines import cli as baselines_cli

    demo.add_parser(subparsers)
    meta_train_cli.add_parser(subparsers)
    baselines_cli.add_parser(subparsers)
    _add_pretrained_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``l2o`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
