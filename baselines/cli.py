"""``l2o compare``: tuned baselines vs learned optimizers on one task family or a suite.

Tunes Adam, Lion and Lookahead (learning-rate grids, on tasks of the family's train split),
then runs every optimizer on the same evaluation tasks (--split: the family's heldout
split by default, or its train distribution with unseen task draws) and writes report.md,
results.json and plots to --out. Each comma-separated --optimizers entry is a baseline
name, a shipped learned optimizer or a file written by l2o.save (.json / .msgpack / base
path); its row is labelled by that entry, so runs/a/theta and runs/b/theta stay two rows.
--steps is the inner steps of every training run, --tasks x --seeds the evaluation runs
per optimizer. --suite heldout runs the held-out generalisation suite instead (ten problems
no optimizer is meta-trained on, baselines tuned per problem; --problems picks some).
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
from l2o.app.errors import UsageError

EXAMPLES = """examples:
  l2o compare --family mlp-digits --optimizers adam,lion,lookahead,mlp-image,runs/mlp/theta \\
      --guard --steps 200 --seeds 5 --tasks 8 --out runs/compare
  l2o compare --family mlp-digits --split train --optimizers mlp-image   # in-distribution
  l2o compare --family mlp-digits --dataset mnist --family-option hidden_sizes=[128]
  l2o compare --suite heldout --optimizers mlp-image,runs/mlp/theta --guard --out runs/suite"""
SPLITS = ("heldout", "train")


def lists_epilog() -> str:
    """Baselines, shipped optimizers and task families (with their options), for --help."""
    import l2o
    from tasks import registry as task_registry

    families = "\n".join(f"  {name:20s} options: {', '.join(task_registry.overrides(name))}"
                         for name in task_registry.names())
    return (f"baselines: {', '.join(registry.names())}\n"
            f"shipped learned optimizers: {', '.join(l2o.list_pretrained())}\n"
            f"task families (--family; options via --dataset / --family-option):\n{families}")


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register the ``compare`` subcommand on an ``argparse`` subparsers object."""
    parser = subparsers.add_parser(
        "compare",
        help="tune Adam/Lion/Lookahead and compare them with learned optimizers",
        description=__doc__.split("\n", 2)[2].strip(),
        epilog=f"{lists_epilog()}\n\n{EXAMPLES}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--family", default=None,
                        help="task family name (tasks.registry); required without --suite")
    parser.add_argument("--split", choices=SPLITS, default="heldout",
                        help="split of --family the evaluation tasks come from (default "
                             "%(default)s: the family's held-out architectures/sizes; train: "
                             "the training distribution, other task draws)")
    parser.add_argument("--dataset", default=None,
                        help="dataset of an image family: digits (embedded), mnist, "
                             "fashion_mnist, cifar10 (prepared TFDS data)")
    parser.add_argument("--family-option", action="append", default=[], metavar="KEY=VALUE",
                        dest="family_options",
                        help="a task-family option, e.g. hidden_sizes=[128] (repeatable)")
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
    parser.add_argument("--out", default="runs/compare",
                        help="output directory (default %(default)s)")
    parser.set_defaults(func=run)
    return parser


def resolve_families(name: str, overrides: dict | None = None,
                     split: str = "heldout") -> tuple[Any, Any]:
    """(tuning, evaluation) ``TaskFamily`` of ``name`` in ``tasks.registry``: its train split
    and its ``split`` split, both with keyword ``overrides``."""
    from tasks import registry as task_registry

    overrides = overrides or {}
    return (task_registry.get(name, **overrides),
            task_registry.get(name, split=split, **overrides))


def family_overrides(args: argparse.Namespace) -> dict:
    """``--dataset`` and ``--family-option KEY=VALUE`` as family keyword arguments (values
    parsed as JSON when they are JSON, lists as tuples)."""
    from meta_train.config_fields import parse_json_or_str, tuple_form

    overrides = {}
    if getattr(args, "dataset", None) is not None:
        overrides["dataset"] = args.dataset
    for item in getattr(args, "family_options", []):
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--family-option {item!r} is not of the form KEY=VALUE.")
        overrides[key.strip()] = tuple_form(parse_json_or_str(raw.strip()))
    return overrides


def unique_labels(entries: list[str]) -> list[str]:
    """A row label per ``--optimizers`` entry: the name, or a file's path without its
    ``.json`` / ``.msgpack`` suffix (``runs/a/theta``), so no two rows share one.

    Raises:
      UsageError: two entries name the same optimizer.
    """
    labels = []
    for entry in entries:
        path = Path(entry)
        label = str(path.with_suffix("")) if path.suffix in (".json", ".msgpack") else entry
        if label in labels:
            raise UsageError(f"--optimizers lists {label!r} twice; each optimizer is one row.")
        labels.append(label)
    return labels


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

    Raises `l2o.app.errors.UsageError` (one line) for bad sizes, unknown optimizer or
    family names, family options and unreadable optimizer files, before any long work.
    """
    from baselines.compare import compare
    from baselines.report import write_report
    from baselines.report_summary import summary_lines

    entries = [e.strip() for e in args.optimizers.split(",") if e.strip()]
    if args.suite:
        if args.family is not None:
            raise UsageError("pass --family or --suite, not both.")
        run_and_report(entries, args.problems,
                       DEFAULT_STEPS if args.steps is None else args.steps,
                       DEFAULT_SEEDS if args.seeds is None else args.seeds,
                       args.guard, args.seed, args.out)
        return 0
    if args.problems is not None:
        raise UsageError("--problems needs --suite heldout.")
    if args.family is None:
        raise UsageError("pass --family NAME (tasks.registry) or "
                         f"--suite {'|'.join(SUITES)}.")
    args.steps = 1000 if args.steps is None else args.steps
    args.seeds = 4 if args.seeds is None else args.seeds
    if getattr(args, "old_num_tasks", None) is not None:
        print("l2o compare: warning: --num-tasks is deprecated here; use --tasks (held-out "
              "tasks; --num-tasks is meta-training's tasks per outer step).", file=sys.stderr)
        args.tasks = args.old_num_tasks
    for name in ("steps", "seeds", "tasks", "num_evals"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}.")
    if not entries:
        raise UsageError("--optimizers is empty; pass e.g. --optimizers adam,lion,lookahead.")
    labels = unique_labels(entries)
    overrides = family_overrides(args)
    try:
        optimizers = {label: resolve_optimizer(e) for label, e in zip(labels, entries)}
        train, heldout = resolve_families(args.family, overrides, args.split)
    except (KeyError, ValueError, TypeError) as err:
        # Unknown names and unreadable files: one line for the user, not a traceback.
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        raise UsageError(message) from None
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
    from tasks.describe import describe

    results.config["evaluated_on"] = describe(heldout, args.family)
    results.config["tuned_on"] = describe(train, args.family)
    results.config["family_overrides"] = {k: list(v) if isinstance(v, tuple) else v
                                          for k, v in overrides.items()}
    paths = write_report(results, args.out)
    print(f"wrote {paths['markdown']} and {paths['json']} ({results.device})")
    print(summary_lines(results))
    return 0
