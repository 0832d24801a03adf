"""Measure the shipped optimizers against tuned baselines: ``python scripts/evaluate_pretrained.py``.

For each shipped optimizer: (1) held-out tasks of its training distribution (unseen
initialisations, data order and task draws of the train family; baselines tuned on
other train-family tasks), and (2) out-of-distribution families (the family's
held-out split with other architectures, plus other families), always with the loss
guard row whose fallback is the tuned Adam. Reports (Markdown, JSON, PNG) go to
``OUT/NAME/FAMILY[-heldout]/`` and a summary table to ``OUT/summary.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import jax

# name -> (training family, horizon, out-of-distribution (family, split) pairs)
SUITES = {
    "mlp-image": ("mlp-digits", 200, [("mlp-digits", "heldout"), ("rosenbrock", "train")]),
    "lstm-image": ("mlp-digits", 200, [("mlp-digits", "heldout"), ("rosenbrock", "train")]),
    "mlp-quadratic": ("quadratic", 100, [("quadratic", "heldout"), ("rosenbrock", "train")]),
    "lstm-quadratic": ("quadratic", 100, [("quadratic", "heldout"), ("rosenbrock", "train")]),
}
COLUMNS = ("final_loss", "speedup_median", "win_rate", "divergences")


def run_one(name: str, family_name: str, split: str, steps: int, args) -> dict:
    """Compare ``name`` (and its guarded row) with tuned baselines on one family/split."""
    import l2o
    from baselines.compare import compare
    from baselines.report import write_report
    from tasks import registry

    lopt, theta, _ = l2o.load_pretrained(name)
    train = registry.get(family_name)
    heldout = registry.get(family_name, split=split) if split != "train" else train
    results = compare(
        {"lion": "lion", "lookahead": "lookahead",
         name: lambda n: lopt.as_optax(theta, num_steps=n)},
        train, steps=steps, num_seeds=args.seeds, num_tasks=args.tasks, guard=True,
        heldout_family=heldout, key=jax.random.PRNGKey(args.seed),
    )
    label = family_name + ("" if split == "train" else f"-{split}")
    write_report(results, Path(args.out) / name / label)
    return {"family": label, "device": results.device,
            "rows": {row: {c: r.metrics[c] for c in COLUMNS} | {"num_runs": r.metrics["num_runs"]}
                     for row, r in results.rows.items()}}


def summary_markdown(summary: dict) -> str:
    """One table per optimizer: every row of every family it was measured on."""
    lines = ["# Shipped optimizers vs tuned baselines", ""]
    for name, entries in summary.items():
        lines += [f"## {name}", "", "| tasks | optimizer | final loss | speedup over tuned Adam "
                  "(median) | win rate vs Adam | diverged |", "|---|---|---|---|---|---|"]
        for entry in entries:
            for row, m in entry["rows"].items():
                lines.append(f"| {entry['family']} | {row} | {m['final_loss']:.4g} | "
                             f"{m['speedup_median']:.2f}x | {m['win_rate']:.2f} | "
                             f"{m['divergences']}/{m['num_runs']} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", default=None, help=f"default: {list(SUITES)}")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--tasks", type=int, default=8)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-ood", action="store_true", help="skip out-of-distribution runs")
    parser.add_argument("--out", default="docs/results")
    args = parser.parse_args(argv)
    import l2o

    names = args.names or [n for n in SUITES if n in l2o.list_pretrained()]
    unknown = [n for n in names if n not in SUITES]
    if unknown:
        raise SystemExit(f"no evaluation suite for {unknown}; known: {list(SUITES)}.")
    out = Path(args.out)
    for name in names:
        family, steps, ood = SUITES[name]
        runs = [(family, "train")] + ([] if args.no_ood else ood)
        entries = [run_one(name, fam, split, steps, args) for fam, split in runs]
        (out / name / "summary.json").write_text(json.dumps(entries, indent=2) + "\n")
    # The summary covers every optimizer measured into OUT so far (runs may be split).
    summary = {p.parent.name: json.loads(p.read_text())
               for p in sorted(out.glob("*/summary.json"))}
    (out / "summary.md").write_text(summary_markdown(summary))
    print(summary_markdown(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
