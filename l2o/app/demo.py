"""``l2o demo``: meta-train a small MLP optimizer, then compare it with tuned baselines.

The whole product in one command, on the embedded digits data (no download):

    l2o demo --out runs/demo

1. A short PES meta-training of an MLP learned optimizer on the ``mlp-digits`` family
   (progress bar; run directory ``OUT/meta-train``).
2. A comparison of that optimizer and the shipped pretrained ones, each with and without
   the loss guard, against Adam, Lion and Lookahead(Adam) tuned on train tasks, on
   evaluation tasks of the family: by default (``--split train``) unseen task draws,
   initialisations and minibatch streams of the training distribution; ``--split heldout``
   uses the family's held-out architectures, as ``l2o compare`` does by default.
3. ``OUT/report.md``, ``OUT/results.json`` and PNG plots; the lead sentences are printed.

Every name (family, optimizer, pretrained optimizers, config keys) is checked before the
meta-training starts; an existing ``OUT/meta-train`` run is kept unless ``--overwrite``.

Flags scale every stage up: ``--outer-steps``, ``--horizon``, ``--num-tasks`` and
``--num-pairs`` (or any ``--set KEY=VALUE`` of ``l2o meta-train``) size the meta-training;
``--steps`` (inner steps per run), ``--tasks`` and ``--seeds`` size the comparison; the same
code runs on a GPU when JAX sees one.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

from l2o.app.errors import UsageError
from meta_train.config import MetaTrainConfig

DEFAULT_FAMILY = "mlp-digits"
EXAMPLES = """examples:
  l2o demo --out runs/demo
  l2o demo --out runs/demo-long --outer-steps 1000 --overwrite
  l2o demo --split heldout --pretrained mlp-image     # held-out architectures
  l2o demo --pretrained mlp-generalist-2x16-hd,mlp-image,lstm-image
  l2o demo --outer-steps 4 --horizon 40 --trunc-length 20 --steps 40 --tasks 2 --seeds 2"""


def default_meta_config() -> MetaTrainConfig:
    """The demo's meta-training: `MetaTrainConfig` defaults with 300 outer steps, 4 pairs,
    no periodic evaluation."""
    return MetaTrainConfig(family=DEFAULT_FAMILY, lopt="mlp", strategy="pes", outer_steps=300,
                           num_pairs=4, eval_every=0)


@dataclasses.dataclass(frozen=True)
class DemoConfig:
    """Sizes of the demo; the defaults finish in about ten minutes on two CPU cores.

    Attributes:
      meta: the meta-training run (`MetaTrainConfig`: family, horizon, tasks, seed, ...);
        its ``out_dir`` is replaced by ``OUT/meta-train`` and its checkpoint period by
        ``max(50, outer_steps // 4)``.
      steps: inner steps of every training run in the comparison.
      seeds, tasks: held-out comparison batch (tasks x seeds runs per optimizer).
      pretrained: shipped optimizers added to the comparison (``l2o.list_pretrained()``
        names; missing ones are skipped with a note). The defaults are the generalists,
        which lead on the held-out suite (`docs/generalist.md`); ``mlp-image`` was
        meta-trained on this very family and leads on its train split.
      out: output directory.
      split: family split of the comparison's evaluation tasks (``"train"``: the training
        distribution with unseen draws; ``"heldout"``: the family's held-out variant).
    """

    meta: MetaTrainConfig = dataclasses.field(default_factory=default_meta_config)
    steps: int = 200
    seeds: int = 3
    tasks: int = 6
    pretrained: tuple[str, ...] = ("mlp-generalist-2x16-hd", "lstm-generalist-hd")
    out: str = "runs/demo"
    split: str = "train"

    def __post_init__(self):
        if not isinstance(self.meta, MetaTrainConfig):
            raise TypeError(f"demo: meta must be a MetaTrainConfig, got {type(self.meta).__name__}.")
        sizes = {"outer_steps": self.meta.outer_steps, "steps": self.steps, "seeds": self.seeds,
                 "tasks": self.tasks}
        for name, value in sizes.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"demo: {name} must be a positive integer, got {value!r}.")
        if self.split not in ("train", "heldout"):
            raise ValueError(f"demo: split must be 'train' or 'heldout', got {self.split!r}.")

    def meta_train_config(self) -> MetaTrainConfig:
        """``meta`` with the run directory and checkpoint period of this demo."""
        return dataclasses.replace(
            self.meta, out_dir=str(Path(self.out) / "meta-train"),
            ckpt_every=max(50, self.meta.outer_steps // 4))


def meta_train_quick(config: DemoConfig):
    """Stage 1: PES meta-training of ``config.meta``; returns its TrainResult."""
    from meta_train.train import train

    return train(config.meta_train_config())


def learned_rows(theta_path: Path, pretrained: tuple[str, ...]) -> tuple[dict, list[str]]:
    """Comparison rows ``name -> (num_steps -> optax transform)`` and notes on skips."""
    import l2o

    rows, notes = {}, []
    lopt, theta, _ = l2o.load(theta_path)
    rows[f"{lopt.name} (demo)"] = lambda n, lopt=lopt, theta=theta: lopt.as_optax(theta, num_steps=n)
    available = l2o.list_pretrained()
    for name in pretrained:
        if name not in available:
            notes.append(f"pretrained {name!r} is not shipped (available: {available}); skipped")
            continue
        p_lopt, p_theta, _ = l2o.load_pretrained(name)
        rows[name] = lambda n, lopt=p_lopt, theta=p_theta: lopt.as_optax(theta, num_steps=n)
    return rows, notes


def run_demo(config: DemoConfig) -> dict:
    """Run all three stages; returns the report's paths and the comparison results."""
    import jax

    from baselines.compare import compare
    from baselines.report import write_report
    from baselines.report_summary import summary_lines
    from tasks import registry
    from tasks.describe import describe

    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    device = jax.devices()[0]
    print(f"l2o demo on {device.platform} ({device.device_kind}); output in {out}")

    t0 = time.perf_counter()
    meta = config.meta
    print(f"[1/3] meta-training an {meta.lopt} optimizer with {meta.strategy} on {meta.family} "
          f"({meta.outer_steps} outer steps)")
    trained = meta_train_quick(config)
    meta_seconds = time.perf_counter() - t0

    family = registry.get(meta.family)
    evaluated = registry.get(meta.family, split=config.split)
    print(f"[2/3] comparing with tuned Adam, Lion and Lookahead on "
          f"{describe(evaluated, meta.family)['example_task']} tasks ({config.split} split)")
    rows, notes = learned_rows(trained.theta_path, config.pretrained)
    for note in notes:
        print(f"  note: {note}")
    results = compare(
        {"lion": "lion", "lookahead": "lookahead", **rows},
        family,
        steps=config.steps,
        num_seeds=config.seeds,
        num_tasks=config.tasks,
        guard=True,
        heldout_family=evaluated,
        key=jax.random.PRNGKey(meta.seed + 1),
    )
    results.config["evaluated_on"] = describe(evaluated, meta.family)
    results.config["tuned_on"] = describe(family, meta.family)
    results.config["demo"] = {
        **{k: v for k, v in dataclasses.asdict(config).items() if k != "meta"},
        "meta": config.meta_train_config().to_dict(),
        "meta_train_seconds": round(meta_seconds, 1),
        "meta_train_run": str(trained.run_dir),
        "notes": notes,
    }

    print("[3/3] writing the report")
    paths = write_report(results, out)
    print(summary_lines(results))
    print(f"wrote {', '.join(str(p) for p in paths.values())}")
    print(f"total {time.perf_counter() - t0:.0f}s (meta-training {meta_seconds:.0f}s)")
    return {"paths": paths, "results": results, "meta_train": trained}


# Demo flag -> meta-training config field.
_META_FLAGS = {"family": "family", "outer_steps": "outer_steps", "horizon": "horizon",
               "trunc_length": "trunc_length", "num_tasks": "num_tasks",
               "num_pairs": "num_pairs", "seed": "seed"}


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register the ``demo`` subcommand."""
    defaults, meta = DemoConfig(), default_meta_config()
    import l2o
    from tasks import registry

    parser = subparsers.add_parser(
        "demo",
        help="quick meta-training + comparison report on the embedded digits data",
        description=__doc__.split("\n", 2)[2].replace("``", "'"),
        epilog=(f"task families (--family): {', '.join(registry.names())}\n"
                f"shipped optimizers (--pretrained): {', '.join(l2o.list_pretrained())}\n"
                f"learned optimizers (--set lopt=...): {', '.join(l2o.registry.names())}\n\n"
                f"{EXAMPLES}"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", default=defaults.out,
                        help="output directory (default %(default)s)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an earlier demo run in --out")
    parser.add_argument("--family", default=meta.family,
                        help="task family (default %(default)s)")
    parser.add_argument("--split", choices=("train", "heldout"), default=defaults.split,
                        help="family split of the comparison's tasks (default %(default)s)")
    helps = {"outer_steps": "meta-training steps", "horizon": "inner steps per meta-training run",
             "trunc_length": "inner steps per outer step", "num_tasks": "tasks per outer step",
             "num_pairs": "antithetic pairs per task", "seed": "PRNG seed of the whole demo"}
    for name, help_ in helps.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(meta, name),
                            help=f"{help_} (default %(default)s)")
    parser.add_argument("--steps", type=int, default=defaults.steps,
                        help="inner steps per comparison run (default %(default)s)")
    parser.add_argument("--seeds", type=int, default=defaults.seeds,
                        help="seeds per comparison task (default %(default)s)")
    parser.add_argument("--tasks", type=int, default=defaults.tasks,
                        help="comparison tasks (default %(default)s)")
    parser.add_argument("--eval-tasks", dest="old_eval_tasks", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        dest="overrides", help="any l2o meta-train config field (repeatable)")
    parser.add_argument(
        "--pretrained", default=",".join(defaults.pretrained),
        help="comma-separated shipped optimizers to include (default %(default)s; '' for none)",
    )
    parser.set_defaults(func=run)
    return parser


def config_from_args(args: argparse.Namespace) -> DemoConfig:
    """The `DemoConfig` of parsed ``demo`` flags (``ValueError`` / ``TypeError`` if invalid)."""
    tasks = args.tasks
    if args.old_eval_tasks is not None:
        print("l2o demo: warning: --eval-tasks is deprecated; use --tasks.", file=sys.stderr)
        tasks = args.old_eval_tasks
    overrides = [f"{field}={getattr(args, flag)}" for flag, field in _META_FLAGS.items()]
    meta = default_meta_config().with_overrides(overrides + list(args.overrides))
    pretrained = tuple(p.strip() for p in args.pretrained.split(",") if p.strip())
    return DemoConfig(meta=meta, steps=args.steps, seeds=args.seeds, tasks=tasks,
                      pretrained=pretrained, out=args.out, split=getattr(args, "split", "train"))


def check(config: DemoConfig, overwrite: bool = False) -> None:
    """Every name and the output directory, before any long work (`UsageError` if bad)."""
    import l2o
    from meta_train.cli import check_lopt_config
    from meta_train.run_dir import RunExists, prepare_new
    from meta_train.train import build_family

    available = l2o.list_pretrained()
    unknown = [name for name in config.pretrained if name not in available]
    if unknown:
        raise UsageError(f"--pretrained: unknown optimizer(s) {unknown}; shipped: "
                         f"{', '.join(available)} ('' for none).")
    meta = config.meta_train_config()
    try:
        meta.check_names()
        build_family(meta)
    except (KeyError, TypeError, ValueError) as err:
        raise UsageError(err.args[0] if isinstance(err, KeyError) and err.args else err) from None
    check_lopt_config(meta)
    try:
        prepare_new(Path(meta.out_dir), overwrite)
    except RunExists:
        raise UsageError(f"{config.out!r} already holds a demo run; pass --overwrite to replace "
                         "it, or another --out.") from None


def run(args: argparse.Namespace) -> int:
    """CLI entry of ``l2o demo``."""
    from tasks import registry

    if args.family not in registry.names():
        raise UsageError(f"unknown --family {args.family!r}; choose from {registry.names()}.")
    try:
        config = config_from_args(args)
    except (TypeError, ValueError) as error:
        raise UsageError(error) from None
    check(config, overwrite=args.overwrite)
    run_demo(config)
    return 0
