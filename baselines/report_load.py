"""Read a comparison back from its ``results.json``, to rewrite the report and figures.

    results = load_results("runs/compare/results.json")
    write_report(results, "runs/compare")      # same numbers, current report code

Curves, per-run flags and timings come back as NumPy arrays (``null`` as NaN); each row's
metrics are recomputed against the tuned reference with `baselines.compare.row_metrics`,
so a report written from a loaded file shows what the current code derives from the
stored runs.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from baselines.compare import Results, Row, row_metrics
from baselines.evaluate import EvalResult
from baselines.tune import TuneResult


def _array(value) -> np.ndarray:
    """A float array from JSON numbers and nested lists, ``null`` as NaN."""
    return np.array(_nan(value), dtype=float)


def _nan(value):
    if isinstance(value, list):
        return [_nan(v) for v in value]
    return np.nan if value is None else value


def eval_result(row: dict, device: str) -> EvalResult:
    """The `EvalResult` stored in one ``results.json`` row."""
    return EvalResult(
        train_loss=_array(row["train_loss"]), eval_steps=np.asarray(row["eval_steps"], int),
        eval_loss=_array(row["eval_loss"]), eval_train_loss=_array(row["eval_train_loss"]),
        num_nonfinite=np.asarray(row["num_nonfinite"], int),
        diverged=np.asarray(row["diverged"], bool),
        seconds_per_step=float(row["seconds_per_step"]),
        compile_seconds=float(row["compile_seconds"]), device=device,
        final_stats={k: _array(v) for k, v in row.get("final_stats", {}).items()},
        final_metrics={k: _array(v) for k, v in row.get("final_metrics", {}).items()},
    )


def load_results(path: str | Path) -> Results:
    """`Results` from a ``results.json`` written by `baselines.report.write_report`."""
    data = json.loads(Path(path).read_text())
    device = data["device"]
    evals = {name: eval_result(row, device) for name, row in data["rows"].items()}
    reference = evals[data["config"]["reference"]]
    rows = {name: Row(name, row["kind"], row["hparams"], evals[name],
                      row_metrics(evals[name], reference))
            for name, row in data["rows"].items()}
    tuning = {name: TuneResult(t["name"], t["best"], t["grid"],
                               np.array([np.inf if s is None else s for s in t["scores"]]),
                               t["steps"], t["num_seeds"], t["num_tasks"])
              for name, t in data["tuning"].items()}
    return Results(rows, tuning, data["config"], device, data["versions"])
