"""Inner training steps per second of the PES outer step as the population grows.

The measured function is the meta-training engine's own jitted outer step,
`meta_train.pes.ESGradientEstimator.step` (ask, ``vmap`` over antithetic sign x task x
pair of `meta_train.inner.LearnedOptimizerSystem.unroll`, tell), training an
`l2o.MLPOptimizer` on digits-MLP-shaped tasks (64-32-10 tanh, batch 128; see
`benchmarks.models.get_family`). Population P = number of particles (inner runs):
``P = 2 * num_tasks * num_pairs`` with ``num_tasks = min(P / 2, --max-tasks)``;
P = 1 is a single jitted ``system.unroll`` (no ES), the reference rate.

    rate(P) = P * trunc_length / (seconds per outer step)

The naive baseline does the same work with a Python loop over particles, one jitted
single-run unroll per particle plus the estimate; it is measured up to ``--naive-max``
and extrapolated linearly (labelled) above.

    python -m benchmarks.meta_throughput                          # CPU: P = 1, 4, 16, 64
    python -m benchmarks.meta_throughput --population 1,4,16,64,256,1024   # accelerator

Target: on an accelerator rate(P >= 256) >= 30 x rate(1). On CPU the table shows where
the rate saturates (first P that no larger population beats by more than 20%).
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path
from typing import Any, Callable

if __package__ in (None, ""):  # run as a file: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax
import jax.flatten_util
import jax.numpy as jnp

import l2o
from benchmarks import common
from benchmarks.models import get_family
from meta_train.inner import LearnedOptimizerSystem
from meta_train.pes import ESGradientEstimator

GPU_POPULATIONS = "1,4,16,64,256,1024"
CPU_POPULATIONS = "1,4,16,64"
TARGET_SPEEDUP, TARGET_MIN_POPULATION = 30.0, 256


def layout(population: int, max_tasks: int) -> tuple[int, int]:
    """``(num_tasks, num_pairs)`` with ``2 * num_tasks * num_pairs == population``.

    Population 1 (a single run, no ES) gives ``(1, 0)``. Raises ``ValueError`` when
    ``population`` is odd or does not split evenly over the tasks.
    """
    if population == 1:
        return 1, 0
    num_tasks = max(1, min(population // 2, max_tasks))
    if population % 2 or (population // 2) % num_tasks:
        raise ValueError(
            f"population {population} cannot be split into antithetic pairs over "
            f"{num_tasks} tasks; use 1 or an even number divisible by 2 * {num_tasks} "
            "(e.g. powers of two)."
        )
    return num_tasks, population // (2 * num_tasks)


def make_system(family_name: str, horizon: int) -> tuple[LearnedOptimizerSystem, Any]:
    """The inner-training system (MLP optimizer on the family) and a fresh theta."""
    lopt = l2o.MLPOptimizer()
    system = LearnedOptimizerSystem(family=get_family(family_name), lopt=lopt, horizon=horizon)
    return system, lopt.init_meta_params(jax.random.PRNGKey(1))


@functools.lru_cache(maxsize=8)
def jitted_single_run(system: LearnedOptimizerSystem) -> tuple[Callable, Callable]:
    """``(jit(system.init), jit(system.unroll))`` (length static), one compilation per system."""
    return jax.jit(system.init), jax.jit(system.unroll, static_argnums=3)


def single_run_runner(system, theta, trunc_length: int) -> Callable[[], Any]:
    """One jitted ``system.unroll`` of one inner run per call (population 1)."""
    init, unroll = jitted_single_run(system)
    state = {"inner": init(jax.random.PRNGKey(2), theta), "i": 0}

    def run():
        state["i"] += 1
        key = jax.random.fold_in(jax.random.PRNGKey(3), state["i"])
        state["inner"], loss, _ = unroll(theta, state["inner"], key, trunc_length)
        return loss

    return run


def estimator_runner(system, theta, population: int, args) -> Callable[[], Any]:
    """One call = one jitted PES outer step over ``population`` particles."""
    num_tasks, num_pairs = layout(population, args.max_tasks)
    estimator = ESGradientEstimator(
        system, theta, num_tasks=num_tasks, num_pairs=num_pairs,
        trunc_length=args.trunc_length, horizon=args.horizon,
    )
    state = {"es": estimator.init(jax.random.PRNGKey(4), theta)}

    def run():
        state["es"], metrics = estimator.step(state["es"])
        return metrics["meta_loss"]

    return run


def naive_runner(system, theta, population: int, trunc_length: int) -> Callable[[], Any]:
    """The same work as a Python loop: perturb, unroll each particle alone, estimate."""
    init, unroll = jitted_single_run(system)
    flat, unravel = jax.flatten_util.ravel_pytree(theta)
    perturb = jax.jit(lambda eps: unravel(flat + eps))
    keys = jax.random.split(jax.random.PRNGKey(5), population)
    states = [init(k, theta) for k in keys]
    sigma = 0.01

    def run():
        eps = sigma * jax.random.normal(jax.random.PRNGKey(6), (population // 2 or 1, flat.size))
        eps = jnp.concatenate([eps, -eps]) if population > 1 else eps
        losses = []
        for i in range(population):
            states[i], loss, _ = unroll(perturb(eps[i]), states[i], keys[i], trunc_length)
            losses.append(loss)
        return jnp.stack(losses) @ eps / (population * sigma**2)

    return run


def saturation_point(populations: list[int], rates: list[float], gain: float = 1.2) -> int | None:
    """First population whose rate no larger measured population beats by ``gain``x (None
    if the rate still grows at the largest one, or with a single size)."""
    for i, rate in enumerate(rates):
        later = rates[i + 1:]
        if later and max(later) < gain * rate:
            return populations[i]
    return None


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Measure, print the table, return the results section."""
    info = common.device_info()
    populations = common.parse_ints(args.population, "--population")
    for p in populations:
        layout(p, args.max_tasks)  # validate every size before compiling anything
    print(common.describe_device(info))
    system, theta = make_system(args.family, args.horizon)
    runners = {}
    for p in populations:
        runners[f"vmap/{p}"] = (single_run_runner(system, theta, args.trunc_length) if p == 1
                                else estimator_runner(system, theta, p, args))
        if p <= args.naive_max:
            runners[f"naive/{p}"] = naive_runner(system, theta, p, args.trunc_length)
    iters = {n: common.calibrate_iters(r, args.block_seconds, args.max_iters)
             for n, r in runners.items()}
    times = common.time_interleaved(runners, iters, args.repeats, warmup=0)

    def rate(name, p):
        return p * args.trunc_length / times[name]["median_s"]

    base = rate("vmap/1", 1) if 1 in populations else None
    naive_per_particle = [times[f"naive/{p}"]["median_s"] / p for p in populations
                          if f"naive/{p}" in times]
    naive_each = min(naive_per_particle) if naive_per_particle else None
    rows, entries = [], {}
    for p in populations:
        r = rate(f"vmap/{p}", p)
        if f"naive/{p}" in times:
            naive, label = rate(f"naive/{p}", p), "measured"
        elif naive_each is not None:
            naive, label = args.trunc_length / naive_each, "extrapolated"
        else:
            naive, label = None, "-"
        tasks, pairs = layout(p, args.max_tasks)
        entries[str(p)] = {
            "num_tasks": tasks, "num_pairs": pairs,
            "ms_per_outer_step": round(1e3 * times[f"vmap/{p}"]["median_s"], 3),
            "inner_steps_per_s": round(r, 1),
            "speedup_vs_population_1": round(r / base, 2) if base else None,
            "naive_inner_steps_per_s": round(naive, 1) if naive else None,
            "naive": label,
            "speedup_vs_naive": round(r / naive, 2) if naive else None,
        }
        rows.append([p, "single run" if p == 1 else f"{tasks}x2x{pairs}",
                     1e3 * times[f"vmap/{p}"]["median_s"], r,
                     r / base if base else "-", naive if naive else "-", label,
                     r / naive if naive else "-"])
    print(f"\nPES outer step, MLP optimizer on {system.family.name} tasks, "
          f"trunc {args.trunc_length} of horizon {args.horizon}")
    print(common.format_table(
        ["population", "tasks x sign x pairs", "ms/outer step", "inner steps/s", "x pop 1",
         "naive steps/s", "naive", "x naive"], rows))
    vmap_rates = [entries[str(p)]["inner_steps_per_s"] for p in populations]
    section = {
        "family": system.family.name, "trunc_length": args.trunc_length,
        "horizon": args.horizon, "max_tasks": args.max_tasks,
        "populations": entries,
        "saturates_at_population": saturation_point(populations, vmap_rates),
    }
    big = [p for p in populations if p >= TARGET_MIN_POPULATION]
    if base and big and info["platform"] != "cpu":
        best = max(entries[str(p)]["speedup_vs_population_1"] for p in big)
        section["target"] = {"value": best, "limit": TARGET_SPEEDUP, "met": best >= TARGET_SPEEDUP}
        print(f"target x pop 1 >= {TARGET_SPEEDUP} at P >= {TARGET_MIN_POPULATION}: {best:.1f} "
              + ("met" if best >= TARGET_SPEEDUP else "MISSED"))
    print(f"saturates at population: {section['saturates_at_population']}")
    section["load_after"] = common.device_info()["loadavg"]
    return section


def parser() -> argparse.ArgumentParser:
    """Command-line flags of this benchmark."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--population", default=None,
                   help=f"particles per outer step (default CPU {CPU_POPULATIONS}, "
                        f"accelerator {GPU_POPULATIONS})")
    p.add_argument("--family", default="auto", help="'auto', 'synthetic-mlp' or a registry name")
    p.add_argument("--trunc-length", type=int, default=20)
    p.add_argument("--horizon", type=int, default=200)
    p.add_argument("--max-tasks", type=int, default=8)
    p.add_argument("--naive-max", type=int, default=16, help="largest measured naive loop")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--block-seconds", type=float, default=0.5)
    p.add_argument("--max-iters", type=int, default=100)
    common.add_output_args(p)
    return p


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Entry point: run, print, merge into the device's results file."""
    args = parser().parse_args(argv)
    if args.population is None:
        args.population = GPU_POPULATIONS if common.is_gpu() else CPU_POPULATIONS
    section = run(args)
    common.save_section(args, "meta_throughput", section)
    return section


if __name__ == "__main__":
    main()
