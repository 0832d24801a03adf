"""Run every benchmark in one process and merge all numbers into one results file.

    python -m benchmarks.run_all            # CPU defaults -> benchmarks/results/cpu.json
    python -m benchmarks.run_all --gpu      # accelerator sizes -> results/<gpu slug>.json

``--gpu`` picks the accelerator sizes (populations up to 1024, more timing repeats);
budget: under 8 minutes on one H100, compiles included. ``--only`` runs a subset.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import common, compile_time, engine, memory, meta_throughput, optimizer_step

# compile_time first: later benchmarks would warm JAX's tracing caches and shorten lowering.
BENCHMARKS = {
    "compile_time": compile_time,
    "optimizer_step": optimizer_step,
    "meta_throughput": meta_throughput,
    "engine": engine,
    "memory": memory,
}
# Flags per benchmark; defaults of each script are the CPU sizes.
GPU_FLAGS: dict[str, list[str]] = {
    "optimizer_step": ["--repeats", "9", "--block-seconds", "0.3", "--max-iters", "1000"],
    "meta_throughput": ["--population", meta_throughput.GPU_POPULATIONS, "--naive-max", "16",
                        "--repeats", "5", "--block-seconds", "0.3"],
    "engine": ["--repeats", "5"],
    "memory": ["--population", "1,16,256,1024"],
    "compile_time": ["--population", "128,1024"],
}


def run(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the selected benchmarks in order; return ``{name: results section}``."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--gpu", action="store_true", help="accelerator sizes (see module doc)")
    p.add_argument("--only", default=",".join(BENCHMARKS), help=f"some of {list(BENCHMARKS)}")
    p.add_argument("--out", default=None, help="results JSON (default results/DEVICE.json)")
    args = p.parse_args(argv)
    selected = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in selected if n not in BENCHMARKS]
    if unknown:
        raise ValueError(f"--only: unknown benchmark(s) {unknown}; expected some of "
                         f"{list(BENCHMARKS)}.")
    if args.gpu and not common.is_gpu():
        print("warning: --gpu given but the default device is a CPU; using GPU sizes anyway")
    info = common.device_info()
    path = common.results_path(args.out, info)
    results, seconds = {}, {}
    for name in selected:
        print(f"\n===== {name} =====", flush=True)
        start = time.perf_counter()
        flags = (GPU_FLAGS[name] if args.gpu else []) + ["--out", str(path)]
        results[name] = BENCHMARKS[name].main(flags)
        seconds[name] = round(time.perf_counter() - start, 1)
    info = common.device_info()
    common.merge_results(path, "run_all", {"gpu_sizes": args.gpu, "seconds": seconds}, info)
    print("\n" + common.format_table(["benchmark", "seconds"], [[n, s] for n, s in seconds.items()]))
    print(f"wrote {path}")
    return results


if __name__ == "__main__":
    run()
