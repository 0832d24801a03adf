"""Measure the shipped optimizers against tuned baselines: ``python scripts/evaluate_pretrained.py``.

The shipped optimizers trained on the same family are compared together, so each table
shares one set of tuned baselines. For each training family: (1) held-out tasks of the
training distribution (unseen initialisations, data order and task draws; baselines
tuned on other train-family tasks), then (2) out-of-distribution tasks (the family's
held-out split with other architectures, and other families), always with the loss
guard row (the default guard) whose fallback is the tuned Adam. Reports (Markdown,
JSON, PNG) go to ``OUT/TRAINED_ON/TASKS/`` and a summary table to ``OUT/summary.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import jax

# shipped name -> training family
SHIPPED = {
    "mlp-image": "mlp-digits",
    "lstm-image": "mlp-digits",
    "mlp-quadratic": "quadratic",
    "lstm-quadratic": "quadratic",
}
# training family -> the meta-training horizon, the step budget of its comparisons
HORIZON = {"mlp-digits": 200, "quadratic": 100}
# training family -> out-of-distribution (family, split) pairs
OUT_OF_DISTRIBUTION = {
    "mlp-digits": [("mlp-digits", "heldout"), ("conv-digits", "train"), ("rosenbrock", "train")],
    "quadratic": [("quadratic", "heldout"), ("rosenbrock", "train")],
}
# Caps on the batches where a full one is too slow on CPU: vmapped convolutions cost
# several times a dense layer of the same size there, and tuning runs every grid point
# at once (a 320-run conv tuning batch took over 17 minutes on 2 cores).
BUDGET = {"conv-digits": {"num_tasks": 4, "tune_tasks": 2, "tune_seeds": 2}}
COLUMNS = ("final_train_loss", "tail_train_loss", "speedup_median", "win_rate", "divergences")


def run_one(names: list[str], family_name: str, split: str, steps: int, out: Path,
            args) -> dict:
    """Compare ``names`` (and their guarded rows) with tuned baselines on one family/split."""
    import l2o
    from baselines.compare import compare
    from baselines.report import write_report
    from tasks import registry

    def factory(name):
        lopt, theta, _ = l2o.load_pretrained(name)
        return lambda n: lopt.as_optax(theta, num_steps=n)

    train = registry.get(family_name)
    heldout = registry.get(family_name, split=split) if split != "train" else train
    caps = BUDGET.get(family_name, {})
    budget = {k: min(v, caps.get(k, v)) for k, v in (
        ("num_seeds", args.seeds), ("num_tasks", args.tasks),
        ("tune_seeds", args.seeds), ("tune_tasks", args.tasks))}
    results = compare(
        {"lion": "lion", "lookahead": "lookahead", **{name: factory(name) for name in names}},
        train, steps=steps, guard=True, heldout_family=heldout,
        key=jax.random.PRNGKey(args.seed), **budget,
    )
    label = family_name + ("" if split == "train" else f"-{split}")
    write_report(results, out / label)
    return {"tasks": label, "steps": steps, "device": results.device,
            "budget": {k: results.config[k] for k in ("num_tasks", "num_seeds", "tune_tasks",
                                                       "tune_seeds")},
            "rows": {row: {c: r.metrics[c] for c in COLUMNS} | {"num_runs": r.metrics["num_runs"]}
                     for row, r in results.rows.items()}}


def summary_markdown(summary: dict) -> str:
    """One table per training family: every row of every task set it was measured on."""
    lines = ["# Shipped optimizers vs tuned baselines", ""]
    for trained_on, entries in summary.items():
        lines += [f"## Trained on {trained_on}", "", "| tasks | steps | optimizer | "
                  "final train loss | tail train loss | speedup over tuned Adam (median) | "
                  "win rate vs Adam | diverged |", "|---|---|---|---|---|---|---|---|"]
        for entry in entries:
            for row, m in entry["rows"].items():
                # Summaries written before the losses were named call the tail loss final_loss.
                tail = m.get("tail_train_loss", m.get("final_loss"))
                final = m.get("final_train_loss")
                lines.append(f"| {entry['tasks']} | {entry['steps']} | {row} | "
                             f"{'n/a' if final is None else format(final, '.4g')} | "
                             f"{tail:.4g} | {m['speedup_median']:.2f}x | "
                             f"{m['win_rate']:.2f} | {m['divergences']}/{m['num_runs']} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", default=None, help=f"default: {list(SHIPPED)}")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--tasks", type=int, default=8)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-ood", action="store_true", help="skip out-of-distribution runs")
    parser.add_argument("--out", default="docs/results")
    args = parser.parse_args(argv)
    import l2o

    names = args.names or [n for n in SHIPPED if n in l2o.list_pretrained()]
    unknown = [n for n in names if n not in SHIPPED]
    if unknown:
        raise SystemExit(f"no evaluation suite for {unknown}; known: {list(SHIPPED)}.")
    out = Path(args.out)
    for trained_on in dict.fromkeys(SHIPPED[n] for n in names):
        group = [n for n in names if SHIPPED[n] == trained_on]
        runs = [(trained_on, "train")] + ([] if args.no_ood else OUT_OF_DISTRIBUTION[trained_on])
        entries = [run_one(group, fam, split, HORIZON[trained_on], out / trained_on, args)
                   for fam, split in runs]
        (out / trained_on).mkdir(parents=True, exist_ok=True)
        (out / trained_on / "summary.json").write_text(json.dumps(entries, indent=2) + "\n")
    # The summary covers every family measured into OUT so far (runs may be split).
    summary = {p.parent.name: json.loads(p.read_text())
               for p in sorted(out.glob("*/summary.json"))}
    (out / "summary.md").write_text(summary_markdown(summary))
    print(summary_markdown(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
