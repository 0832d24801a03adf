"""``l2o compare``: tuned baselines vs learned optimizers on one task family or a suite.

    l2o compare --family mlp-digits --optimizers adam,lion,lookahead,NAME,path/to/theta.json \
        --guard --steps 1000 --seeds 4 --tasks 8 --out runs/compare
    l2o compare --suite heldout --optimizers NAME,path/to/theta --guard --out runs/suite

``--suite heldout`` runs the held-out generalisation suite (``baselines.suite``: ten
problems no optimizer is meta-trained on, baselines tuned per problem; default 300
steps x 3 seeds; ``--problems`` picks some) instead of one family.

Each comma-separated entry of ``--optimizers`` is a baseline name
(``baselines.registry.names()``), a shipped learned optimizer (``l2o.list_pretrained()``)
or a file written by ``l2o.save`` (``.json`` / ``.msgpack`` / base path). ``--steps`` is
the inner steps of every training run, ``--tasks`` x ``--seeds`` the held-out runs per
optimizer (the same words as ``l2o meta-train`` and ``l2o demo``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import jax

from baselines import registry
from baselines.suite import DEFAULT_SEEDS, DEFAULT_STEPS
from baselines.suite_cli import SUITES, run_and_report


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register the ``compare`` subcommand on an ``argparse`` subparsers object."""
    parser = subparsers.add_parser(
        "compare",
        help="tune Adam/Lion/Lookahead and compare them with learned optimizers",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--family", default=None,
                        help="task family name (tasks.registry); required without --suite")
    parser.add_argument("--suite", choices=SUITES, default=None,
                        help="run a suite of problems instead of one family (see above)")
    parser.add_argument("--problems", default=None,
                        help="with --suite: comma-separated problem names (default: all)")
    parser.add_argument(
        "--optimizers",
        default=",".join(registry.DEFAULT_BASELINES),
        help="comma-separated baseline names, pretrained names or theta files "
        "(default: %(default)s); tuned Adam is always included",
    )
    parser.add_argument(
        "--guard", action="store_true",
        help="also run each learned optimizer under the loss guard (fallback: tuned Adam)",
    )
    parser.add_argument("--steps", type=int, default=None,
                        help=f"steps per run (default 1000; {DEFAULT_STEPS} with --suite)")
    parser.add_argument("--seeds", type=int, default=None,
                        help=f"seeds per task (default 4; {DEFAULT_SEEDS} with --suite)")
    parser.add_argument("--tasks", type=int, default=8, help="held-out tasks (default 8)")
    parser.add_argument("--num-tasks", dest="old_num_tasks", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--tune-seeds", type=int, default=None, help="default: --seeds")
    parser.add_argument("--tune-tasks", type=int, default=None, help="default: --tasks")
    parser.add_argument("--no-tune", action="store_true", help="use default hyper-parameters")
    parser.add_argument("--num-evals", type=int, default=10, help="held-out evaluations per run")
    parser.add_argument("--seed", type=int, default=0, help="PRNG seed (default 0)")
    parser.add_argument("--out", default="compare_out", help="output directory")
    parser.set_defaults(func=run)
    return parser


def resolve_families(name: str) -> tuple[Any, Any]:
    """(train, held-out) ``TaskFamily`` registered as ``name`` in ``tasks.registry``."""
    from tasks import registry as task_registry

    return task_registry.get(name), task_registry.get(name, split="heldout")


def resolve_optimizer(entry: str) -> Any:
    """A baseline name stays a name; anything else becomes ``num_steps -> transform``.

    Raises:
      ValueError: when ``entry`` is neither a baseline, a pretrained name nor a file.
    """
    if entry in registry.names():
        return entry
    import l2o

    path = Path(entry)
    candidates = [path, path.with_suffix(".json")] if path.suffix == "" else [path]
    if any(p.exists() for p in candidates):
        lopt, theta, _ = l2o.load(path)
    elif entry in l2o.list_pretrained():
        lopt, theta, _ = l2o.load_pretrained(entry)
    else:
        raise ValueError(
            f"unknown optimizer {entry!r}: expected a baseline {registry.names()}, a "
            f"pretrained optimizer {l2o.list_pretrained()} or an existing file written by "
            "l2o.save (NAME.json + NAME.msgpack)."
        )
    return lambda num_steps: lopt.as_optax(theta, num_steps=num_steps)


def run(args: argparse.Namespace) -> int:
    """Run the comparison described by ``args`` and write the report; returns 0.

    Raises ``SystemExit`` with a one-line message for bad sizes, unknown optimizer or
    family names and unreadable optimizer files.
    """
    from baselines.compare import compare
    from baselines.report import write_report

    entries = [e.strip() for e in args.optimizers.split(",") if e.strip()]
    if args.suite:
        if args.family is not None:
            raise SystemExit("l2o compare: error: pass --family or --suite, not both.")
        run_and_report(entries, args.problems,
                       DEFAULT_STEPS if args.steps is None else args.steps,
                       DEFAULT_SEEDS if args.seeds is None else args.seeds,
                       args.guard, args.seed, args.out)
        return 0
    if args.problems is not None:
        raise SystemExit("l2o compare: error: --problems needs --suite heldout.")
    if args.family is None:
        raise SystemExit("l2o compare: error: pass --family NAME (tasks.registry) or "
                         f"--suite {'|'.join(SUITES)}.")
    args.steps = 1000 if args.steps is None else args.steps
    args.seeds = 4 if args.seeds is None else args.seeds
    if getattr(args, "old_num_tasks", None) is not None:
        print("l2o compare: warning: --num-tasks is deprecated here; use --tasks (held-out "
              "tasks; --num-tasks is meta-training's tasks per outer step).", file=sys.stderr)
        args.tasks = args.old_num_tasks
    for name in ("steps", "seeds", "tasks", "num_evals"):
        if getattr(args, name) < 1:
            raise SystemExit(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}.")
    if not entries:
        raise SystemExit("--optimizers is empty; pass e.g. --optimizers adam,lion,lookahead.")
    try:
        optimizers = {
            (e if e in registry.names() else Path(e).stem): resolve_optimizer(e) for e in entries
        }
        train, heldout = resolve_families(args.family)
    except (KeyError, ValueError, TypeError, FileNotFoundError) as err:
        # Unknown names and unreadable files: one line for the user, not a traceback.
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        raise SystemExit(f"l2o compare: error: {message}") from None
    results = compare(
        optimizers,
        train,
        steps=args.steps,
        num_seeds=args.seeds,
        num_tasks=args.tasks,
        tune=not args.no_tune,
        heldout_family=heldout,
        guard=args.guard,
        tune_seeds=args.tune_seeds,
        tune_tasks=args.tune_tasks,
        num_evals=args.num_evals,
        key=jax.random.PRNGKey(args.seed),
    )
    paths = write_report(results, args.out)
    print(f"wrote {paths['markdown']} and {paths['json']} ({results.device})")
    for name, row in results.rows.items():
        m = row.metrics
        print(
            f"{name:24s} final train {m['final_train_loss']:.4g}  tail train "
            f"{m['tail_train_loss']:.4g}  speedup {m['speedup_median']:.3g}x  "
            f"wins {m['win_rate']:.2f}  diverged {m['divergences']}/{m['num_runs']}"
        )
    return 0
