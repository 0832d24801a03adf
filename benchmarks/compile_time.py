"""Compile time of the meta-training outer step and of one baselines comparison run.

Each function is timed as ``t_lower`` (tracing + lowering to StableHLO,
``jax.jit(f).lower(*args)``) and ``t_compile`` (XLA, ``lowered.compile()``) on abstract
inputs (``jax.eval_shape``), so nothing runs:

* ``init`` and ``step`` of `meta_train.pes.ESGradientEstimator` for an MLP optimizer on
  digits-MLP tasks (the `benchmarks.meta_throughput` setup) at each ``--population``;
* a comparison run: `baselines.evaluate.make_run` (the ``jit(vmap(vmap(lax.scan)))``
  that `baselines.evaluate.evaluate` compiles) of Adam and of the MLP learned optimizer
  over ``--tasks`` x ``--seeds`` runs of ``--steps`` steps on the same family.

    python -m benchmarks.compile_time                       # CPU default: P = 16
    python -m benchmarks.compile_time --population 128,1024  # accelerator
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Callable

if __package__ in (None, ""):  # run as a file: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax

import l2o
from baselines import optimizers as baseline_optimizers
from baselines.evaluate import make_run, task_configs
from benchmarks import common
from benchmarks.meta_throughput import layout, make_system
from meta_train.pes import ESGradientEstimator


def lower_and_compile(fn: Callable, *args: Any) -> dict[str, float]:
    """Seconds to lower and to compile ``jax.jit(fn)`` for ``args`` (abstract or concrete)."""
    start = time.perf_counter()
    lowered = jax.jit(fn).lower(*args)
    lowered_at = time.perf_counter()
    lowered.compile()
    done = time.perf_counter()
    return {"lower_s": round(lowered_at - start, 3), "compile_s": round(done - lowered_at, 3),
            "total_s": round(done - start, 3)}


def outer_step_times(population: int, args, system, theta) -> dict[str, dict[str, float]]:
    """Lower/compile seconds of the estimator's ``init`` and ``step`` at ``population``."""
    num_tasks, num_pairs = layout(population, args.max_tasks)
    if population == 1:
        raise ValueError("the PES outer step needs a population >= 2 (one antithetic pair).")
    estimator = ESGradientEstimator(system, theta, num_tasks=num_tasks, num_pairs=num_pairs,
                                    trunc_length=args.trunc_length, horizon=args.horizon)
    key = jax.random.PRNGKey(0)
    state = jax.eval_shape(estimator.init, key, theta)
    return {"init": lower_and_compile(estimator.init, key, theta),
            "step": lower_and_compile(estimator.step, state)}


def comparison_run_times(args, family, theta) -> dict[str, dict[str, float]]:
    """Lower/compile seconds of one batched evaluation run per optimizer (Adam, MLP lopt)."""
    key_tasks, key_runs = jax.random.split(jax.random.PRNGKey(0))
    cfgs = task_configs(family, args.tasks, key_tasks)
    run_keys = jax.random.split(key_runs, (args.tasks, args.seeds))
    makers = {
        "adam": lambda: baseline_optimizers.adam(1e-3),
        "mlp": lambda: l2o.MLPOptimizer().as_optax(theta, args.steps),
    }
    out = {}
    for name in args.optimizers.split(","):
        name = name.strip()
        if name not in makers:
            raise ValueError(f"--optimizers: unknown {name!r}; expected some of {list(makers)}.")
        make_tx = makers[name]
        run = make_run(make_tx, family, args.steps, num_evals=10)
        batched = jax.vmap(jax.vmap(run, in_axes=(None, None, 0)), in_axes=(None, 0, 0))
        out[name] = lower_and_compile(batched, {}, cfgs, run_keys)
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Measure, print one table, return the results section."""
    info = common.device_info()
    print(common.describe_device(info))
    populations = common.parse_ints(args.population, "--population")
    for p in populations:
        layout(p, args.max_tasks)
    system, theta = make_system(args.family, args.horizon)
    rows, outer = [], {}
    for p in populations:
        outer[str(p)] = outer_step_times(p, args, system, theta)
        for part, t in outer[str(p)].items():
            rows.append([f"PES {part}, population {p}", t["lower_s"], t["compile_s"], t["total_s"]])
    comparison = comparison_run_times(args, system.family, theta)
    for name, t in comparison.items():
        rows.append([f"compare run {name}, {args.tasks}x{args.seeds}x{args.steps} steps",
                     t["lower_s"], t["compile_s"], t["total_s"]])
    print(f"\ncompile times on {system.family.name} (trunc {args.trunc_length}, "
          f"horizon {args.horizon})")
    print(common.format_table(["function", "lower s", "compile s", "total s"], rows))
    return {"family": system.family.name, "trunc_length": args.trunc_length,
            "horizon": args.horizon, "outer_step": outer,
            "comparison_run": {"steps": args.steps, "num_tasks": args.tasks,
                               "num_seeds": args.seeds, "times": comparison},
            "load_after": common.device_info()["loadavg"]}


def parser() -> argparse.ArgumentParser:
    """Command-line flags of this benchmark."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--population", default="16", help="PES particles, e.g. '16' or '128,1024'")
    p.add_argument("--family", default="auto")
    p.add_argument("--trunc-length", type=int, default=20)
    p.add_argument("--horizon", type=int, default=200)
    p.add_argument("--max-tasks", type=int, default=8)
    p.add_argument("--steps", type=int, default=200, help="steps of the comparison run")
    p.add_argument("--optimizers", default="adam,mlp", help="comparison runs: some of adam,mlp")
    p.add_argument("--tasks", type=int, default=2, help="tasks of the comparison run")
    p.add_argument("--seeds", type=int, default=2, help="seeds per task of the comparison run")
    common.add_output_args(p)
    return p


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Entry point: run, print, merge into the device's results file."""
    args = parser().parse_args(argv)
    section = run(args)
    common.save_section(args, "compile_time", section)
    return section


if __name__ == "__main__":
    main()
