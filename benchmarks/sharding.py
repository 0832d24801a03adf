"""Inner training steps per second of the PES outer step vs the number of devices it is
sharded over, at a fixed population.

Each device count runs in its own subprocess (a process's device count is fixed when JAX
starts): on CPU with ``XLA_FLAGS=--xla_force_host_platform_device_count=D`` (virtual
devices sharing the same cores), on an accelerator with the first D real devices. The
measured function is `meta_train.sharding.ShardedEstimator.step` (D > 1) or
`ESGradientEstimator.step` (D = 1) training an `l2o.MLPOptimizer` on digits-MLP-shaped
tasks, as in `benchmarks.meta_throughput`:

    rate(D) = P * trunc_length / (seconds per outer step),   P = 2 * num_tasks * num_pairs

Virtual CPU devices split the same cores, so on CPU the ratio rate(D) / rate(1) measures
the overhead of partitioning (extra programs, collectives through host memory), not a
speedup; on D accelerators the ideal is D.

    python -m benchmarks.sharding                       # CPU: D = 1, 2, 4 at P = 64
    python -m benchmarks.sharding --devices 1,2,4,8 --population 1024   # 8 GPUs
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ROOT = Path(__file__).resolve().parents[1]


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """In the child process: time the outer step over ``args.child`` devices."""
    import jax

    from benchmarks import common
    from benchmarks.meta_throughput import layout, make_system
    from meta_train.pes import ESGradientEstimator
    from meta_train.sharding import ShardedEstimator, particle_mesh

    num_devices = args.child
    if jax.device_count() < num_devices:
        raise SystemExit(f"asked for {num_devices} devices, {jax.device_count()} visible")
    num_tasks, num_pairs = layout(args.population, args.max_tasks)
    system, theta = make_system(args.family, args.horizon)
    estimator = ESGradientEstimator(system, theta, num_tasks=num_tasks, num_pairs=num_pairs,
                                    trunc_length=args.trunc_length, horizon=args.horizon)
    runner = estimator if num_devices == 1 else ShardedEstimator(
        estimator, particle_mesh(num_tasks, num_pairs, jax.devices()[:num_devices]))
    state = {"es": runner.init(jax.random.PRNGKey(4), theta)}

    def run():
        state["es"], metrics = runner.step(state["es"])
        return metrics["meta_loss"]

    iters = common.calibrate_iters(run, args.block_seconds, args.max_iters)
    seconds = common.time_interleaved({"step": run}, iters, args.repeats, warmup=0)["step"]
    info = common.device_info()
    return {
        "num_devices": num_devices, "num_tasks": num_tasks, "num_pairs": num_pairs,
        "mesh": list(runner.mesh.devices.shape) if num_devices > 1 else [1, 1, 1],
        "ms_per_outer_step": round(1e3 * seconds["median_s"], 3),
        "inner_steps_per_s": round(args.population * args.trunc_length / seconds["median_s"], 1),
        "family": system.family.name, "device": info,
    }


def run_child(num_devices: int, args: argparse.Namespace, cpu: bool) -> dict[str, Any]:
    """Start ``python -m benchmarks.sharding --child D`` and return its JSON line."""
    env = dict(os.environ)
    if cpu:
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") +
                            f" --xla_force_host_platform_device_count={num_devices}").strip()
        env["JAX_PLATFORMS"] = "cpu"
    argv = [sys.executable, "-m", "benchmarks.sharding", "--child", str(num_devices),
            "--population", str(args.population), "--family", args.family,
            "--trunc-length", str(args.trunc_length), "--horizon", str(args.horizon),
            "--max-tasks", str(args.max_tasks), "--repeats", str(args.repeats),
            "--block-seconds", str(args.block_seconds), "--max-iters", str(args.max_iters)]
    out = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True,
                         timeout=args.timeout)
    if out.returncode != 0:
        raise RuntimeError(f"{num_devices}-device run failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def child_platform(timeout: int = 120) -> tuple[str, int]:
    """``(platform, device count)`` seen by a fresh process. Asked in a subprocess so this
    process never starts a backend (on a GPU it would reserve memory the children need)."""
    code = "import jax; print(jax.default_backend(), jax.device_count())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=timeout, cwd=ROOT)
    if out.returncode != 0:
        raise RuntimeError(f"could not start JAX in a subprocess:\n{out.stderr[-2000:]}")
    platform, count = out.stdout.split()[-2:]
    return platform, int(count)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Measure every device count in turn, print the table, return the results section."""
    from benchmarks import common
    from benchmarks.meta_throughput import layout
    from meta_train.sharding import valid_device_counts

    platform, visible = child_platform()
    counts = common.parse_ints(args.devices, "--devices")
    num_tasks, num_pairs = layout(args.population, args.max_tasks)
    valid = valid_device_counts(num_tasks, num_pairs)
    bad = [d for d in counts if d not in valid]
    if bad:
        raise ValueError(f"--devices {bad} cannot split population {args.population} "
                         f"({num_tasks} tasks x {num_pairs} pairs); valid: {valid}.")
    cpu = platform == "cpu"
    if not cpu and max(counts) > visible:
        raise ValueError(f"--devices up to {max(counts)} but {visible} {platform} devices visible.")
    entries = {str(d): run_child(d, args, cpu) for d in counts}
    info = dict(entries[str(counts[-1])]["device"])
    print(common.describe_device(info))
    base = entries[str(counts[0])]["inner_steps_per_s"]
    rows = []
    for d in counts:
        entry = entries[str(d)]
        entry["ratio_vs_first"] = round(entry["inner_steps_per_s"] / base, 3)
        rows.append([d, "x".join(map(str, entry["mesh"])), entry["ms_per_outer_step"],
                     entry["inner_steps_per_s"], entry["ratio_vs_first"]])
        entry.pop("device")
    kind = "virtual CPU devices on the same cores: ratios show overhead, not speedup" if cpu \
        else "real devices: ideal ratio = devices / first"
    print(f"\nPES outer step sharded over devices ({kind}); population {args.population} = "
          f"2 x {num_tasks} tasks x {num_pairs} pairs, trunc {args.trunc_length} of "
          f"horizon {args.horizon}")
    print(common.format_table(["devices", "mesh s x t x p", "ms/outer step", "inner steps/s",
                               f"x {counts[0]} dev"], rows))
    return {
        "device_info": info,
        "population": args.population, "num_tasks": num_tasks, "num_pairs": num_pairs,
        "trunc_length": args.trunc_length, "horizon": args.horizon,
        "virtual_cpu_devices": cpu, "devices": entries,
        "load_after": common.device_info()["loadavg"],
    }


def parser() -> argparse.ArgumentParser:
    """Command-line flags of this benchmark."""
    from benchmarks import common

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--devices", default="1,2,4", help="device counts (default 1,2,4)")
    p.add_argument("--population", type=int, default=64, help="particles per outer step")
    p.add_argument("--family", default="auto", help="'auto', 'synthetic-mlp' or a registry name")
    p.add_argument("--trunc-length", type=int, default=20)
    p.add_argument("--horizon", type=int, default=200)
    p.add_argument("--max-tasks", type=int, default=8)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--block-seconds", type=float, default=0.5)
    p.add_argument("--max-iters", type=int, default=100)
    p.add_argument("--timeout", type=int, default=900, help="seconds per device count")
    p.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    common.add_output_args(p)
    return p


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Entry point: run, print, merge into the device's results file."""
    args = parser().parse_args(argv)
    if args.child is not None:
        result = measure(args)
        print(json.dumps(result))
        return result
    from benchmarks import common

    section = run(args)
    common.save_section(args, "sharding", section, info=section.pop("device_info"))
    return section


if __name__ == "__main__":
    main()
