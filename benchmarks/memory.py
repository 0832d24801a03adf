"""Optimizer-state memory per parameter, and peak memory of a PES outer step vs population.

1. State size: ``jax.eval_shape(tx.init, params)`` for every optimizer of
   `benchmarks.optimizer_step` on the MLP 784-1024-1024-10 (nothing is allocated), as
   bytes and float32 words per parameter. Reference: Adam 2 words/param, Lion 1.
2. Outer step: for each population, the compiled `ESGradientEstimator.step` (same setup as
   `benchmarks.meta_throughput`), and what its state holds per population: the (N, D)
   arrays of the ES state (perturbation accumulators; N particles, D meta-parameters) and
   the N inner runs. Everywhere: XLA's ``memory_analysis()`` of the compiled
   step, ``argument + output + temp - alias`` bytes (what the step needs while it runs).
   On an accelerator also ``jax.devices()[0].memory_stats()["peak_bytes_in_use"]`` after
   running the step; that counter is a process-wide maximum, so populations are run in
   increasing order and each reading includes everything still alive.

    python -m benchmarks.memory                                # CPU: P = 1, 4, 16, 64
    python -m benchmarks.memory --population 1,16,256,1024      # accelerator
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax
import numpy as np

from benchmarks import common
from benchmarks.meta_throughput import (
    CPU_POPULATIONS, GPU_POPULATIONS, layout, make_system,
)
from benchmarks.models import mlp_classifier
from benchmarks.optimizer_step import OPTIMIZERS, make_transform
from meta_train.pes import ESGradientEstimator


def tree_bytes(tree: Any) -> int:
    """Total bytes of the array leaves (or ShapeDtypeStructs) of ``tree``."""
    return int(sum(np.prod(x.shape) * np.dtype(x.dtype).itemsize for x in jax.tree.leaves(tree)))


def state_bytes_per_param(sizes: tuple[int, ...]) -> dict[str, dict[str, float]]:
    """Optimizer name -> ``{"bytes", "bytes_per_param", "floats_per_param"}`` (shape-only)."""
    model = mlp_classifier(sizes)
    params = jax.eval_shape(model.init, jax.random.PRNGKey(0))
    num_params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params))
    out = {}
    for name in OPTIMIZERS:
        tx = make_transform(name, jax.random.PRNGKey(1))
        size = tree_bytes(jax.eval_shape(tx.init, params))
        out[name] = {
            "bytes": size,
            "bytes_per_param": round(size / num_params, 3),
            "floats_per_param": round(size / num_params / 4, 3),
        }
    return out


def compiled_bytes(compiled: Any) -> dict[str, int] | None:
    """``argument/output/temp/alias`` bytes and their ``total`` from XLA's memory analysis."""
    analysis = compiled.memory_analysis()
    if analysis is None:
        return None
    fields = {k: int(getattr(analysis, f"{k}_size_in_bytes", 0))
              for k in ("argument", "output", "temp", "alias")}
    fields["total"] = fields["argument"] + fields["output"] + fields["temp"] - fields["alias"]
    return fields


def outer_step_memory(population: int, args, system, theta) -> dict[str, Any]:
    """Memory of one compiled outer step (population 1: one ``system.unroll``)."""
    if population == 1:
        fn = jax.jit(system.unroll, static_argnums=3)
        state = jax.eval_shape(system.init, jax.random.PRNGKey(0), theta)
        key = jax.random.PRNGKey(1)
        compiled = fn.lower(theta, state, key, args.trunc_length).compile()
        make_inputs = lambda: (theta, jax.jit(system.init)(key, theta), key)  # noqa: E731
    else:
        num_tasks, num_pairs = layout(population, args.max_tasks)
        estimator = ESGradientEstimator(system, theta, num_tasks=num_tasks, num_pairs=num_pairs,
                                        trunc_length=args.trunc_length, horizon=args.horizon)
        state = jax.eval_shape(estimator.init, jax.random.PRNGKey(0), theta)
        # A fresh outer jit: works whether `step` is a jitted attribute or a method.
        compiled = jax.jit(estimator.step).lower(state).compile()
        num_dims = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(theta))
        nd = [x for x in jax.tree.leaves(state.es_state)
              if tuple(x.shape) == (estimator.num_particles, num_dims)]
        make_inputs = lambda: (estimator.init(jax.random.PRNGKey(0), theta),)  # noqa: E731
    entry: dict[str, Any] = {"compiled_bytes": compiled_bytes(compiled)}
    if population > 1:
        # What scales with population: the (N, D) perturbation arrays of the ES state and
        # the N inner runs (params, optimizer states, task configs).
        entry["state_bytes"] = {"n_by_d": tree_bytes(nd), "num_n_by_d_arrays": len(nd),
                                "system": tree_bytes(state.system_state),
                                "total": tree_bytes(state)}
    stats = jax.devices()[0].memory_stats()
    if stats is not None and "peak_bytes_in_use" in stats:
        jax.block_until_ready(compiled(*make_inputs()))
        entry["peak_bytes_in_use"] = int(jax.devices()[0].memory_stats()["peak_bytes_in_use"])
    return entry


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Measure both parts, print two tables, return the results section."""
    info = common.device_info()
    print(common.describe_device(info))
    sizes = tuple(common.parse_ints(args.sizes, "--sizes"))
    states = state_bytes_per_param(sizes)
    adam = states["adam"]["bytes"]
    print(f"\noptimizer state on mlp-{'-'.join(map(str, sizes))}")
    print(common.format_table(
        ["optimizer", "state MB", "bytes/param", "floats/param", "x Adam"],
        [[n, s["bytes"] / 2**20, s["bytes_per_param"], s["floats_per_param"], s["bytes"] / adam]
         for n, s in states.items()]))
    populations = sorted(common.parse_ints(args.population, "--population"))
    for p in populations:
        layout(p, args.max_tasks)
    system, theta = make_system(args.family, args.horizon)
    outer, rows = {}, []
    for p in populations:
        entry = outer_step_memory(p, args, system, theta)
        outer[str(p)] = entry
        analysed = entry["compiled_bytes"] or {}
        held = entry.get("state_bytes", {})
        rows.append([p, analysed.get("argument", 0) / 2**20, analysed.get("temp", 0) / 2**20,
                     analysed.get("total", 0) / 2**20,
                     entry.get("peak_bytes_in_use", float("nan")) / 2**20,
                     held.get("n_by_d", 0) / 2**20, held.get("system", 0) / 2**20])
    print(f"\nPES outer step, MLP optimizer on {system.family.name}, trunc {args.trunc_length}")
    print(common.format_table(
        ["population", "argument MB", "temp MB", "total MB", "peak in use MB",
         "(N, D) state MB", "inner runs MB"], rows))
    return {"sizes": list(sizes), "state": states, "outer_step": outer,
            "family": system.family.name, "trunc_length": args.trunc_length,
            "horizon": args.horizon, "max_tasks": args.max_tasks}


def parser() -> argparse.ArgumentParser:
    """Command-line flags of this benchmark."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="784,1024,1024,10", help="MLP layer widths (state sizes)")
    p.add_argument("--population", default=None,
                   help=f"default CPU {CPU_POPULATIONS}, accelerator {GPU_POPULATIONS}")
    p.add_argument("--family", default="auto")
    p.add_argument("--trunc-length", type=int, default=20)
    p.add_argument("--horizon", type=int, default=200)
    p.add_argument("--max-tasks", type=int, default=8)
    common.add_output_args(p)
    return p


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Entry point: run, print, merge into the device's results file."""
    args = parser().parse_args(argv)
    if args.population is None:
        args.population = GPU_POPULATIONS if common.is_gpu() else CPU_POPULATIONS
    section = run(args)
    common.save_section(args, "memory", section)
    return section


if __name__ == "__main__":
    main()
