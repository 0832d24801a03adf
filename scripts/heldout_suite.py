"""Run the held-out generalisation suite: ``python scripts/heldout_suite.py [OPTIMIZERS ...]``.

Every problem of ``tasks.heldout`` (10 problems on scikit-learn datasets no optimizer
is meta-trained on) with Adam, Lion and Lookahead tuned per problem, Adam at the
suite's single best learning rate, and the given learned optimizers (shipped names from
``l2o.list_pretrained()`` or files written by ``l2o.save``; default: every shipped one),
alone and, with ``--guard``, under the loss guard with the tuned Adam as fallback::

    python scripts/heldout_suite.py --guard --out docs/results/heldout_suite
    python scripts/heldout_suite.py runs/mlp/theta --problems iris-elu,diabetes-tanh

Writes ``report.md``, ``results.json``, ``summary.png`` and ``loss_curves.png`` into
``--out`` (see ``baselines.suite_report``) and prints the summary table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from baselines import suite

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("optimizers", nargs="*",
                        help="shipped learned optimizers or theta files (default: all shipped; "
                        "baseline names are skipped, the suite always runs them)")
    parser.add_argument("--guard", action="store_true",
                        help="also run each learned optimizer under the loss guard")
    parser.add_argument("--problems", default=None,
                        help="comma-separated problem names (default: the whole suite)")
    parser.add_argument("--steps", type=int, default=suite.DEFAULT_STEPS,
                        help="steps per run (default %(default)s)")
    parser.add_argument("--seeds", type=int, default=suite.DEFAULT_SEEDS,
                        help="seeds per problem (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="PRNG seed (default 0)")
    parser.add_argument("--out", default="runs/heldout_suite", help="output directory")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    import l2o
    from baselines.suite_cli import run_and_report

    args = parse_args(argv)
    run_and_report(args.optimizers or l2o.list_pretrained(), args.problems, args.steps,
                   args.seeds, args.guard, args.seed, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
