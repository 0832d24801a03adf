"""Write a comparison out: ``report.md``, ``results.json`` and PNG plots.

- ``report.md``: one Markdown table (a row per optimizer), the tuning grids and their
  scores, the configuration, device and library versions.
- ``results.json``: every number of the report plus the raw curves
  (``[task][seed][step]``, NaN written as ``null``).
- ``loss_curves.png``: held-out train-loss curves, seed mean with a min–max band, one
  panel per task (at most 8).
- ``performance_profile.png``: fraction of tasks on which an optimizer reaches tuned
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
from tasks.evaluation import DEFINITIONS

MAX_PANELS = 8
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
    lines = [
        f"# Optimizer comparison on `{config['heldout_family']}`",
        "",
        f"Held-out tasks: {config['num_tasks']} × {config['num_seeds']} seeds, "
        f"{config['steps']} steps each. Baselines tuned on `{config['family']}` "
        f"({config['tune_tasks']} tasks × {config['tune_seeds']} seeds, same "
        f"{config['steps']}-step budget): {config['selection']}. Reference: tuned "
        f"`{config['reference']}`.",
        "",
        "| optimizer | hyper-parameters | final train loss | final test loss | tail train loss | "
        "best loss | steps to Adam's tail loss | speedup (median) | speedup (geomean) | "
        "reached | win rate vs Adam | diverged | ms/step | time vs Adam |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in results.rows.items():
        m = row.metrics
        hparams = ", ".join(f"{k}={fmt(v, 3)}" for k, v in row.hparams.items()) or row.kind
        lines.append(
            f"| {name} | {hparams} | {fmt(m['final_train_loss'])} | "
            f"{fmt(m['final_test_loss'])} | {fmt(m['tail_train_loss'])} | "
            f"{fmt(m['best_loss'])} | {fmt(m['steps_to_target'])} | "
            f"{fmt(m['speedup_median'], 3)}× | {fmt(m['speedup_geomean'], 3)}× | "
            f"{fmt(100 * m['fraction_reached'], 3)}% | {fmt(m['win_rate'], 3)} | "
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
        "optimizer needs (seed-mean curve smoothed over 10% of steps; 0 = never), median "
        "over tasks; geomean over tasks where the target was reached. Win rate: tasks whose "
        "tail train loss is below Adam's. Time per step is the whole batched run (all "
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
        "![loss curves](loss_curves.png)",
        "",
        "![performance profile](performance_profile.png)",
        "",
    ]
    return "\n".join(lines)


def plot_curves(results: Results, path: Path) -> None:
    """Seed-mean held-out train loss with min–max seed bands, one panel per task."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    num_tasks = min(MAX_PANELS, results.config["num_tasks"])
    cols = min(4, num_tasks)
    rows = math.ceil(num_tasks / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False)
    for task in range(num_tasks):
        ax = axes[task // cols][task % cols]
        positive = True
        for name, row in results.rows.items():
            curves = row.result.train_loss[task]
            steps = np.arange(1, curves.shape[-1] + 1)
            with warnings.catch_warnings():  # all-NaN columns of diverged runs
                warnings.simplefilter("ignore", RuntimeWarning)
                low, mean, high = (f(curves, 0) for f in (np.nanmin, np.nanmean, np.nanmax))
            (line,) = ax.plot(steps, mean, label=name)
            ax.fill_between(steps, low, high, color=line.get_color(), alpha=0.2)
            positive &= bool(np.nanmin(np.where(np.isfinite(curves), curves, 1.0)) > 0)
        if positive:
            ax.set_yscale("log")
        ax.set_title(f"task {task}")
        ax.set_xlabel("step")
        ax.set_ylabel("train loss")
    for extra in range(num_tasks, rows * cols):
        axes[extra // cols][extra % cols].axis("off")
    axes[0][0].legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


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

    Returns the written paths keyed by ``"markdown"``, ``"json"``, ``"curves"``,
    ``"profile"``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "markdown": out / "report.md",
        "json": out / "results.json",
        "curves": out / "loss_curves.png",
        "profile": out / "performance_profile.png",
    }
    paths["json"].write_text(json.dumps(results_dict(results), indent=1, allow_nan=False))
    paths["markdown"].write_text(markdown(results))
    plot_curves(results, paths["curves"])
    plot_profile(results, paths["profile"])
    return paths
