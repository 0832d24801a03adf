"""Run ``l2o demo`` over several meta-training seeds and tabulate its own optimizer.

    python scripts/demo_seeds.py --seeds 0,1,2 --out runs/demo-seeds     # runs the demos
    python scripts/demo_seeds.py --seeds 0,1,2 --out runs/demo-seeds --table-only

Each seed runs ``l2o demo --seed S --pretrained '' --out OUT/seedS`` (skipped when
``OUT/seedS/results.json`` exists); the table gives, per seed, the demo optimizer's and its
guarded version's speedup over tuned Adam (median and IQM over tasks with 95% bootstrap
CIs), tail train loss beside tuned Adam's, and wins, read back from each ``results.json``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROWS = ("mlp (demo)", "mlp (demo)+guard")


def seed_rows(results_path: Path) -> list[str]:
    """Markdown rows of one seed's demo optimizer (alone and guarded) and tuned Adam."""
    from baselines.report_load import load_results
    from baselines.report_summary import interval, speedup_summary, times

    results = load_results(results_path)
    adam = results.rows["adam"].metrics
    seed = results.config.get("demo", {}).get("meta", {}).get("seed", "?")
    lines = []
    for name in ROWS:
        row = results.rows[name]
        s, m = speedup_summary(row), row.metrics
        n = int(s["n"])
        lines.append(
            f"| {seed} | {name} | {times(s['median'])} {interval(s['median_ci'])} | "
            f"{times(s['iqm'])} {interval(s['iqm_ci'])} | {m['tail_train_loss']:.4g} | "
            f"{adam['tail_train_loss']:.4g} | {round(m['win_rate'] * n)}/{n} | "
            f"{m['divergences']}/{m['num_runs']} |")
    return lines


def table(dirs: list[Path]) -> str:
    """The Markdown table over the demo directories ``dirs``."""
    lines = ["| meta-training seed | optimizer | speedup median [95% CI] | speedup IQM [95% CI] "
             "| tail train loss | tuned Adam's | wins vs Adam | diverged |",
             "|---|---|---|---|---|---|---|---|"]
    for d in dirs:
        lines += seed_rows(d / "results.json")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated demo seeds")
    parser.add_argument("--out", default="runs/demo-seeds", help="parent of the seed dirs")
    parser.add_argument("--table-only", action="store_true", help="only read results back")
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    dirs = [Path(args.out) / f"seed{s}" for s in seeds]
    for seed, d in zip(seeds, dirs):
        if args.table_only or (d / "results.json").is_file():
            continue
        command = [sys.executable, "-m", "l2o.app.cli", "demo", "--seed", str(seed),
                   "--pretrained", "", "--out", str(d), "--overwrite"]
        subprocess.run(command, check=True)
    print(table(dirs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
