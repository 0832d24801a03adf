"""Curve metrics for the comparison: smoothing, time-to-target, speedup, profiles.

All functions are NumPy on host arrays; curves are ``[..., steps]`` with NaN where a
run diverged.
"""

from __future__ import annotations

import numpy as np

from tasks.evaluation import TAIL_FRACTION, tail_width


def smoothing_window(steps: int, fraction: float = TAIL_FRACTION) -> int:
    """Width of the trailing window: ``ceil(fraction·steps)`` (≥ 1).

    It equals the tail of ``tail_train_loss``, so the smoothed curve's last value is
    exactly that loss and a run always "reaches" its own tail train loss.
    """
    return tail_width(steps, fraction)


def smooth(curves: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average along the last axis.

    out[..., t] = mean(curves[..., max(0, t−window+1) : t+1]); a NaN makes that
    value and every later one NaN (a diverged run stays diverged).
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}.")
    cumsum = np.cumsum(np.concatenate([np.zeros_like(curves[..., :1]), curves], -1), -1)
    steps = curves.shape[-1]
    ends = np.arange(1, steps + 1)
    starts = np.maximum(0, ends - window)
    return (cumsum[..., ends] - cumsum[..., starts]) / (ends - starts)


def steps_to_target(curves: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Steps until ``curves[..., t] <= targets[...]`` first holds (t + 1), else +inf.

    ``curves`` is ``[..., steps]`` (usually smoothed), ``targets`` broadcasts to ``[...]``.
    NaN never counts as reaching the target.
    """
    with np.errstate(invalid="ignore"):
        hit = curves <= np.asarray(targets)[..., None]
    first = np.argmax(hit, axis=-1)
    return np.where(hit.any(-1), first + 1.0, np.inf)


def speedups(reference_steps: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """``reference_steps / steps`` per entry; 0 where ``steps`` is inf (never reached)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.asarray(reference_steps, float) / np.asarray(steps, float)
    return np.where(np.isfinite(steps), ratio, 0.0)


def win_rate(losses: np.ndarray, reference: np.ndarray) -> float:
    """Fraction of entries with ``losses < reference`` (ties count ½, NaN loses).

    Both arrays are ``[num_tasks]`` final losses; NaN is treated as +inf.
    """
    a = np.where(np.isnan(losses), np.inf, losses)
    b = np.where(np.isnan(reference), np.inf, reference)
    return float(np.mean((a < b) + 0.5 * (a == b)))


def performance_profile(times: np.ndarray, taus: np.ndarray) -> np.ndarray:
    """AlgoPerf-style performance profile.

    Args:
      times: ``[num_optimizers, num_tasks]`` time (or steps) to target; inf = never.
      taus: ``[num_taus]`` factors ≥ 1.

    Returns:
      ``[num_optimizers, num_taus]``: fraction of tasks where an optimizer's time is
      within ``tau ×`` the best optimizer's time on that task (tasks no optimizer
      solved count as failures for everyone).
    """
    times = np.asarray(times, float)
    best = times.min(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratios = np.where(np.isfinite(best), times / best, np.inf)
    return (ratios[:, :, None] <= np.asarray(taus)[None, None, :]).mean(1)
