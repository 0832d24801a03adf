"""The ``l2o meta-train`` subcommand.

Meta-train a learned optimizer with PES (or truncated ES / NRES) on a task family; the
run directory gets config.json, metrics.csv/jsonl, checkpoints and the final theta. The
last lines say what the held-out tasks are and compare the trained optimizer with the
untrained one and with Adam tuned on those tasks.

Precedence: defaults < --config file (or the resumed run's config.json) < direct flags
(--family, --outer-steps, --dataset...) < --set key=value overrides. --outer-steps counts
meta-training steps; the inner run length is --horizon; --tasks sizes the held-out
evaluation (eval_tasks) and --num-tasks the tasks per outer step.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from l2o.app.errors import UsageError
from meta_train.config import MetaTrainConfig

EXAMPLES = """examples:
  l2o meta-train --family quadratic --outer-steps 300 --out runs/q
  l2o meta-train --family mlp-digits --dataset mnist --family-option hidden_sizes=[64]
  l2o meta-train --config run.json --set sigma=0.02 --set lopt_config.hidden_sizes=[16,16]
  l2o meta-train --mixture wide --horizon-range 100 2000 --trunc-length 20   # mixture
  l2o meta-train --mixture mixture.json    # [{"family": ..., "weight": ..., "overrides": ...}]
  l2o meta-train --init-theta lstm-generalist --lopt lstm --set lopt_config.lr_adapt=0.03
  l2o meta-train --resume runs/q --outer-steps 600    # continue a run (bit-identically)
  l2o meta-train --out runs/q --overwrite             # replace an earlier run
  l2o meta-train --coordinator 10.0.0.1:1234 --num-processes 2 --process-id 0   # per host

Ctrl-C (SIGINT) or SIGTERM checkpoints the current step and prints the --resume command."""

# Direct flags and the config field each sets.
_FLAGS = {
    "family": "family", "heldout_family": "heldout_family", "lopt": "lopt",
    "strategy": "strategy", "outer_steps": "outer_steps", "seed": "seed", "sigma": "sigma",
    "outer_lr": "outer_lr", "horizon": "horizon", "trunc_length": "trunc_length",
    "num_tasks": "num_tasks", "num_pairs": "num_pairs", "tasks": "eval_tasks",
    "keep": "keep", "num_devices": "num_devices", "init_theta": "init_theta",
    "coordinator": "coordinator", "num_processes": "num_processes", "process_id": "process_id",
}


def lists_epilog() -> str:
    """The registered task families (with their options) and learned optimizers."""
    import l2o
    from tasks import registry

    families = "\n".join(f"  {name:20s} options: {', '.join(registry.overrides(name))}"
                         for name in registry.names())
    return (f"task families (--family; options via --dataset / --family-option):\n{families}\n"
            f"learned optimizers (--lopt): {', '.join(l2o.registry.names())}")


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``meta-train`` on an ``argparse`` subparsers object; returns its parser."""
    d = MetaTrainConfig()
    parser = subparsers.add_parser(
        "meta-train",
        help="meta-train a learned optimizer with PES (or truncated ES / NRES)",
        description=__doc__.split("\n", 2)[2].strip(),
        epilog=f"{lists_epilog()}\n\n{EXAMPLES}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--config", type=Path, help="JSON file of MetaTrainConfig fields")
    add("--resume", type=Path, metavar="RUN_DIR",
        help="continue the run in RUN_DIR from its latest checkpoint")
    add("--allow-fresh", action="store_true",
        help="with --resume: start from step 0 if RUN_DIR has no checkpoint")
    add("--out", type=Path, metavar="RUN_DIR", help=f"run directory (default {d.out_dir})")
    add("--overwrite", action="store_true",
        help="replace an earlier run in --out (its files are deleted)")
    add("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
        help="override any MetaTrainConfig field (repeatable)")
    add("--family", help=f"training task family (default {d.family})")
    add("--dataset", help="dataset of an image family: digits (embedded), mnist, "
                          "fashion_mnist, cifar10 (prepared TFDS data)")
    add("--family-option", action="append", default=[], metavar="KEY=VALUE",
        dest="family_options", help="a task-family option, e.g. hidden_sizes=[64] (repeatable; "
                                    "the options of each family are listed below)")
    add("--heldout-family", dest="heldout_family",
        help="family whose heldout split is evaluated (default: --family)")
    add("--lopt", help=f"learned optimizer (default {d.lopt})")
    add("--strategy", choices=("pes", "tes", "nres"), help=f"default {d.strategy}")
    add("--outer-steps", dest="outer_steps", type=int,
        help=f"meta-training (outer) steps in total (default {d.outer_steps})")
    add("--steps", dest="old_steps", type=int, help=argparse.SUPPRESS)
    add("--seed", type=int, help=f"PRNG seed (default {d.seed})")
    add("--sigma", type=float, help=f"perturbation std (default {d.sigma})")
    add("--outer-lr", dest="outer_lr", type=float, help=f"default {d.outer_lr}")
    add("--horizon", type=int, help=f"inner steps per training run (default {d.horizon})")
    add("--trunc-length", dest="trunc_length", type=int,
        help=f"inner steps per outer step, divides --horizon (default {d.trunc_length})")
    add("--num-tasks", dest="num_tasks", type=int,
        help=f"tasks per outer step (default {d.num_tasks})")
    add("--num-pairs", dest="num_pairs", type=int,
        help=f"antithetic pairs per task (default {d.num_pairs})")
    add("--tasks", type=int, help=f"tasks of each held-out evaluation (default {d.eval_tasks})")
    add("--keep", choices=("last", "best"),
        help="theta to keep: the last one, or the best held-out evaluation's "
             f"(default {d.keep})")
    add("--mixture", metavar="NAME_OR_FILE",
        help="meta-train on a mixture of task families: a predefined mixture "
             "(tasks.mixtures, e.g. 'wide') or a JSON file holding a list of "
             "{family, weight, overrides, augment} entries")
    add("--horizon-range", dest="horizon_range", type=int, nargs=2, metavar=("MIN", "MAX"),
        help="sample each inner run's horizon log-uniformly in [MIN, MAX] (multiples of "
             "--trunc-length)")
    add("--init-theta", dest="init_theta", metavar="NAME_OR_PATH",
        help="start from a shipped optimizer (l2o.list_pretrained()) or a saved theta "
             "instead of a fresh init; --lopt/--set lopt_config must match its architecture")
    add("--num-devices", dest="num_devices", type=int,
        help="devices to shard the population over (default 0: all that divide "
             "2*num_tasks*num_pairs); --set shard=false for one device")
    add("--coordinator", metavar="HOST:PORT",
        help="address of process 0 for a multi-process (multi-host) run")
    add("--num-processes", dest="num_processes", type=int,
        help="processes in a multi-process run (same command on each host)")
    add("--process-id", dest="process_id", type=int,
        help="this process's index in [0, num_processes); 0 writes the files")
    add("--no-reference", action="store_true",
        help="skip the tuned-Adam reference run at the end")
    add("--no-progress", action="store_true", help="hide the progress bar")
    add("--print-config", action="store_true", help="print the resolved config as JSON and exit")
    parser.set_defaults(func=run)
    return parser


def _family_option_hint(config: MetaTrainConfig, applied: list[str],
                        overrides: list[str]) -> None:
    """`UsageError` pointing to ``--dataset`` / ``--family-option`` for a ``--set`` key that
    is an option of the task family, not a config field. ``applied`` are all the overrides
    (flags then ``--set``), read only for the family they name."""
    fields = set(config.to_dict())
    family = config.family
    for item in applied:
        key, _, value = item.partition("=")
        if key.strip() == "family":
            family = value.strip()
    try:
        from tasks import registry

        options = set(registry.overrides(family))
    except Exception:  # unknown family: reported later, with the valid names
        return
    for item in overrides:
        key, _, value = item.partition("=")
        key = key.strip()
        if key not in fields and key.split(".")[0] not in fields and key in options:
            flag = (f"--dataset {value.strip()}" if key == "dataset"
                    else f"--family-option {key}={value.strip()}")
            raise UsageError(
                f"--set {key}: {key!r} is not a config field but an option of task family "
                f"{family!r}; pass {flag} (or --set family_overrides.{key}=...).")


def load_config_file(path: Path) -> MetaTrainConfig:
    """A `MetaTrainConfig` from a JSON file; a top-level ``"description"`` (the recipes in
    ``scripts/pretrain/`` have one) is text for people and is ignored."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"config file {str(path)!r} does not exist.") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"config file {str(path)!r} is not valid JSON: {err}.") from None
    if isinstance(data, dict):
        data.pop("description", None)
    return MetaTrainConfig.from_dict(data)


def resolve_config(args: argparse.Namespace) -> MetaTrainConfig:
    """The `MetaTrainConfig` that ``args`` describe (see module docstring for precedence)."""
    if getattr(args, "old_steps", None) is not None:
        raise ValueError(
            "--steps no longer sets the outer steps: on every l2o command --steps is inner "
            "steps per training run. Pass --outer-steps for meta-training steps (--horizon "
            "for the inner run length).")
    if args.resume is not None and args.config is not None:
        raise ValueError("pass either --config or --resume (which reuses the run's config).")
    if args.resume is not None:
        config = MetaTrainConfig.from_json(Path(args.resume) / "config.json")
        config = config.with_overrides([f"out_dir={args.resume}"])
    elif args.config is not None:
        config = load_config_file(args.config)
    else:
        config = MetaTrainConfig()
    overrides = []
    if args.out is not None:
        overrides.append(f"out_dir={args.out}")
    for flag, field in _FLAGS.items():
        value = getattr(args, flag, None)
        if value is not None:
            overrides.append(f"{field}={value}")
    if getattr(args, "dataset", None) is not None:
        overrides.append(f"family_overrides.dataset={args.dataset}")
    for item in getattr(args, "family_options", []):
        if "=" not in item:
            raise ValueError(f"--family-option {item!r} is not of the form KEY=VALUE.")
        overrides.append(f"family_overrides.{item}")
    if getattr(args, "mixture", None) is not None:
        overrides.append("mixture=" + json.dumps(mixture_entries(args.mixture)))
    if getattr(args, "horizon_range", None) is not None:
        overrides.append("horizon_range=" + json.dumps(list(args.horizon_range)))
    try:
        # Validated once, with every override: a flag's value may need a --set one
        # (e.g. --horizon-range below the default truncation with --set trunc_length=...).
        return config.with_overrides(overrides + list(args.overrides))
    except ValueError:
        _family_option_hint(config, overrides + list(args.overrides), list(args.overrides))
        raise


def mixture_entries(value: str) -> list:
    """The entries ``--mixture`` names: a predefined mixture, or a JSON file holding a
    list of entries (or an object with a ``"mixture"`` list)."""
    from tasks import mixtures

    path = Path(value)
    if path.is_file():
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"--mixture file {value!r} is not valid JSON: {err}.") from None
        if isinstance(data, dict) and "mixture" in data:
            data = data["mixture"]
        if not isinstance(data, list):
            raise ValueError(f"--mixture file {value!r} must hold a JSON list of entries (or "
                             "an object with a \"mixture\" list).")
        return data
    if value in mixtures.names():
        return mixtures.get(value)
    import difflib

    close = difflib.get_close_matches(value, mixtures.names(), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"--mixture {value!r} is neither a predefined mixture "
                     f"({mixtures.names()}) nor a JSON file.{hint}")


def check_lopt_config(config: MetaTrainConfig) -> None:
    """`UsageError` if ``config.lopt_config`` has a key or value the optimizer rejects."""
    import l2o

    try:
        l2o.registry.get(config.lopt, **config.lopt_config)
    except (KeyError, TypeError, ValueError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        raise UsageError(f"lopt_config {config.lopt_config}: {message}") from None


def prepare(args: argparse.Namespace):
    """Resolve and validate everything ``args`` ask for before any long work.

    Returns ``(config, components)``; raises `UsageError` for bad flags, names, configs and
    run directories (and lets `meta_train.run_dir.AlreadyDone` through).
    """
    from meta_train import run_dir
    from meta_train.train import build, resolve_resume

    try:
        config = resolve_config(args)
        if args.print_config:
            return config, None
        config.check_names()
        if args.resume is not None:
            config = resolve_resume(config, Path(args.resume))
            run_dir.resume_step(Path(args.resume), config.outer_steps, args.allow_fresh)
        elif config.process_id == 0 and not args.overwrite:
            run_dir.prepare_new(Path(config.out_dir))
    except (run_dir.RunExists, run_dir.NothingToResume) as err:
        raise UsageError(err) from None
    except (ValueError, TypeError, FileNotFoundError) as err:
        if type(err).__name__ == "CheckpointError":
            raise
        raise UsageError(err) from None
    check_lopt_config(config)
    try:
        components = build(config)
    except (KeyError, TypeError, ValueError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        raise UsageError(message) from None
    return config, components


def run(args: argparse.Namespace) -> int:
    """Run ``meta-train``; returns the exit status (errors are raised for `l2o.app.cli`)."""
    from meta_train.run_dir import AlreadyDone

    try:
        config, components = prepare(args)
    except AlreadyDone as done:
        if done.step == done.outer_steps:
            print(f"l2o meta-train: {done}")
            return 0
        raise UsageError(done) from None
    if args.print_config:
        print(json.dumps(config.to_dict(), indent=2, sort_keys=True), flush=True)
        return 0
    from meta_train.train import train

    result = train(config, resume=args.resume, progress=not args.no_progress,
                   components=components, overwrite=args.overwrite,
                   allow_fresh=args.allow_fresh)
    print(f"run directory: {result.run_dir}")
    print(f"meta-parameters: {result.theta_path}.json / .msgpack ({result.steps} outer steps)")
    if config.keep == "best":
        kept, last = result.final_eval["kept"], result.final_eval["trained"]
        print(f"kept the theta of step {result.kept_step}: held-out mean log loss "
              f"{kept['mean_log_loss']:.4g} (last step's {last['mean_log_loss']:.4g})")
    from l2o.app.train_summary import final_lines

    reference = None if args.no_reference else "adam"
    for line in final_lines(config, components.heldout, result.final_eval, reference):
        print(line)
    sys.stdout.flush()
    return 0
