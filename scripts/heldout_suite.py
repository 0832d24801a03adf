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
                        help="shipped learned optimizers or theta files (default: all shipped)")
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


def resolve(entries: list[str]) -> dict:
    """Row name -> ``num_steps -> optax transform`` for shipped names and theta files."""
    import l2o
    from baselines import registry
    from baselines.cli import resolve_optimizer

    entries = entries or l2o.list_pretrained()
    baselines = [e for e in entries if e in registry.names()]
    if baselines:
        raise SystemExit(f"heldout_suite: {baselines} are baselines, which the suite always "
                         "tunes and runs; pass learned optimizers only.")
    try:
        return {(e if e in l2o.list_pretrained() else Path(e).stem): resolve_optimizer(e)
                for e in entries}
    except (ValueError, FileNotFoundError) as err:
        raise SystemExit(f"heldout_suite: error: {err}") from None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from baselines import suite, suite_report
    from tasks import heldout

    for flag in ("steps", "seeds"):
        if getattr(args, flag) < 1:
            raise SystemExit(f"--{flag} must be >= 1, got {getattr(args, flag)}.")
    problems = None
    if args.problems:
        problems = [p.strip() for p in args.problems.split(",") if p.strip()]
        try:
            for name in problems:
                heldout.get(name)
        except KeyError as err:
            raise SystemExit(f"heldout_suite: error: {err.args[0]}") from None
    optimizers = resolve(args.optimizers)
    results = suite.run_suite(optimizers, problems, steps=args.steps, num_seeds=args.seeds,
                              guard=args.guard, key=jax.random.PRNGKey(args.seed))
    paths = suite_report.write_report(results, args.out)
    print(f"wrote {paths['markdown']} and {paths['json']} ({results.device}, "
          f"{results.seconds:.0f} s)")
    for row, a in results.aggregates.items():
        s = a["speedup"]
        print(f"{row:24s} speedup median {s['median']:.3g}x  IQM {s['iqm']:.3g}x  "
              f"wins {a['win_rate']:.2f}  loss ratio max {a['loss_ratio_max']:.3g}  "
              f"diverged {a['divergences']}/{a['num_runs']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
