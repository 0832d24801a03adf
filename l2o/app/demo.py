"""``l2o demo``: meta-train a small MLP optimizer, then compare it with tuned baselines.

The whole product in one command, on the embedded digits data (no download)::

    l2o demo --out runs/demo

1. A short PES meta-training of an MLP learned optimizer on the ``mlp-digits`` family
   (progress bar; run directory ``OUT/meta-train``).
2. A comparison of that optimizer and the shipped pretrained ones, each with and without
   the loss guard, against Adam, Lion and Lookahead(Adam) tuned on train tasks, on
   held-out tasks (unseen initialisations and minibatch streams of the family).
3. ``OUT/report.md``, ``OUT/results.json`` and PNG plots; the table is printed.

Flags scale every stage up (``--outer-steps``, ``--num-tasks``, ``--seeds``, ``--steps``,
``--family``); the same code runs on a GPU when JAX sees one.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import jax

DEFAULT_FAMILY = "mlp-digits"


@dataclasses.dataclass(frozen=True)
class DemoConfig:
    """Sizes of the demo; the defaults finish in about ten minutes on two CPU cores.

    Attributes:
      family: task family for meta-training and comparison (``tasks.registry``).
      outer_steps: PES outer steps of the quick meta-training.
      horizon, trunc_length: inner horizon and truncation length of meta-training.
      num_tasks, num_pairs: tasks per outer step and antithetic pairs per task.
      steps: step budget of every optimizer in the comparison.
      seeds, eval_tasks: held-out comparison batch (tasks × seeds runs per optimizer).
      pretrained: shipped optimizers added to the comparison (``l2o.list_pretrained()``
        names; missing ones are skipped with a note).
      seed: PRNG seed of the whole demo.
      out: output directory.
    """

    family: str = DEFAULT_FAMILY
    outer_steps: int = 300
    horizon: int = 200
    trunc_length: int = 20
    num_tasks: int = 8
    num_pairs: int = 4
    steps: int = 200
    seeds: int = 3
    eval_tasks: int = 6
    pretrained: tuple[str, ...] = ("mlp-image", "lstm-image")
    seed: int = 0
    out: str = "runs/demo"

    def __post_init__(self):
        for name in ("outer_steps", "horizon", "trunc_length", "num_tasks", "num_pairs",
                     "steps", "seeds", "eval_tasks"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"demo: {name} must be a positive integer, got {value!r}.")
        if self.horizon % self.trunc_length:
            raise ValueError(
                f"demo: trunc_length ({self.trunc_length}) must divide horizon "
                f"({self.horizon}); e.g. --trunc-length 20 --horizon 200."
            )


def meta_train_quick(config: DemoConfig):
    """Stage 1: PES meta-training of the default MLP optimizer; returns its TrainResult."""
    from meta_train.config import MetaTrainConfig
    from meta_train.train import train

    meta_config = MetaTrainConfig(
        family=config.family,
        lopt="mlp",
        strategy="pes",
        horizon=config.horizon,
        trunc_length=config.trunc_length,
        num_tasks=config.num_tasks,
        num_pairs=config.num_pairs,
        outer_steps=config.outer_steps,
        eval_every=0,
        ckpt_every=max(50, config.outer_steps // 4),
        seed=config.seed,
        out_dir=str(Path(config.out) / "meta-train"),
    )
    return train(meta_config)


def learned_rows(theta_path: Path, pretrained: tuple[str, ...]) -> tuple[dict, list[str]]:
    """Comparison rows ``name -> (num_steps -> optax transform)`` and notes on skips."""
    import l2o

    rows, notes = {}, []
    lopt, theta, _ = l2o.load(theta_path)
    rows["mlp (demo)"] = lambda n, lopt=lopt, theta=theta: lopt.as_optax(theta, num_steps=n)
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
    from baselines.compare import compare
    from baselines.report import markdown, write_report
    from tasks import registry

    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    device = jax.devices()[0]
    print(f"l2o demo on {device.platform} ({device.device_kind}); output in {out}")

    t0 = time.perf_counter()
    print(f"[1/3] meta-training an MLP optimizer with PES on {config.family} "
          f"({config.outer_steps} outer steps)")
    trained = meta_train_quick(config)
    meta_seconds = time.perf_counter() - t0

    print("[2/3] comparing with tuned Adam, Lion and Lookahead on held-out tasks")
    rows, notes = learned_rows(trained.theta_path, config.pretrained)
    for note in notes:
        print(f"  note: {note}")
    family = registry.get(config.family)
    results = compare(
        {"lion": "lion", "lookahead": "lookahead", **rows},
        family,
        steps=config.steps,
        num_seeds=config.seeds,
        num_tasks=config.eval_tasks,
        guard=True,
        heldout_family=family,
        key=jax.random.PRNGKey(config.seed + 1),
    )
    results.config["demo"] = {
        **dataclasses.asdict(config),
        "meta_train_seconds": round(meta_seconds, 1),
        "meta_train_run": str(trained.run_dir),
        "notes": notes,
    }

    print("[3/3] writing the report")
    paths = write_report(results, out)
    print(markdown(results).split("\n## ")[0])
    print(f"wrote {', '.join(str(p) for p in paths.values())}")
    print(f"total {time.perf_counter() - t0:.0f}s (meta-training {meta_seconds:.0f}s)")
    return {"paths": paths, "results": results, "meta_train": trained}


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register the ``demo`` subcommand."""
    defaults = DemoConfig()
    parser = subparsers.add_parser(
        "demo",
        help="quick meta-training + comparison report on the embedded digits data",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", default=defaults.out, help="output directory (%(default)s)")
    parser.add_argument("--family", default=defaults.family, help="task family (%(default)s)")
    for name in ("outer_steps", "horizon", "trunc_length", "num_tasks", "num_pairs", "steps",
                 "seeds", "eval_tasks", "seed"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=int,
                            default=getattr(defaults, name), help="(default %(default)s)")
    parser.add_argument(
        "--pretrained", default=",".join(defaults.pretrained),
        help="comma-separated shipped optimizers to include (default %(default)s; '' for none)",
    )
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """CLI entry of ``l2o demo``."""
    from tasks import registry

    if args.family not in registry.names():
        raise SystemExit(f"unknown --family {args.family!r}; choose from {registry.names()}.")
    fields = {f.name for f in dataclasses.fields(DemoConfig)}
    values = {k: v for k, v in vars(args).items() if k in fields}
    values["pretrained"] = tuple(p.strip() for p in args.pretrained.split(",") if p.strip())
    try:
        config = DemoConfig(**values)
    except ValueError as error:
        raise SystemExit(str(error)) from None
    run_demo(config)
    return 0
