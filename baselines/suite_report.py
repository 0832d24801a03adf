"""Write a held-out suite run out: ``report.md``, ``results.json`` and two PNG plots.

- ``report.md``: the problems (dataset, architecture, loss, batch, sizes), the summary
  over problems per optimizer (median and IQM speedup over tuned Adam with bootstrap
  CIs, win rate, problems never reaching Adam's final loss, final-loss ratios, the same
  against Adam at the suite's single best learning rate, divergences), speedup and
  final-loss matrices, one table per problem, the tuned hyper-parameters, the protocol.
- ``results.json``: every number plus the curves (``[seed][step]``, NaN as ``null``).
- ``summary.png``: IQM/median speedups with CIs, and each problem's final-loss ratio to
  tuned Adam; ``loss_curves.png``: seed-mean train-loss curves, one panel per problem.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from baselines.report import fmt, jsonable
from baselines.suite import REFERENCE, UNTUNED, SuiteResults


def results_dict(results: SuiteResults) -> dict[str, Any]:
    """All numbers of ``results`` as a JSON-ready dict (curves included)."""
    problems = {}
    for name, problem in results.problems.items():
        rows = {}
        for row, (kind, hparams, result) in problem.rows.items():
            rows[row] = {
                "kind": kind, "hparams": hparams, "metrics": problem.metrics[row],
                "train_loss": result.train_loss[0], "eval_steps": result.eval_steps,
                "eval_loss": result.eval_loss[0], "eval_train_loss": result.eval_train_loss[0],
                "diverged": result.diverged[0], "final_metrics": result.final_metrics,
                "final_stats": result.final_stats, "compile_seconds": result.compile_seconds,
            }
        problems[name] = {"description": problem.description, "seconds": problem.seconds,
                          "tuning": {b: t.to_dict() for b, t in problem.tuning.items()},
                          "rows": rows}
    return jsonable({"config": results.config, "device": results.device,
                     "versions": results.versions, "seconds": results.seconds,
                     "aggregates": results.aggregates, "problems": problems})


def _ci(summary: dict, key: str) -> str:
    low, high = summary[f"{key}_ci"]
    return f"{_speedup(summary[key])} [{fmt(low, 3)}, {fmt(high, 3)}]"


def _speedup(value: float) -> str:
    """``1.23×``, or ``never reached`` for a speedup of 0 (Adam's loss not reached)."""
    return "never reached" if value == 0 else f"{fmt(value, 3)}×"


def _hparams(hparams: dict) -> str:
    return ", ".join(f"{k}={fmt(float(v), 3)}" for k, v in hparams.items())


def _ratio(value: float) -> str:
    """A loss ratio; ``inf`` (every seed of some problem diverged) is written "∞"."""
    return "∞" if value == float("inf") else fmt(value, 3)


def _loss_cell(metrics: dict) -> str:
    value = fmt(metrics["final_train_loss"])
    if metrics["divergences"]:
        value += f" ({metrics['divergences']}/{metrics['num_runs']} diverged)"
    return value


def markdown(results: SuiteResults) -> str:
    """The ``report.md`` text."""
    config, problems = results.config, results.problems
    first = next(iter(problems.values()))
    rows = list(first.rows)
    budget = (f"{config['steps']} steps × {config['num_seeds']} seeds each. Wall time "
              f"{results.seconds / 60:.1f} min on `{results.device}`.")
    if config.get("suite", "heldout") != "heldout":  # e.g. tasks.training_problems
        lines = [f"# Suite on `tasks.{config['suite']}`", "",
                 f"{len(problems)} problems of the meta-training distribution, {budget}", "",
                 "## Problems", "", "| problem | family | architecture | dataset |",
                 "|---|---|---|---|"]
        lines += [f"| {name} | {p.description['family']} | {p.description['architecture']} | "
                  f"{p.description['dataset']} |" for name, p in problems.items()]
    else:
        lines = [
            "# Held-out generalisation suite", "",
            f"{len(problems)} problems that no optimizer was meta-trained on (`tasks.heldout`: "
            "scikit-learn datasets other than digits, architectures and losses outside the "
            "training mixtures), minibatch training (full batch only for the convex problem), "
            f"{budget}", "",
            "## Problems", "",
            "| problem | dataset | architecture | loss | batch | train / test | params |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, problem in problems.items():
            d = problem.description
            lines.append(f"| {name} | {d['dataset']} | {d['architecture']} | {d['loss']} | "
                         f"{d['batch_size']} | {d['num_train']} / {d['num_test']} | "
                         f"{d['num_params']:,} |")
    untuned = _hparams(config["untuned_hparams"])
    lines += [
        "", "## Summary over problems", "",
        "Speedup: steps tuned Adam needs to reach its own final loss ÷ steps the optimizer "
        "needs (0 = never); brackets: 95% bootstrap CI over problems. Win rate: problems "
        "whose final full-train loss is below tuned Adam's. Loss ratio: final train loss ÷ "
        "tuned Adam's (∞: every seed diverged on some problem). "
        f"`{UNTUNED}`: Adam at the single learning rate best over the suite "
        f"({untuned}).", "",
        "| optimizer | speedup median | speedup IQM | win rate | never reached | loss ratio "
        f"median / max | vs {UNTUNED}: median, IQM, win rate | diverged runs |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        a = results.aggregates[row]
        s, u = a["speedup"], a["speedup_vs_untuned"]
        lines.append(
            f"| {row} | {_ci(s, 'median')} | {_ci(s, 'iqm')} | {fmt(a['win_rate'], 2)} | "
            f"{len(a['never_reached'])}/{s['n']} | {_ratio(a['loss_ratio_median'])} / "
            f"{_ratio(a['loss_ratio_max'])} | {_speedup(u['median'])}, {_speedup(u['iqm'])}, "
            f"{fmt(a['win_rate_vs_untuned'], 2)} | {a['divergences']}/{a['num_runs']} |")
    header = "| problem | " + " | ".join(rows) + " |"
    rule = "|---" * (len(rows) + 1) + "|"
    for title, cell in (
            ("Speedup over tuned Adam per problem", lambda m: _speedup(m["speedup"])),
            ("Final train loss per problem (full train split, mean over seeds)", _loss_cell)):
        lines += ["", f"## {title}", "", header, rule]
        for name, problem in problems.items():
            lines.append(f"| {name} | " + " | ".join(cell(problem.metrics[r]) for r in rows)
                         + " |")
    lines += ["", "## Per problem"]
    for name, problem in problems.items():
        d = problem.description
        about = (f"{d['dataset']}, {d['architecture']}, {d['loss']}, batch {d['batch_size']}, "
                 f"{d['num_train']} train / {d['num_test']} test examples." if "loss" in d
                 else f"{d['family']}, {d['architecture']}, {d['dataset']} (one task: "
                 f"`{d['example_task']}`).")
        lines += ["", f"### {name}", "", about, "",
                  "| optimizer | hyper-parameters | final train loss | test loss | test accuracy "
                  "| steps to Adam's final | speedup | diverged | guard: learned steps, resets |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for row, (kind, hparams, _) in problem.rows.items():
            m = problem.metrics[row]
            guard = (f"{100 * m['guard_learned_fraction']:.0f}%, {fmt(m['guard_resets'], 3)}"
                     if "guard_learned_fraction" in m else "")
            accuracy = "" if m["test_accuracy"] is None else fmt(m["test_accuracy"], 3)
            lines.append(
                f"| {row} | {_hparams(hparams) or kind} | {fmt(m['final_train_loss'])} | "
                f"{fmt(m['final_test_loss'])} | {accuracy} | {fmt(m['steps_to_target'])} | "
                f"{_speedup(m['speedup'])} | {m['divergences']}/{m['num_runs']} | {guard} |")
    baselines = list(first.tuning)
    lines += ["", "## Tuned hyper-parameters", "",
              "Grids: " + "; ".join(
                  f"{b}: " + ", ".join(f"{k} ∈ {{{', '.join(fmt(v, 3) for v in vals)}}}"
                                       for k, vals in config["grids"][b].items())
                  for b in baselines) + ". * = best value at the edge of the grid.", "",
              "| problem | " + " | ".join(baselines) + " |", "|---" * (len(baselines) + 1) + "|"]
    for name, problem in problems.items():
        cells = [_hparams(t.best) + (" *" if t.best_at_edge else "")
                 for t in problem.tuning.values()]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "", "## Protocol", "",
        f"Every optimizer runs the same {config['steps']} steps on the same "
        f"{config['num_seeds']} seeds per problem (common initialisations and minibatches). "
        f"Baselines are tuned on each problem; selection: {config['selection']}. Learned "
        f"optimizers are not tuned and are told the horizon; `+guard` rows use "
        f"`l2o.loss_guarded` with the problem's tuned `{REFERENCE}` as fallback. Final train "
        "and test losses are on the whole split at the last step (mean over seeds that did "
        "not diverge); speedups use the seed-mean minibatch training curve smoothed over "
        "10% of the steps (`baselines.compare.row_metrics`). A run diverges on NaN/inf or "
        "a final loss above 1000× (|initial| + 1).", "",
        "## Setup", "",
        f"- device: `{results.device}`; wall time {results.seconds:.0f} s (compiles "
        "included); per problem: " + ", ".join(
            f"{n} {p.seconds:.0f} s" for n, p in problems.items()),
        "- versions: " + ", ".join(f"{k} {v}" for k, v in results.versions.items()),
        "- config: `" + json.dumps(jsonable({k: v for k, v in config.items()
                                            if k != "grids"})) + "`",
        "", "![summary](summary.png)", "", "![loss curves](loss_curves.png)", "",
    ]
    return "\n".join(lines)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_summary(results: SuiteResults, path: Path) -> None:
    """Left: IQM (dot) and median (cross) speedup with 95% CIs; right: per-problem
    final-loss ratios to tuned Adam (diverged problems drawn at the right edge as red ×,
    a zero loss at the left edge as ◁)."""
    plt = _pyplot()
    rows = list(results.aggregates)
    ratios = {row: np.array([p.metrics[row]["loss_ratio"] for p in results.problems.values()])
              for row in rows}
    every = np.concatenate(list(ratios.values()))
    positive = every[np.isfinite(every) & (every > 0)]
    low_edge = positive.min() / 3 if positive.size else 0.1
    high_edge = max(positive.max() * 3 if positive.size else 10.0, 10.0)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 0.45 * len(rows) + 1.5), sharey=True)
    y = np.arange(len(rows))[::-1]
    for i, row in zip(y, rows):
        s = results.aggregates[row]["speedup"]
        for key, marker, shift in (("iqm", "o", 0.12), ("median", "x", -0.12)):
            low, high = s[f"{key}_ci"]
            left.errorbar(s[key], i + shift, xerr=[[s[key] - low], [high - s[key]]],
                          fmt=marker, color="C0" if key == "iqm" else "C1", capsize=3)
        r = ratios[row]
        shown = np.isfinite(r) & (r > 0)
        right.scatter(r[shown], np.full(shown.sum(), i), s=14, alpha=0.7, color="C2")
        zero, gone = np.isfinite(r) & (r <= 0), ~np.isfinite(r)
        right.scatter([low_edge] * zero.sum(), [i] * zero.sum(), marker="<", color="grey")
        right.scatter([high_edge] * gone.sum(), [i] * gone.sum(), marker="x", color="C3")
    left.axvline(1.0, color="grey", lw=0.8)
    left.set_yticks(y, rows)
    left.set_xlabel("speedup over tuned Adam\n(o IQM, x median; 95% CI)")
    right.axvline(1.0, color="grey", lw=0.8)
    right.set_xscale("log")
    right.set_xlim(low_edge / 1.5, high_edge * 1.5)
    right.set_xlabel("final train loss ÷ tuned Adam's\nper problem (x: diverged)")
    fig.tight_layout()
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def plot_curves(results: SuiteResults, path: Path) -> None:
    """Seed-mean minibatch train loss of every row, one panel per problem (log scale; the
    y axis stops at 10x the largest initial loss, so blow-ups leave the panel; guarded rows
    dashed)."""
    plt = _pyplot()
    names = list(results.problems)
    cols = min(4, len(names))
    grid_rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(grid_rows, cols, figsize=(4 * cols, 3 * grid_rows), squeeze=False)
    colors = plt.get_cmap("tab20").colors
    for index, name in enumerate(names):
        ax = axes[index // cols][index % cols]
        tops, bottoms = [], []
        for number, (row, (kind, _, result)) in enumerate(results.problems[name].rows.items()):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                curve = np.nanmean(result.train_loss[0], 0)
            ax.plot(np.arange(1, curve.size + 1), curve, label=row, lw=1,
                    color=colors[(2 * number) % 20 + (number >= 10)],
                    ls="--" if kind == "guarded" else "-")
            finite = curve[np.isfinite(curve) & (curve > 0)]
            if finite.size:
                tops.append(finite[0])
                bottoms.append(finite.min())
        ax.set_yscale("log")
        if tops:
            ax.set_ylim(max(min(bottoms), 1e-12) / 2, 10 * max(tops))
        ax.set_title(name, fontsize="small")
        ax.set_xlabel("step")
    for extra in range(len(names), grid_rows * cols):
        axes[extra // cols][extra % cols].axis("off")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(6, len(labels)), fontsize="small")
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write_report(results: SuiteResults, out_dir: str | Path) -> dict[str, Path]:
    """Write report.md, results.json, summary.png and loss_curves.png into ``out_dir``.

    Returns the paths keyed by ``"markdown"``, ``"json"``, ``"summary"``, ``"curves"``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"markdown": out / "report.md", "json": out / "results.json",
             "summary": out / "summary.png", "curves": out / "loss_curves.png"}
    paths["json"].write_text(json.dumps(results_dict(results), indent=1, allow_nan=False))
    paths["markdown"].write_text(markdown(results))
    plot_summary(results, paths["summary"])
    plot_curves(results, paths["curves"])
    return paths
