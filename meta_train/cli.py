"""The ``l2o meta-train`` subcommand.

    l2o meta-train --family quadratic --outer-steps 300 --out runs/q
    l2o meta-train --config run.json --set sigma=0.02 --set lopt_config.hidden_sizes=[16,16]
    l2o meta-train --set 'family_overrides.activations=["tanh","relu"]'   # train-family options
    l2o meta-train --mixture wide --horizon-range 100 2000 --trunc-length 20   # mixture
    l2o meta-train --mixture mixture.json    # [{"family": ..., "weight": ..., "overrides": ...}]
    l2o meta-train --resume runs/q --outer-steps 600    # continue a run (exactly)
    l2o meta-train --coordinator 10.0.0.1:1234 --num-processes 2 --process-id 0   # one per host

Precedence: defaults < ``--config`` file (or the resumed run's ``config.json``) < direct
flags (``--family``, ``--outer-steps``...) < ``--set key=value`` overrides.

Vocabulary shared by every ``l2o`` command: ``--outer-steps`` counts meta-training steps,
``--steps`` inner steps per training run (here the run length is ``--horizon``),
``--tasks`` / ``--seeds`` size an evaluation (here ``--tasks`` is the held-out
evaluation's ``eval_tasks``; ``--num-tasks`` is the tasks per outer step).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from meta_train.config import MetaTrainConfig

# Direct flags and the config field each sets.
_FLAGS = {
    "family": "family", "heldout_family": "heldout_family", "lopt": "lopt",
    "strategy": "strategy", "outer_steps": "outer_steps", "seed": "seed", "sigma": "sigma",
    "outer_lr": "outer_lr", "horizon": "horizon", "trunc_length": "trunc_length",
    "num_tasks": "num_tasks", "num_pairs": "num_pairs", "tasks": "eval_tasks",
    "num_devices": "num_devices",
    "coordinator": "coordinator", "num_processes": "num_processes", "process_id": "process_id",
}


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``meta-train`` on an ``argparse`` subparsers object; returns its parser."""
    parser = subparsers.add_parser(
        "meta-train",
        help="meta-train a learned optimizer with PES (or truncated ES / NRES)",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("--config", type=Path, help="JSON file of MetaTrainConfig fields")
    parser.add_argument("--resume", type=Path, metavar="RUN_DIR",
                        help="continue the run in RUN_DIR from its latest checkpoint")
    parser.add_argument("--out", type=Path, metavar="RUN_DIR",
                        help="run directory (config field out_dir)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        dest="overrides", help="override a config field (repeatable)")
    parser.add_argument("--family", help="task family (tasks.registry)")
    parser.add_argument("--heldout-family", dest="heldout_family",
                        help="held-out task family for evaluation")
    parser.add_argument("--lopt", help="learned optimizer (l2o.registry)")
    parser.add_argument("--strategy", choices=("pes", "tes", "nres"))
    parser.add_argument("--outer-steps", dest="outer_steps", type=int,
                        help="meta-training (outer) steps in total")
    parser.add_argument("--steps", dest="old_steps", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--sigma", type=float)
    parser.add_argument("--outer-lr", dest="outer_lr", type=float)
    parser.add_argument("--horizon", type=int, help="inner steps per training run")
    parser.add_argument("--trunc-length", dest="trunc_length", type=int,
                        help="inner steps per outer step (divides --horizon)")
    parser.add_argument("--num-tasks", dest="num_tasks", type=int, help="tasks per outer step")
    parser.add_argument("--num-pairs", dest="num_pairs", type=int,
                        help="antithetic pairs per task")
    parser.add_argument("--tasks", type=int, help="tasks of each held-out evaluation (eval_tasks)")
    parser.add_argument("--mixture", metavar="NAME_OR_FILE",
                        help="meta-train on a mixture of task families: a predefined mixture "
                             "(tasks.mixtures, e.g. 'wide') or a JSON file holding a list of "
                             "{family, weight, overrides, augment} entries")
    parser.add_argument("--horizon-range", dest="horizon_range", type=int, nargs=2,
                        metavar=("MIN", "MAX"),
                        help="sample each inner run's horizon log-uniformly in [MIN, MAX] "
                             "(multiples of --trunc-length)")
    parser.add_argument("--num-devices", dest="num_devices", type=int,
                        help="devices to shard the population over (0: auto, all that divide "
                             "2*num_tasks*num_pairs); --set shard=false for one device")
    parser.add_argument("--coordinator", metavar="HOST:PORT",
                        help="address of process 0 for a multi-process (multi-host) run")
    parser.add_argument("--num-processes", dest="num_processes", type=int,
                        help="processes in a multi-process run (same command on each host)")
    parser.add_argument("--process-id", dest="process_id", type=int,
                        help="this process's index in [0, num_processes); 0 writes the files")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--print-config", action="store_true",
                        help="print the resolved config as JSON and exit")
    parser.set_defaults(func=run)
    return parser


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
        config = MetaTrainConfig.from_json(args.config)
    else:
        config = MetaTrainConfig()
    overrides = []
    if args.out is not None:
        overrides.append(f"out_dir={args.out}")
    for flag, field in _FLAGS.items():
        value = getattr(args, flag, None)
        if value is not None:
            overrides.append(f"{field}={value}")
    if getattr(args, "mixture", None) is not None:
        overrides.append("mixture=" + json.dumps(mixture_entries(args.mixture)))
    if getattr(args, "horizon_range", None) is not None:
        overrides.append("horizon_range=" + json.dumps(list(args.horizon_range)))
    return config.with_overrides(overrides + list(args.overrides))


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


def run(args: argparse.Namespace) -> int:
    """Run ``meta-train``; returns the exit status (2 for a bad config)."""
    try:
        config = resolve_config(args)
        if args.print_config:
            print(json.dumps(config.to_dict(), indent=2, sort_keys=True), flush=True)
            return 0
        config.check_names()
    except (ValueError, TypeError, FileNotFoundError) as err:
        print(f"l2o meta-train: error: {err}", file=sys.stderr)
        return 2
    from meta_train.train import train

    result = train(config, resume=args.resume, progress=not args.no_progress)
    trained, initial = result.final_eval["trained"], result.final_eval["initial"]
    print(f"run directory: {result.run_dir}")
    print(f"meta-parameters: {result.theta_path}.json / .msgpack ({result.steps} outer steps)")
    print(f"held-out final test loss: {trained['final_test_loss']:.6g} "
          f"(untrained: {initial['final_test_loss']:.6g})")
    return 0
