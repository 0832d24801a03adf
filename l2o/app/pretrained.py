"""``l2o pretrained [NAME]``: list the shipped learned optimizers or show one's record."""

from __future__ import annotations

import argparse
import json

from l2o.app.errors import UsageError

EXAMPLES = """examples:
  l2o pretrained                 # one line per shipped optimizer
  l2o pretrained mlp-image       # its architecture, horizon and full provenance (JSON)"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``pretrained`` on an ``argparse`` subparsers object; returns its parser."""
    import l2o

    parser = subparsers.add_parser(
        "pretrained", help="list or describe the learned optimizers shipped with l2o",
        description="List the learned optimizers shipped with l2o, or print one's "
                    "architecture, meta-training horizon and provenance.",
        epilog=f"shipped optimizers: {', '.join(l2o.list_pretrained())}\n\n{EXAMPLES}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("name", nargs="?", help="show this optimizer's metadata")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Print the listing (no name) or one optimizer's record; returns 0."""
    import l2o

    available = l2o.list_pretrained()
    if args.name is None:
        for name in available:
            loaded = l2o.load_pretrained(name)
            summary = loaded.record["provenance"].get("description", "")
            print(f"{name:24s} horizon {loaded.horizon or '?':>4}  {summary}")
        return 0
    if args.name not in available:
        raise UsageError(f"unknown optimizer {args.name!r}; shipped: "
                         f"{', '.join(available) or 'none'} (see 'l2o pretrained').")
    loaded = l2o.load_pretrained(args.name)
    print(repr(loaded.lopt))
    print(f"meta-trained at a horizon of {loaded.horizon} steps; pass your run length as "
          "as_optax(theta, num_steps=...)")
    print(json.dumps(loaded.record, indent=2, sort_keys=True, default=str))
    return 0
