"""The figures of a comparison report (matplotlib, Agg backend).

- ``summary.png``: train loss (left) and test loss (right) against steps; per optimizer the
  median over tasks of the seed-mean curve with the interquartile band across tasks; log
  scale; the title names the tasks, budget and seeds; the legend sits outside the axes.
- ``speedup.png``: median and IQM speedup over tuned Adam per optimizer with 95% bootstrap
  CIs over tasks (0 = never reached Adam's tail train loss).
- ``loss_curves.png``: one panel per task (at most `MAX_PANELS`), seed mean and min-max band.

Colours tell hand-designed baselines (cool colours, tuned Adam black) from learned
optimizers (warm colours); a guarded optimizer has its learned optimizer's colour, dashed.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from baselines.report_summary import describe_tasks, speedup_summary

MAX_PANELS = 8
HAND = ("tab:blue", "tab:green", "tab:cyan", "tab:olive", "tab:gray")
LEARNED = ("tab:red", "tab:orange", "tab:purple", "tab:brown", "tab:pink", "gold")


def styles(results: Any) -> dict[str, dict]:
    """Row name -> ``{"color", "linestyle"}`` (see module docstring)."""
    out, hand, learned = {}, iter(HAND * 4), iter(LEARNED * 4)
    reference = results.config.get("reference", "adam")
    for name, row in results.rows.items():
        if row.kind == "guarded":
            continue
        color = "black" if name == reference else next(hand if row.kind == "baseline" else learned)
        out[name] = {"color": color, "linestyle": "-"}
    for name, row in results.rows.items():
        if row.kind == "guarded":
            base = out.get(name.removesuffix("+guard"), {"color": next(learned)})
            out[name] = {"color": base["color"], "linestyle": "--"}
    return out


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _quartiles(per_task: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """25th, 50th and 75th percentiles over the task axis (NaN-aware)."""
    with warnings.catch_warnings():  # all-NaN columns of diverged tasks
        warnings.simplefilter("ignore", RuntimeWarning)
        return tuple(np.nanpercentile(per_task, q, axis=0) for q in (25, 50, 75))


def _seed_mean(values: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(values, axis=1)


def _log_if_positive(ax, arrays) -> None:
    finite = np.concatenate([a[np.isfinite(a)].ravel() for a in arrays] or [np.ones(1)])
    if finite.size and finite.min() > 0:
        ax.set_yscale("log")


def title(results: Any) -> str:
    """Figure title: tasks, budget, seeds (and the tuning tasks)."""
    c = results.config
    return (f"{describe_tasks(c).replace('`', '')}: {c['num_tasks']} tasks × "
            f"{c['num_seeds']} seeds, {c['steps']} steps; baselines tuned on train tasks")


def plot_summary(results: Any, path: Path) -> None:
    """``summary.png`` (module docstring)."""
    plt = _pyplot()
    style = styles(results)
    fig, (ax_train, ax_test) = plt.subplots(1, 2, figsize=(11, 4))
    drawn = {"train": [], "test": []}
    for name, row in results.rows.items():
        train = _seed_mean(row.result.train_loss)            # [tasks, steps]
        steps = np.arange(1, train.shape[-1] + 1)
        low, mid, high = _quartiles(train)
        ax_train.plot(steps, mid, label=name, **style[name])
        ax_train.fill_between(steps, low, high, color=style[name]["color"], alpha=0.12)
        test = _seed_mean(row.result.eval_loss)               # [tasks, evals]
        low_t, mid_t, high_t = _quartiles(test)
        ax_test.plot(row.result.eval_steps, mid_t, marker=".", **style[name])
        ax_test.fill_between(row.result.eval_steps, low_t, high_t, color=style[name]["color"],
                             alpha=0.12)
        drawn["train"].append(mid)
        drawn["test"].append(mid_t)
    for ax, split, what in ((ax_train, "train", "minibatch train loss"),
                            (ax_test, "test", "test loss (whole split)")):
        _log_if_positive(ax, drawn[split])
        ax.set_xlabel("step")
        ax.set_ylabel(what)
        ax.set_title(f"{split}: median over tasks, IQR band", fontsize="medium")
        ax.grid(alpha=0.3)
    fig.suptitle(title(results), fontsize="medium")
    handles, labels = ax_train.get_legend_handles_labels()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5),
               fontsize="small", title="solid: alone, dashed: +guard", title_fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def plot_speedup(results: Any, path: Path) -> None:
    """``speedup.png``: median (circle) and IQM (square) speedup with 95% CIs over tasks."""
    plt = _pyplot()
    style = styles(results)
    names = [n for n in results.rows if n != results.config.get("reference", "adam")]
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(names) + 1.4))
    for i, name in enumerate(names):
        s = speedup_summary(results.rows[name])
        for offset, stat, marker in ((-0.15, "median", "o"), (0.15, "iqm", "s")):
            low, high = s[f"{stat}_ci"]
            ax.plot([low, high], [i + offset] * 2, color=style[name]["color"],
                    linestyle=style[name]["linestyle"])
            ax.plot(s[stat], i + offset, marker=marker, color=style[name]["color"])
        if s["median"] <= 0:
            ax.annotate("never reached", (0, i - 0.15), xytext=(6, -3),
                        textcoords="offset points", fontsize="small")
    ax.axvline(1.0, color="black", linewidth=0.8, linestyle=":")
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()
    ax.set_xlim(left=0)
    ax.set_xlabel("speedup over tuned Adam (steps to Adam's tail train loss); 95% CI over tasks")
    ax.set_title(title(results), fontsize="small")
    keys = [ax.plot([], [], marker=m, color="gray", linestyle="")[0] for m in ("o", "s")]
    ax.legend(keys, ["median", "IQM"], loc="center left", bbox_to_anchor=(1.0, 0.5),
              fontsize="small")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def plot_tasks(results: Any, path: Path) -> None:
    """``loss_curves.png``: seed-mean train loss with min-max seed band, a panel per task."""
    plt = _pyplot()
    style = styles(results)
    num_tasks = min(MAX_PANELS, results.config["num_tasks"])
    cols = min(4, num_tasks)
    rows = math.ceil(num_tasks / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.8 * rows), squeeze=False)
    for task in range(num_tasks):
        ax = axes[task // cols][task % cols]
        drawn = []
        for name, row in results.rows.items():
            curves = row.result.train_loss[task]
            steps = np.arange(1, curves.shape[-1] + 1)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                low, mean, high = (f(curves, 0) for f in (np.nanmin, np.nanmean, np.nanmax))
            ax.plot(steps, mean, label=name, **style[name])
            ax.fill_between(steps, low, high, color=style[name]["color"], alpha=0.12)
            drawn.append(curves)
        _log_if_positive(ax, drawn)
        ax.set_title(f"task {task}", fontsize="medium")
        ax.set_xlabel("step")
        ax.set_ylabel("train loss")
    for extra in range(num_tasks, rows * cols):
        axes[extra // cols][extra % cols].axis("off")
    fig.suptitle(title(results), fontsize="medium")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
