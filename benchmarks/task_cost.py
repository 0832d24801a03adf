"""Cost of one meta-training unroll on each entry of a training mixture.

For every entry of ``tasks.mixtures.get(NAME)`` (default ``"wide"``): ``--particles``
inner runs (default 128) each take ``--trunc`` steps (default 20) in one jitted
``vmap(lax.scan)``, measured two ways side by side:

* ``task``: value-and-grad of the task's training loss plus a plain SGD update, the
  cost of the task alone;
* ``mlp lopt``: `meta_train.inner.LearnedOptimizerSystem.unroll` with the default
  `l2o.MLPOptimizer` (what one PES particle group costs, without the ES bookkeeping).

    python -m benchmarks.task_cost                          # wide mixture, 128 x 20
    python -m benchmarks.task_cost --entries 0,1 --particles 16

Prints seconds per unroll, parameters per task and compile seconds, and merges the
section ``task_cost`` into ``benchmarks/results/DEVICE.json``.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax
import jax.numpy as jnp

import l2o
from benchmarks import common
from meta_train.inner import LearnedOptimizerSystem
from tasks import mixtures


def task_unroll(family, particles: int, trunc: int):
    """``run(keys) -> mean loss``: ``particles`` runs x ``trunc`` SGD steps, jitted."""

    def one(key):
        cfg = family.sample(key)
        task = family.task(cfg)
        params = task.init(jax.random.fold_in(key, 1))

        def step(params, t):
            loss, grads = jax.value_and_grad(task.loss)(params, jax.random.fold_in(key, t))
            return jax.tree.map(lambda p, g: p - 1e-3 * g, params, grads), loss

        _, losses = jax.lax.scan(step, params, jnp.arange(trunc))
        return losses.mean()

    return jax.jit(lambda keys: jax.vmap(one)(keys).mean())


def lopt_unroll(family, particles: int, trunc: int):
    """``run(keys) -> mean meta-loss`` of the MLP optimizer's system (horizon 10 x trunc)."""
    lopt = l2o.MLPOptimizer()
    theta = lopt.init_meta_params(jax.random.PRNGKey(0))
    system = LearnedOptimizerSystem(family=family, lopt=lopt, horizon=10 * trunc)

    def one(key):
        state = system.init(key, theta)
        _, loss, _ = system.unroll(theta, state, jax.random.fold_in(key, 2), trunc)
        return loss

    return jax.jit(lambda keys: jax.vmap(one)(keys).mean())


def measure(entry: dict, args) -> dict[str, Any]:
    """Compile and time both unrolls of one mixture entry."""
    family = mixtures.build(entry)
    abstract = jax.eval_shape(lambda k: family.task(family.sample(k)).init(k), jax.random.key(0))
    num_params = sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(abstract))
    keys = jax.random.split(jax.random.key(1), args.particles)
    runners, compile_s = {}, {}
    for label, build in (("task", task_unroll), ("mlp lopt", lopt_unroll)):
        fn = build(family, args.particles, args.trunc)
        start = time.perf_counter()
        compiled = fn.lower(keys).compile()
        compile_s[label] = time.perf_counter() - start
        runners[label] = lambda compiled=compiled: compiled(keys)
    times = common.time_interleaved(runners, iters=1, repeats=args.repeats)
    name = family.task(family.sample(jax.random.key(0))).name
    return {
        "task": name, "params": num_params,
        "task_s": times["task"]["median_s"], "lopt_s": times["mlp lopt"]["median_s"],
        "task_compile_s": compile_s["task"], "lopt_compile_s": compile_s["mlp lopt"],
        "overrides": entry.get("overrides", {}),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Entry point: measure, print, merge into the device's results file; returns the section."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mixture", default="wide", help=f"one of {mixtures.names()}")
    parser.add_argument("--entries", default=None, help="comma-separated entry indices")
    parser.add_argument("--particles", type=int, default=128)
    parser.add_argument("--trunc", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    common.add_output_args(parser)
    args = parser.parse_args(argv)
    entries = mixtures.get(args.mixture)
    indices = list(range(len(entries)))
    if args.entries:
        try:
            indices = [int(v) for v in args.entries.split(",") if v.strip()]
        except ValueError:
            indices = [-1]
        if not indices or any(not 0 <= i < len(entries) for i in indices):
            raise SystemExit(f"--entries expects comma-separated indices in [0, {len(entries)}) "
                             f"of the {args.mixture!r} mixture, got {args.entries!r}.")
    info = common.device_info()
    print(common.describe_device(info))
    chosen = [(i, entries[i]) for i in indices]
    rows, results = [], []
    for i, entry in chosen:
        r = measure(entry, args)
        results.append({"index": i, **r})
        rows.append([i, r["task"], r["params"], r["task_s"], r["lopt_s"],
                     r["task_compile_s"], r["lopt_compile_s"]])
        print(f"  {i}: {r['task']} task {r['task_s']:.3g}s lopt {r['lopt_s']:.3g}s", flush=True)
    print(f"\n{args.particles} particles x {args.trunc}-step unroll, mixture {args.mixture!r}")
    print(common.format_table(["#", "task", "params", "task s/unroll", "mlp lopt s/unroll",
                               "task compile s", "lopt compile s"], rows))
    section = {"mixture": args.mixture, "particles": args.particles, "trunc": args.trunc,
               "entries": results}
    common.save_section(args, "task_cost", section, info)
    return section


if __name__ == "__main__":
    main()
