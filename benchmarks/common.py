"""Helpers shared by every benchmark: device description, fair timing, result files, tables.

    info = device_info()                       # platform, kind, slug ("cpu", "h100"), load
    times = time_interleaved({"adam": run_adam, "mlp": run_mlp}, repeats=5)
    merge_results(results_path(None, info), "optimizer_step", {...}, info)
    print(format_table(["optimizer", "ms/step"], rows))

Timing protocol: every candidate is warmed up (compiled and run once), then the
candidates are timed in rotated order within each repeat (so slow drifts of the machine
load hit all of them alike), each block running ``iters`` calls and ending with
``block_until_ready``. The reported time is the median over repeats of block time / iters.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import time
from pathlib import Path
from typing import Any, Callable

import jax

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def device_slug(platform: str, device_kind: str) -> str:
    """File-name slug of a device: ``"cpu"`` on CPU, else e.g. ``"h100"`` or ``"a100"``.

    The slug is the first token of ``device_kind`` that contains a digit (NVIDIA kinds
    look like ``"NVIDIA H100 80GB HBM3"``), lower-cased; otherwise the whole kind
    lower-cased with non-alphanumerics replaced by ``-``.
    """
    if platform == "cpu":
        return "cpu"
    tokens = [t for t in re.split(r"[\s_]+", device_kind) if t and t.upper() != "NVIDIA"]
    for token in tokens:
        if any(c.isdigit() for c in token):
            return re.sub(r"[^a-z0-9]+", "-", token.lower()).strip("-")
    slug = re.sub(r"[^a-z0-9]+", "-", device_kind.lower()).strip("-")
    return slug or platform


def device_info() -> dict[str, Any]:
    """Description of the default device and of the machine load at call time.

    Returns ``platform``, ``device_kind``, ``slug`` (see `device_slug`),
    ``num_devices``, ``jax_version``, ``cpu_count`` and ``loadavg`` (1, 5, 15 min,
    from ``os.getloadavg``; other processes on the machine inflate timings).
    """
    device = jax.devices()[0]
    return {
        "platform": device.platform,
        "device_kind": device.device_kind,
        "slug": device_slug(device.platform, device.device_kind),
        "num_devices": jax.device_count(),
        "jax_version": jax.__version__,
        "cpu_count": os.cpu_count(),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
    }


def is_gpu() -> bool:
    """Whether the default device is an accelerator (not the CPU)."""
    return jax.devices()[0].platform != "cpu"


def time_interleaved(
    candidates: dict[str, Callable[[], Any]],
    iters: dict[str, int] | int = 10,
    repeats: int = 5,
    warmup: int = 1,
) -> dict[str, dict[str, float]]:
    """Median seconds per call of each zero-argument callable, timed side by side.

    Args:
      candidates: name -> ``fn()``; ``fn`` returns arrays (blocked on) and may advance
        its own state (e.g. a closure holding a training state).
      iters: calls per timed block, one number or one per candidate.
      repeats: number of timed blocks per candidate (>= 1); the order of candidates
        is rotated by one each repeat.
      warmup: untimed calls per candidate before timing (compilation happens here).

    Returns:
      name -> ``{"median_s", "min_s", "max_s", "iters", "repeats", "cpu_median_s"}``
      (seconds per call; ``cpu_median_s`` is this process's CPU time, all threads, per
      call: less sensitive than wall time to other jobs sharing the machine).
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats!r}.")
    names = list(candidates)
    per_iter = {n: (iters if isinstance(iters, int) else iters[n]) for n in names}
    for name in names:
        if per_iter[name] < 1:
            raise ValueError(f"iters for {name!r} must be >= 1, got {per_iter[name]!r}.")
        for _ in range(warmup):
            jax.block_until_ready(candidates[name]())
    samples: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    for r in range(repeats):
        order = names[r % len(names):] + names[: r % len(names)]
        for name in order:
            fn, n = candidates[name], per_iter[name]
            start, start_cpu = time.perf_counter(), time.process_time()
            out = None
            for _ in range(n):
                out = fn()
            jax.block_until_ready(out)
            samples[name].append((time.perf_counter() - start) / n)
            cpu[name].append((time.process_time() - start_cpu) / n)
    return {
        n: {
            "median_s": statistics.median(s),
            "min_s": min(s),
            "max_s": max(s),
            "iters": per_iter[n],
            "repeats": repeats,
            "cpu_median_s": statistics.median(cpu[n]),
        }
        for n, s in samples.items()
    }


def calibrate_iters(fn: Callable[[], Any], block_seconds: float, max_iters: int = 1000) -> int:
    """Calls of ``fn`` that fill about ``block_seconds`` (median of 3 timed calls after a
    warm-up call, which also compiles)."""
    jax.block_until_ready(fn())
    once = statistics.median(timed(fn)[1] for _ in range(3))
    return int(max(1, min(max_iters, block_seconds // max(once, 1e-7))))


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """``(fn(), seconds)`` with the result blocked on."""
    start = time.perf_counter()
    out = jax.block_until_ready(fn())
    return out, time.perf_counter() - start


def results_path(out: str | os.PathLike | None, info: dict[str, Any]) -> Path:
    """``out`` if given, else ``benchmarks/results/<slug>.json`` for ``info``'s device."""
    return Path(out) if out else RESULTS_DIR / f"{info['slug']}.json"


def merge_results(path: Path, section: str, data: dict[str, Any], info: dict[str, Any]) -> dict:
    """Write ``data`` under ``section`` into the JSON file at ``path``, keeping other sections.

    The file holds ``{"device": info-of-last-writer, "<section>": {..., "device": info,
    "timestamp": ...}}``; a missing or unreadable file starts empty. Returns the whole
    merged dict. The write goes to a temporary file renamed into place.
    """
    path = Path(path)
    try:
        merged = json.loads(path.read_text())
        if not isinstance(merged, dict):
            merged = {}
    except (OSError, ValueError):
        merged = {}
    entry = dict(data)
    entry["device"] = info
    entry["timestamp"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    merged[section] = entry
    merged["device"] = info
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(merged, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)
    return merged


def significant(x: float, digits: int = 4) -> float:
    """``x`` rounded to ``digits`` significant digits (timings of a millisecond keep their
    precision, unlike a fixed number of decimals)."""
    return float(f"{x:.{digits}g}")


def format_table(headers: list[str], rows: list[list[Any]]) -> str:
    """Plain-text table with right-aligned columns; floats printed with 3 significant digits."""

    def cell(x: Any) -> str:
        if isinstance(x, float):
            return f"{x:.3g}" if abs(x) < 1e4 else f"{x:,.0f}"
        return str(x)

    table = [[str(h) for h in headers]] + [[cell(x) for x in row] for row in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(headers))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def describe_device(info: dict[str, Any]) -> str:
    """One line: ``device: cpu (cpu) x1, jax 0.10.2, load 1.2/0.8/0.5 on 2 cores``."""
    load = "/".join(f"{x:.1f}" for x in info["loadavg"])
    return (
        f"device: {info['device_kind']} ({info['platform']}) x{info['num_devices']}, "
        f"jax {info['jax_version']}, load {load} on {info['cpu_count']} cores"
    )


def parse_ints(text: str, flag: str) -> list[int]:
    """``"1,4,16"`` -> ``[1, 4, 16]``; raises ``ValueError`` naming ``flag`` otherwise."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or any(v < 1 for v in values):
        raise ValueError(
            f"{flag} expects comma-separated positive integers like '1,4,16'; got {text!r}."
        )
    return values


def add_output_args(parser) -> None:
    """The ``--out`` / ``--no-save`` flags every benchmark script shares."""
    parser.add_argument("--out", default=None, help="results JSON (default results/DEVICE.json)")
    parser.add_argument("--no-save", action="store_true", help="print only, write no file")


def save_section(args, section_name: str, section: dict, info: dict | None = None) -> None:
    """Merge ``section`` into the device's results file unless ``--no-save``; print the path.

    ``info`` describes the device the numbers come from (default: `device_info` here).
    """
    if args.no_save:
        return
    info = device_info() if info is None else info
    path = results_path(args.out, info)
    merge_results(path, section_name, section, info)
    print(f"\nwrote {path}")
