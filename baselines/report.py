"""Write a comparison out: ``report.md``, ``results.json`` and PNG plots.

- ``report.md``: lead sentences (`baselines.report_summary.lead`: what won, by how much,
  on which tasks, median and IQM speedup with bootstrap CIs over tasks, what never reached
  tuned Adam's loss, what diverged), one Markdown table (a row per optimizer), the tuning
  grids and their scores, the configuration, device and library versions.
- ``results.json``: every number of the report plus the raw curves
  (``[task][seed][step]``, NaN written as ``null``) and the exact evaluation tasks.
- ``summary.png``, ``speedup.png``, ``loss_curves.png`` (`baselines.report_plots`) and
  ``performance_profile.png``: fraction of tasks on which an optimizer reaches tuned
  Adam's final loss within τ × the fewest steps any optimizer needed (AlgoPerf style).
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from baselines import metrics
from baselines.compare import Results
from baselines.report_plots import plot_speedup, plot_summary, plot_tasks
from baselines.report_summary import describe_tasks, interval, lead, speedup_summary, times
from tasks.evaluation import DEFINITIONS

TAUS = np.geomspace(1.0, 10.0, 200)


def jsonable(value: Any) -> Any:
    """Recursively turn NumPy values into JSON types; NaN/inf become None."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer, int)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    return value


def results_dict(results: Results) -> dict[str, Any]:
    """All numbers of ``results`` as a JSON-ready dict (curves included)."""
    rows = {}
    for name, row in results.rows.items():
        rows[name] = {
            "kind": row.kind,
            "hparams": row.hparams,
            "metrics": row.metrics,
            "seconds_per_step": row.result.seconds_per_step,
            "compile_seconds": row.result.compile_seconds,
            "eval_steps": row.result.eval_steps,
            "train_loss": row.result.train_loss,
            "eval_loss": row.result.eval_loss,
            "eval_train_loss": row.result.eval_train_loss,
            "diverged": row.result.diverged,
            "num_nonfinite": row.result.num_nonfinite,
            "final_stats": row.result.final_stats,
            "final_metrics": row.result.final_metrics,
            "speedup_summary": speedup_summary(row),
        }
    return jsonable({
        "config": results.config,
        "device": results.device,
        "versions": results.versions,
        "tuning": {name: t.to_dict() for name, t in results.tuning.items()},
        "performance_profile": {
            "taus": TAUS,
            "names": list(results.rows),
            "fractions": profile(results),
        },
        "rows": rows,
    })


def profile(results: Results) -> np.ndarray:
    """``[num_rows, len(TAUS)]`` step-based performance profile of every row."""
    steps = np.stack([
        np.asarray(row.metrics["per_task"]["steps_to_target"], float)
        for row in results.rows.values()
    ])
    return metrics.performance_profile(steps, TAUS)


def fmt(value: Any, digits: int = 4) -> str:
    """A number for a Markdown table: ``digits`` significant digits, "nan", "never" for +inf."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "nan"
    if isinstance(value, float):
        if math.isinf(value):
            return "never" if value > 0 else "-inf"
        return f"{value:.{digits}g}"
    return str(value)


def markdown(results: Results) -> str:
    """The ``report.md`` text."""
    config = results.config
    reference = config["reference"]
    tuned = config.get("tuned_on")
    tuned_on = (f"`{tuned['family']}` train split ({tuned['architecture']})" if tuned
                else f"`{config['family']}`")
    lines = [
        f"# Optimizer comparison on {describe_tasks(config)}",
        "",
        lead(results),
        "",
        f"Evaluation tasks: {describe_tasks(config)}, {config['num_tasks']} tasks × "
        f"{config['num_seeds']} seeds, {config['steps']} steps each. Baselines tuned on "
        f"{tuned_on} ({config['tune_tasks']} tasks × {config['tune_seeds']} seeds, same "
        f"{config['steps']}-step budget): "
        f"{config['selection']}. Reference: tuned `{reference}`.",
        "",
        "![summary: median loss curves over tasks](summary.png)",
        "",
        "| optimizer | hyper-parameters | final train loss | final test loss | tail train loss | "
        "best loss | steps to Adam's tail loss | speedup median [95% CI] | speedup IQM "
        "[95% CI] | reached | win rate vs Adam | diverged | ms/step | time vs Adam |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in results.rows.items():
        m, s = row.metrics, speedup_summary(row)
        hparams = ", ".join(f"{k}={fmt(v, 3)}" for k, v in row.hparams.items()) or row.kind
        wins = "—" if name == reference else fmt(m["win_rate"], 3)
        lines.append(
            f"| {name} | {hparams} | {fmt(m['final_train_loss'])} | "
            f"{fmt(m['final_test_loss'])} | {fmt(m['tail_train_loss'])} | "
            f"{fmt(m['best_loss'])} | {fmt(m['steps_to_target'])} | "
            f"{times(s['median'])} {interval(s['median_ci'])} | "
            f"{times(s['iqm'])} {interval(s['iqm_ci'])} | "
            f"{fmt(100 * m['fraction_reached'], 3)}% | {wins} | "
            f"{m['divergences']}/{m['num_runs']} | {fmt(1e3 * m['seconds_per_step'], 3)} | "
            f"{fmt(m['time_ratio'], 3)}× |"
        )
    guarded = [
        f"{name}: {100 * row.metrics['guard_learned_fraction']:.1f}%"
        for name, row in results.rows.items()
        if "guard_learned_fraction" in row.metrics
    ]
    if guarded:
        lines += ["", "Loss guard (fallback: tuned Adam), steps that took the learned "
                  "candidate: " + ", ".join(guarded) + "."]
    lines += [
        "",
        "Losses are means over the runs that did not diverge: "
        + "; ".join(f"{name.replace('_', ' ')}: {text}" for name, text in DEFINITIONS.items())
        + ". Speedup: steps tuned Adam needs to reach its own tail train loss ÷ steps this "
        "optimizer needs (seed-mean curve smoothed over 10% of steps), per task; median and "
        "interquartile mean over tasks with 95% percentile-bootstrap intervals over tasks; "
        "'never reached' when that statistic is 0 (Adam's loss not reached on enough "
        "tasks). Reached: tasks where it got to Adam's loss. Win rate: tasks whose tail "
        "train loss is below Adam's. Time per step is the whole batched run (all "
        "tasks × seeds in parallel) divided by steps.",
        "",
        "## Tuning",
        "",
    ]
    if not results.tuning:
        lines.append("Tuning was off; baselines used their default hyper-parameters.")
    for name, tuned in results.tuning.items():
        grid = config["grids"].get(name, {})
        axes = "; ".join(
            f"{k} ∈ {{{', '.join(fmt(v, 3) for v in vals)}}}" for k, vals in grid.items()
        )
        lines.append(f"**{name}** — grid {axes}; best {tuned.best}.")
        if tuned.best_at_edge:
            lines.append(f"*Warning: {name}'s best learning rate is at the edge of its grid.*")
        lines += ["", "| point | score |", "|---|---|"]
        for point, score in zip(tuned.grid, tuned.scores):
            label = ", ".join(f"{k}={fmt(v, 3)}" for k, v in point.items())
            shown = fmt(float(score)) if np.isfinite(score) else "diverged"
            lines.append(f"| {label} | {shown} |")
        lines.append("")
    lines += [
        "## Setup",
        "",
        f"- device: `{results.device}`",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in results.versions.items()),
        "- config: `"
        + json.dumps(jsonable({k: v for k, v in config.items() if k != "grids"}))
        + "`",
        "",
        "![speedup over tuned Adam with 95% CIs](speedup.png)",
        "",
        "![loss curves per task](loss_curves.png)",
        "",
        "![performance profile](performance_profile.png)",
        "",
    ]
    return "\n".join(lines)


def plot_profile(results: Results, path: Path) -> None:
    """Step-based performance profile ρ(τ) of every row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fractions = profile(results)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for name, curve in zip(results.rows, fractions):
        ax.step(TAUS, curve, where="post", label=name)
    ax.set_xscale("log")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("τ (steps ÷ best optimizer's steps to tuned Adam's final loss)")
    ax.set_ylabel("fraction of tasks")
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_report(results: Results, out_dir: str | Path) -> dict[str, Path]:
    """Write report.md, results.json and both PNGs into ``out_dir`` (created if needed).

    Returns the written paths keyed by ``"markdown"``, ``"json"``, ``"summary"``,
    ``"speedup"``, ``"curves"`` (per task) and ``"profile"``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "markdown": out / "report.md",
        "json": out / "results.json",
        "summary": out / "summary.png",
        "speedup": out / "speedup.png",
        "curves": out / "loss_curves.png",
        "profile": out / "performance_profile.png",
    }
    paths["json"].write_text(json.dumps(results_dict(results), indent=1, allow_nan=False))
    paths["markdown"].write_text(markdown(results))
    plot_summary(results, paths["summary"])
    plot_speedup(results, paths["speedup"])
    plot_tasks(results, paths["curves"])
    plot_profile(results, paths["profile"])
    return paths
