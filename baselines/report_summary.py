"""The sentences that open a comparison report: what won, by how much, where, how sure.

    lead(results)        # Markdown paragraph(s) for the top of report.md
    speedup_summary(row) # median / IQM speedup over tasks with 95% bootstrap CIs

Speedups are per task (`baselines.compare.row_metrics`: steps tuned Adam needs to reach its
own tail train loss ÷ steps this optimizer needs; 0 when it never gets there). Statistics
run over tasks; a median of 0 means the optimizer never reached Adam's loss on at least
half the tasks and is written "never reached", not 0×.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from baselines import stats


def speedup_summary(row: Any) -> dict:
    """``stats.summarize`` of the row's per-task speedups plus ``reached`` (task count)."""
    speedups = np.asarray(row.metrics["per_task"]["speedup"], float)
    summary = stats.summarize(np.where(np.isfinite(speedups), speedups, 0.0))
    summary["reached"] = int((speedups > 0).sum())
    return summary


def times(value: float) -> str:
    """A speedup in words: ``1.23×`` or ``never reached`` for 0."""
    if not np.isfinite(value):
        return "nan"
    return "never reached" if value <= 0 else f"{value:.3g}×"


def interval(ci) -> str:
    """``[low, high]`` with 3 significant digits (0 written as 0)."""
    return "[" + ", ".join("0" if v <= 0 else f"{v:.3g}" for v in ci) + "]"


def describe_tasks(config: dict) -> str:
    """The evaluation tasks in words (family, split, architecture, dataset) from a config."""
    tasks = config.get("evaluated_on")
    if not tasks:
        return f"`{config['heldout_family']}`"
    data = tasks["dataset"]
    on = f" on {data}" if data != "synthetic" else ", synthetic data"
    return f"`{tasks['family']}` {tasks['split']} split ({tasks['architecture']}{on})"


def lead(results: Any) -> str:
    """One sentence per question: what won and by how much, on which tasks, how sure,
    what never got there and what diverged."""
    config, rows = results.config, results.rows
    reference = config["reference"]
    where = (f"on {describe_tasks(config)}, {config['num_tasks']} tasks × "
             f"{config['num_seeds']} seeds, {config['steps']} steps")
    others = {name: row for name, row in rows.items() if name != reference}
    if not others:
        return f"Only tuned {reference} ran {where}."
    summaries = {name: speedup_summary(row) for name, row in others.items()}
    best = max(summaries, key=lambda n: (summaries[n]["median"], summaries[n]["iqm"]))
    s = summaries[best]
    n = int(s["n"])
    wins = others[best].metrics["win_rate"]
    verdict = "was fastest to tuned Adam's tail train loss" if s["median"] > 1 else \
        "came closest, but no optimizer beat tuned Adam at the median"
    sentences = [
        f"**{best}** {verdict} {where}: median speedup {times(s['median'])} "
        f"(95% CI {interval(s['median_ci'])}), IQM {times(s['iqm'])} "
        f"({interval(s['iqm_ci'])}) over {n} tasks; it reached Adam's loss on "
        f"{s['reached']}/{n} tasks and had the lower tail train loss on "
        f"{round(wins * n)}/{n}."
    ]
    faster = [name for name in others if summaries[name]["median"] > 1]
    never = [f"{name} ({n - summaries[name]['reached']}/{n})" for name in others
             if summaries[name]["reached"] < n]
    sentences.append(
        (f"Faster than tuned Adam at the median: {', '.join(faster)}." if faster
         else "None was faster than tuned Adam at the median.")
        + (f" Never reached Adam's loss on some tasks: {', '.join(never)}." if never else ""))
    diverged = [f"{name} ({row.metrics['divergences']}/{row.metrics['num_runs']} runs)"
                for name, row in rows.items() if row.metrics["divergences"]]
    sentences.append(f"Diverged: {', '.join(diverged)}." if diverged
                     else "No run diverged.")
    return " ".join(sentences)


def row_line(name: str, row: Any, reference: str = "adam") -> str:
    """One terminal line per row: losses, speedup (never reached), wins (not for Adam)."""
    m, s = row.metrics, speedup_summary(row)
    wins = "" if name == reference else f"  wins {m['win_rate']:.2f}"
    return (f"{name:24s} final train {m['final_train_loss']:.4g}  tail train "
            f"{m['tail_train_loss']:.4g}  speedup median {times(s['median'])}  IQM "
            f"{times(s['iqm'])}{wins}  diverged {m['divergences']}/{m['num_runs']}")


def summary_lines(results: Any) -> str:
    """The lead sentences and one `row_line` per row, for the terminal."""
    reference = results.config.get("reference", "adam")
    return "\n".join([lead(results), *(row_line(name, row, reference)
                                        for name, row in results.rows.items())])
