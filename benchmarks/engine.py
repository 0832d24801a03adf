"""The meta-training engine's PES outer step against a minimal PES, side by side.

For each optimizer config, in one process and in alternating timed blocks:

* ``engine``: `meta_train.pes.ESGradientEstimator.step` (strategy ``"pes"``) over
  `meta_train.inner.LearnedOptimizerSystem` (staggering, NaN-safety, per-particle resets);
* ``reference``: `benchmarks.reference_pes` -- the same algorithm as a plain
  ``jit(vmap(scan))`` with the same task family and optimizer math (for the MLP
  optimizer a direct per-leaf implementation, checked equal to `l2o.MLPOptimizer` on a
  task before timing; for the LSTM, `l2o.LSTMOptimizer.update` itself);
* where the engine's time goes: ``unroll`` (the engine's unroll of every particle, no
  ask/tell), ``task`` (the same K steps of value-and-grad with a plain SGD update instead
  of the learned optimizer, grouped like the engine's particles); so optimizer = unroll -
  task, estimator = step - unroll.

Wall time and this process's CPU time are both reported (medians over blocks): on a
machine shared with other jobs the CPU-time ratio is the steadier one.

Achieved FLOP/s: XLA's cost analysis counts a loop body once, so the step's FLOPs are
``flops(compiled step) + (K - 1) * flops(one vmapped inner step)``; the peak is the best
of a jitted 1024 x 1024 float32 matmul timed in the same run (before and after).

    python -m benchmarks.engine                        # digits MLP 64-32-10, 8 tasks x 8 pairs
    python -m benchmarks.engine --configs mlp-2x32 --repeats 3

Target (the setting above, MLP optimizer 2x32): engine time <= 1.0 x reference time.
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

import l2o
from benchmarks import common, reference_pes
from benchmarks.models import get_family
from meta_train.inner import LearnedOptimizerSystem
from meta_train.pes import ESGradientEstimator

CONFIGS: dict[str, Any] = {
    "mlp-2x32": lambda: l2o.MLPOptimizer(hidden_sizes=(32, 32)),
    "mlp-2x16": lambda: l2o.MLPOptimizer(hidden_sizes=(16, 16)),
    "mlp-2x8": lambda: l2o.MLPOptimizer(hidden_sizes=(8, 8)),
    "lstm": lambda: l2o.LSTMOptimizer(),
}
TARGET_RATIO = 1.0
PEAK_SIZE = 1024


def matmul_peak(size: int = PEAK_SIZE, repeats: int = 5) -> float:
    """Best FLOP/s of a jitted ``size x size`` float32 matmul (median of ``repeats`` blocks)."""
    a = jax.random.normal(jax.random.PRNGKey(0), (size, size), jnp.float32)
    b = jax.random.normal(jax.random.PRNGKey(1), (size, size), jnp.float32)
    mm = jax.jit(lambda a, b: a @ b)
    iters = common.calibrate_iters(lambda: mm(a, b), 0.3, 200)
    seconds = common.time_interleaved({"mm": lambda: mm(a, b)}, iters, repeats)["mm"]["min_s"]
    return 2.0 * size**3 / seconds


def flops_of(fn, *args) -> float:
    """XLA cost-analysis FLOPs of ``jit(fn)(*args)`` (loop bodies counted once)."""
    analysis = jax.jit(fn).lower(*args).compile().cost_analysis()
    analysis = analysis[0] if isinstance(analysis, (list, tuple)) else analysis
    return float(analysis.get("flops", 0.0))


def check_direct_mlp(family, lopt, theta, steps: int = 3) -> float:
    """Max |direct per-leaf update - l2o update| / max |l2o update| over ``steps`` steps."""
    task = family.task(family.sample(jax.random.PRNGKey(0)))
    params = task.init(jax.random.PRNGKey(1))
    init, update = reference_pes.direct_mlp_functions(lopt)
    s_ref, s_l2o = init(params, 100), lopt.init(theta, params, 100)
    worst = 0.0
    for t in range(steps):
        grads = jax.grad(task.loss)(params, jax.random.PRNGKey(10 + t))
        u_ref, s_ref = jax.jit(update)(theta, grads, s_ref, params)
        u_l2o, s_l2o = jax.jit(lopt.update)(theta, grads, s_l2o, params)
        a, b = ravel_pytree(u_ref)[0], ravel_pytree(u_l2o)[0]
        worst = max(worst, float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(b))))
        params = jax.tree.map(lambda p, u: p + u, params, u_l2o)
    return worst


def engine_pieces(system, estimator, state, theta, k: int):
    """Callables timing parts of the engine's step on its own particle layout: the unroll
    of every particle (`ESGradientEstimator._unroll_particles`, each particle with its own
    perturbed theta, grouped as in the step) and the task alone (K steps of value-and-grad
    with SGD, same grouping); and one vmapped inner step of all particles (its FLOPs)."""
    n = estimator.num_particles
    flat, unravel = ravel_pytree(theta)
    population = jax.vmap(unravel)(flat + 0.01 * jax.random.normal(jax.random.PRNGKey(8), (n,) + flat.shape))
    sys_state = state.system_state
    key = jax.random.PRNGKey(9)

    @jax.jit
    def unroll(population, states):
        return estimator._unroll_particles(population, states, key)[:2]

    def one_task(s):
        def body(params, t):
            task = system.family.task(s.cfg)
            loss, g = jax.value_and_grad(task.loss)(params, jax.random.fold_in(s.data_key, t))
            return jax.tree.map(lambda p, u: p - 1e-2 * u, params, g), loss
        return jax.lax.scan(body, s.params, s.inner_step + jnp.arange(k))

    @jax.jit
    def task_only(states):
        states = jax.tree.map(lambda x: x.reshape((n,) + x.shape[3:]), states)
        return jax.lax.map(one_task, states, batch_size=estimator.particle_batch or n)

    def inner_step(population, states):
        states = jax.tree.map(lambda x: x.reshape((n,) + x.shape[3:]), states)
        return jax.vmap(system.inner_step)(population, states)

    return ((lambda: unroll(population, sys_state)), (lambda: task_only(sys_state)),
            functools.partial(inner_step, population), sys_state)


def step_flops(system, theta, layout: dict, state, inner_step) -> float:
    """FLOPs of one outer step: the compiled step of an all-at-once (vmapped) estimator,
    whose inner loop body XLA counts once, plus (K - 1) vmapped inner steps."""
    vmapped = ESGradientEstimator(system, theta, particle_batch=0, **layout)
    return (flops_of(lambda s: vmapped.step(s), state)
            + (layout["trunc_length"] - 1) * flops_of(inner_step, state.system_state))


def run_config(name: str, args, family, peak: float) -> dict[str, Any]:
    """Time engine, reference and pieces for one optimizer config."""
    lopt = CONFIGS[name]()
    theta = lopt.init_meta_params(jax.random.PRNGKey(1))
    system = LearnedOptimizerSystem(family=family, lopt=lopt, horizon=args.horizon)
    layout = dict(num_tasks=args.num_tasks, num_pairs=args.num_pairs,
                  trunc_length=args.trunc_length, horizon=args.horizon)
    estimator = ESGradientEstimator(system, theta, **layout)
    state = {"es": estimator.init(jax.random.PRNGKey(4), theta)}
    entry: dict[str, Any] = {"num_meta_params": int(ravel_pytree(theta)[0].size),
                             "particle_batch": estimator.particle_batch}
    if isinstance(lopt, l2o.MLPOptimizer):
        opt_init, opt_update = reference_pes.direct_mlp_functions(lopt)
        entry["direct_mlp_max_rel_diff"] = check_direct_mlp(family, lopt, theta)
        entry["reference_optimizer"] = "direct per-leaf MLP (benchmarks.reference_pes)"
    else:
        opt_init, opt_update = reference_pes.lopt_functions(lopt)
        entry["reference_optimizer"] = f"l2o {type(lopt).__name__}.update"
    ref_init, ref_step = reference_pes.make_reference(family, opt_init, opt_update, theta, **layout)
    ref = {"s": ref_init(jax.random.PRNGKey(4))}

    def engine():
        state["es"], metrics = estimator.step(state["es"])
        return metrics["meta_loss"]

    def reference():
        ref["s"], loss = ref_step(ref["s"])
        return loss

    unroll, task_only, inner_step, sys_state = engine_pieces(
        system, estimator, state["es"], theta, args.trunc_length)
    candidates = {"engine": engine, "reference": reference}
    if args.breakdown:
        candidates.update(unroll=unroll, task=task_only)
    times = common.time_interleaved(candidates, 1, args.repeats)
    flops = step_flops(system, theta, layout, state["es"], inner_step)
    t_engine, t_ref = times["engine"]["median_s"], times["reference"]["median_s"]
    inner_steps = estimator.num_particles * args.trunc_length
    sig = common.significant
    entry.update({
        "engine_s": sig(t_engine), "reference_s": sig(t_ref),
        "engine_min_s": sig(times["engine"]["min_s"]),
        "reference_min_s": sig(times["reference"]["min_s"]),
        "engine_cpu_s": sig(times["engine"]["cpu_median_s"]),
        "reference_cpu_s": sig(times["reference"]["cpu_median_s"]),
        "ratio_cpu_time": round(times["engine"]["cpu_median_s"] / times["reference"]["cpu_median_s"], 3),
        "ratio_engine_to_reference": round(t_engine / t_ref, 3),
        "engine_inner_steps_per_s": round(inner_steps / t_engine, 1),
        "reference_inner_steps_per_s": round(inner_steps / t_ref, 1),
        "engine_gflop_per_step": round(flops / 1e9, 3),
        "engine_gflop_per_s": round(flops / t_engine / 1e9, 2),
        "engine_fraction_of_peak": round(flops / t_engine / peak, 4),
    })
    if args.breakdown:
        t_unroll, t_task = times["unroll"]["median_s"], times["task"]["median_s"]
        entry["breakdown_s"] = {
            "task_gradients": sig(t_task),
            "learned_optimizer": sig(t_unroll - t_task),
            "estimator": sig(t_engine - t_unroll),
        }
    return entry


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Measure every config, print a table, return the results section."""
    info = common.device_info()
    names = [n.strip() for n in args.configs.split(",") if n.strip()]
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        raise ValueError(f"--configs: unknown {unknown}; expected some of {list(CONFIGS)}.")
    print(common.describe_device(info))
    family = get_family(args.family)
    peaks = [matmul_peak()]
    configs = {}
    for name in names:
        configs[name] = run_config(name, args, family, peaks[0])
        print(f"{name}: {configs[name]}", flush=True)
    peaks.append(matmul_peak())
    peak = max(peaks)
    for entry in configs.values():  # fractions against the best peak of the run
        entry["engine_fraction_of_peak"] = round(
            entry["engine_gflop_per_s"] * 1e9 / peak, 4)
    rows = [[n, e["engine_s"], e["reference_s"], e["ratio_engine_to_reference"], e["ratio_cpu_time"],
             e["engine_inner_steps_per_s"], e["engine_gflop_per_step"], e["engine_gflop_per_s"],
             e["engine_fraction_of_peak"]] for n, e in configs.items()]
    print(f"\nPES outer step on {family.name}, {args.num_tasks} tasks x {args.num_pairs} pairs, "
          f"trunc {args.trunc_length} of {args.horizon}; matmul peak {peak / 1e9:.1f} GFLOP/s")
    print(common.format_table(
        ["config", "engine s", "reference s", "ratio", "CPU-time ratio", "inner steps/s", "GFLOP/step",
         "GFLOP/s", "of peak"], rows))
    section: dict[str, Any] = {
        "family": family.name, "num_tasks": args.num_tasks, "num_pairs": args.num_pairs,
        "trunc_length": args.trunc_length, "horizon": args.horizon, "repeats": args.repeats,
        "matmul_peak_gflop_per_s": [round(p / 1e9, 2) for p in peaks], "configs": configs,
    }
    if "mlp-2x32" in configs:
        ratio = configs["mlp-2x32"]["ratio_engine_to_reference"]
        section["target"] = {"value": ratio, "limit": TARGET_RATIO, "met": ratio <= TARGET_RATIO}
        print(f"target engine/reference <= {TARGET_RATIO} (mlp-2x32): {ratio:.3f} "
              + ("met" if ratio <= TARGET_RATIO else "MISSED"))
    section["load_after"] = common.device_info()["loadavg"]
    return section


def parser() -> argparse.ArgumentParser:
    """Command-line flags of this benchmark."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--configs", default=",".join(CONFIGS), help=f"some of {list(CONFIGS)}")
    p.add_argument("--family", default="auto", help="'auto', 'synthetic-mlp' or a registry name")
    p.add_argument("--num-tasks", type=int, default=8)
    p.add_argument("--num-pairs", type=int, default=8)
    p.add_argument("--trunc-length", type=int, default=20)
    p.add_argument("--horizon", type=int, default=200)
    p.add_argument("--repeats", type=int, default=5, help="timed blocks (one outer step each)")
    p.add_argument("--no-breakdown", dest="breakdown", action="store_false",
                   help="skip timing the unroll and task-gradient pieces")
    common.add_output_args(p)
    return p


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Entry point: run, print, merge into the device's results file."""
    args = parser().parse_args(argv)
    section = run(args)
    common.save_section(args, "engine", section)
    return section


if __name__ == "__main__":
    main()
