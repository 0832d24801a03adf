"""Aggregate statistics over problems: interquartile mean and bootstrap confidence intervals.

The interquartile mean (IQM) is the mean of the middle half of the values: sort them and
drop ``floor(n / 4)`` from each end (``scipy.stats.trim_mean(values, 0.25)``, the IQM of
rliable, Agarwal et al. 2021). Confidence intervals are percentile bootstraps over the
values (problems): ``num_resamples`` resamples of size ``n`` with replacement, the
statistic of each, and its ``(1 - confidence) / 2`` and ``(1 + confidence) / 2``
quantiles. Resampling uses ``numpy.random.default_rng(seed)``, so results repeat.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

Statistic = Callable[..., np.ndarray]


def iqm(values, axis: int = -1) -> np.ndarray:
    """Interquartile mean along ``axis`` (module doc); NaN for an empty axis."""
    values = np.sort(np.asarray(values, float), axis=axis)
    n = values.shape[axis]
    if n == 0:
        return np.full(np.delete(values.shape, axis % values.ndim), np.nan)
    cut = n // 4
    return np.take(values, np.arange(cut, n - cut), axis=axis).mean(axis=axis)


STATISTICS: dict[str, Statistic] = {"median": np.median, "iqm": iqm, "mean": np.mean}


def bootstrap_ci(
    values,
    statistic: Statistic = np.median,
    num_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile-bootstrap interval of ``statistic(values)`` (module doc).

    Args:
      values: 1-d finite numbers (e.g. one speedup per problem).
      statistic: ``statistic(array, axis=-1)``, e.g. ``numpy.median`` or :func:`iqm`.
      num_resamples: number of bootstrap resamples (>= 1).
      confidence: interval mass in (0, 1).
      seed: resampling seed.

    Returns:
      ``(low, high)``; ``(nan, nan)`` for no values.
    """
    values = np.asarray(values, float).reshape(-1)
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence!r}.")
    if num_resamples < 1:
        raise ValueError(f"num_resamples must be >= 1, got {num_resamples!r}.")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"bootstrap_ci needs finite values, got {values.tolist()}.")
    if values.size == 0:
        return float("nan"), float("nan")
    index = np.random.default_rng(seed).integers(0, values.size, (num_resamples, values.size))
    resampled = statistic(values[index], axis=-1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(resampled, [tail, 1.0 - tail])
    return float(low), float(high)


def summarize(values, num_resamples: int = 2000, confidence: float = 0.95,
              seed: int = 0) -> dict[str, float | list[float] | int]:
    """``n``, ``median``, ``iqm`` and ``mean`` of ``values`` with a bootstrap CI for each
    (``median_ci``, ``iqm_ci``, ``mean_ci`` as ``[low, high]``)."""
    values = np.asarray(values, float).reshape(-1)
    out: dict[str, float | list[float] | int] = {"n": int(values.size)}
    for name, statistic in STATISTICS.items():
        out[name] = float(statistic(values)) if values.size else float("nan")
        out[f"{name}_ci"] = list(bootstrap_ci(values, statistic, num_resamples, confidence, seed))
    return out
