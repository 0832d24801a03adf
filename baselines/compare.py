"""Fair comparison: tune baselines on train tasks, run everything on held-out tasks.

Protocol (recorded in :attr:`Results.config`):
1. each baseline's grid is searched on ``tune_tasks`` train tasks × ``tune_seeds`` seeds
   for the same ``steps`` as the evaluation (:func:`baselines.tune.tune`);
2. every row (tuned baselines, learned optimizers, guarded learned optimizers whose
   fallback is the tuned Adam) runs on the same ``num_tasks`` held-out tasks ×
   ``num_seeds`` seeds with common random numbers;
3. metrics against tuned Adam (see :func:`row_metrics`).
"""

from __future__ import annotations

import dataclasses
import platform
from typing import Any, Callable

import jax
import numpy as np
import optax
from tqdm.auto import tqdm

from baselines import metrics
from baselines.evaluate import EvalResult, evaluate_grid
from baselines.registry import BaselineSpec, get as get_baseline
from baselines.tune import TuneResult, tail_mean, tune as tune_spec

REFERENCE = "adam"


@dataclasses.dataclass(frozen=True)
class Row:
    """One optimizer's outcome on the held-out tasks.

    Attributes:
      name: row label.
      kind: ``"baseline"``, ``"learned"`` or ``"guarded"``.
      hparams: hyper-parameters used (tuned or default) for baselines, else ``{}``.
      result: the raw :class:`EvalResult` (``[num_tasks, num_seeds, ...]``).
      metrics: scalar and per-task metrics from :func:`row_metrics`.
    """

    name: str
    kind: str
    hparams: dict[str, float]
    result: EvalResult
    metrics: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Results:
    """Everything :func:`compare` measured; :mod:`baselines.report` writes it out."""

    rows: dict[str, Row]
    tuning: dict[str, TuneResult]
    config: dict[str, Any]
    device: str
    versions: dict[str, str]


def versions() -> dict[str, str]:
    """Versions of Python and the numerical stack, for reports."""
    import flax

    return {
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jaxlib": jax.lib.__version__ if hasattr(jax.lib, "__version__") else "",
        "optax": optax.__version__,
        "flax": flax.__version__,
        "numpy": np.__version__,
    }


def per_task_tail_loss(result: EvalResult) -> np.ndarray:
    """``[num_tasks]`` ``tail_train_loss`` averaged over seeds (NaN if any seed diverged)."""
    return tail_mean(result.train_loss).mean(-1)


def smoothed_task_curves(result: EvalResult) -> np.ndarray:
    """``[num_tasks, steps]`` seed-mean train loss, trailing-averaged over 10% of steps."""
    steps = result.train_loss.shape[-1]
    return metrics.smooth(result.train_loss.mean(1), metrics.smoothing_window(steps))


def row_metrics(result: EvalResult, reference: EvalResult) -> dict[str, Any]:
    """Metrics of one row against the reference (tuned Adam) on the same tasks.

    - ``final_train_loss``, ``final_test_loss``, ``tail_train_loss``: means over
      non-diverged runs of the quantities of `tasks.evaluation` (train / test split after
      the last step; minibatch train loss over the last 10% of steps);
    - ``best_loss``: mean over tasks of the minimum of the smoothed seed-mean curve;
    - ``steps_to_target`` per task: first step the smoothed seed-mean curve is ≤ Adam's
      tail train loss on that task (inf: never); ``speedup`` per task = Adam's steps ÷
      these (0: never), aggregated by median and by geometric mean over reached tasks;
    - ``win_rate``: fraction of tasks whose seed-mean tail train loss beats Adam's (ties
      ½, NaN loses);
    - ``divergences`` (runs with NaN/inf or blow-up) out of ``num_runs``;
    - ``time_ratio``: wall-clock per step ÷ Adam's;
    - ``guard_learned_fraction`` (guarded rows only): mean fraction of steps on which the
      guard took the learned candidate.
    """
    finals = per_task_tail_loss(result)
    reference_finals = per_task_tail_loss(reference)
    ok = ~result.diverged
    curves = smoothed_task_curves(result)
    reference_curves = smoothed_task_curves(reference)
    # The smoothed curve's last value is Adam's tail train loss; taking it from the same array
    # (not recomputed) guarantees Adam reaches its own target despite rounding.
    targets = reference_curves[:, -1]
    reference_steps = metrics.steps_to_target(reference_curves, targets)
    steps = metrics.steps_to_target(curves, targets)
    speedups = metrics.speedups(reference_steps, steps)
    reached = speedups > 0

    def safe_mean(values):
        values = values[np.isfinite(values)]
        return float(values.mean()) if values.size else float("nan")

    geomean_reached = float(np.exp(np.log(speedups[reached]).mean())) if reached.any() else 0.0
    best = np.fmin.reduce(curves, axis=-1)  # ignores NaN; NaN only if all NaN
    extra = {}
    if "learned_fraction" in result.final_stats:  # loss-guarded rows
        extra["guard_learned_fraction"] = float(result.final_stats["learned_fraction"].mean())
    return {
        **extra,
        "final_train_loss": safe_mean(result.eval_train_loss[..., -1][ok]),
        "final_test_loss": safe_mean(result.eval_loss[..., -1][ok]),
        "tail_train_loss": safe_mean(tail_mean(result.train_loss)[ok]),
        "best_loss": safe_mean(best),
        "steps_to_target": float(np.median(steps)),
        "speedup_median": float(np.median(speedups)),
        "speedup_geomean": geomean_reached,
        "fraction_reached": float(reached.mean()),
        "win_rate": metrics.win_rate(finals, reference_finals),
        "divergences": int(result.diverged.sum()),
        "num_runs": int(result.diverged.size),
        "seconds_per_step": result.seconds_per_step,
        "time_ratio": result.seconds_per_step / reference.seconds_per_step,
        "per_task": {
            "tail_train_loss": finals.tolist(),
            "reference_tail_train_loss": reference_finals.tolist(),
            "steps_to_target": steps.tolist(),
            "speedup": speedups.tolist(),
        },
    }


def as_row_factory(name: str, entry: Any) -> tuple[str, Callable[[int], Any]]:
    """Classify a non-baseline entry: returns (kind, num_steps -> optax transform)."""
    if isinstance(entry, optax.GradientTransformation):
        return "learned", lambda num_steps: entry
    if callable(entry):
        return "learned", entry
    raise TypeError(
        f"optimizer {name!r}: expected a BaselineSpec, baseline name, optax transform or "
        f"callable num_steps -> transform, got {type(entry).__name__}."
    )


def compare(
    optimizers: dict[str, Any],
    family,
    steps: int,
    num_seeds: int = 2,
    num_tasks: int = 4,
    tune: bool = True,
    heldout_family=None,
    guard: bool = False,
    tune_seeds: int | None = None,
    tune_tasks: int | None = None,
    num_evals: int = 10,
    key: jax.Array | None = None,
    progress: bool = True,
) -> Results:
    """Tune the baselines, run every optimizer on held-out tasks and score against Adam.

    Args:
      optimizers: row name -> a :class:`BaselineSpec`, a registered baseline name
        (``"lion"``), an optax transform, or a callable ``num_steps -> transform``
        (learned optimizers: ``lambda n: lopt.as_optax(theta, num_steps=n)``). A tuned
        ``"adam"`` row is always added as the reference.
      family: train ``TaskFamily`` (tuning tasks).
      steps: step budget of every run (tuning and evaluation).
      num_seeds, num_tasks: held-out evaluation batch.
      tune: grid-search baselines (else use ``spec.defaults``).
      heldout_family: held-out ``TaskFamily``; default ``family`` with different tasks.
      guard: also run each learned row through ``l2o.guard.loss_guarded`` with the
        tuned Adam as fallback (row ``"<name>+guard"``).
      tune_seeds, tune_tasks: tuning batch (default ``num_seeds``, ``num_tasks``).
      key: PRNG key (default ``PRNGKey(0)``).
      progress: show a tqdm bar.

    Returns:
      :class:`Results`.
    """
    if not optimizers:
        raise ValueError("optimizers is empty; pass e.g. {'adam': 'adam', 'lion': 'lion'}.")
    key = jax.random.PRNGKey(0) if key is None else key
    key_tune, key_eval = jax.random.split(key)
    heldout = family if heldout_family is None else heldout_family
    entries = {REFERENCE: REFERENCE, **optimizers}
    specs: dict[str, BaselineSpec] = {}
    learned: dict[str, tuple[str, Callable[[int], Any]]] = {}
    if not isinstance(entries[REFERENCE], (str, BaselineSpec)):
        raise TypeError(
            f"the {REFERENCE!r} row is the tuned reference and must be a baseline name or "
            f"BaselineSpec, got {type(entries[REFERENCE]).__name__}; rename your row."
        )
    for name, entry in entries.items():
        if isinstance(entry, str):
            specs[name] = get_baseline(entry)
        elif isinstance(entry, BaselineSpec):
            specs[name] = entry
        else:
            learned[name] = as_row_factory(name, entry)

    num_stages = len(specs) * (2 if tune else 1) + len(learned) * (2 if guard else 1)
    bar = tqdm(total=num_stages, desc="compare", disable=not progress)
    tuning: dict[str, TuneResult] = {}
    results: dict[str, tuple[str, dict, EvalResult]] = {}
    for name, spec in specs.items():
        if tune:
            bar.set_postfix_str(f"tune {name}")
            tuning[name] = tune_spec(
                spec, family, steps, tune_seeds or num_seeds, tune_tasks or num_tasks,
                key_tune, num_evals=1,
            )
            bar.update()
        hparams = tuning[name].best if tune else dict(spec.defaults)
        bar.set_postfix_str(f"eval {name}")
        result = evaluate_grid(
            lambda spec=spec, hparams=hparams: spec.make(**hparams), None, heldout, steps,
            num_seeds, num_tasks, key_eval, spec.eval_params, num_evals,
        )
        results[name] = ("baseline", hparams, result)
        bar.update()

    reference_spec, reference_hparams = specs[REFERENCE], results[REFERENCE][1]
    for name, (kind, factory) in learned.items():
        rows = [(name, kind, lambda factory=factory: factory(steps), None)]
        if guard:
            from l2o.guard import guard_stats, loss_guarded

            rows.append((
                f"{name}+guard",
                "guarded",
                lambda factory=factory: loss_guarded(
                    factory(steps), reference_spec.make(**reference_hparams)
                ),
                guard_stats,
            ))
        for row_name, row_kind, make, stats in rows:
            bar.set_postfix_str(f"eval {row_name}")
            result = evaluate_grid(
                make, None, heldout, steps, num_seeds, num_tasks, key_eval, None, num_evals,
                stats,
            )
            results[row_name] = (row_kind, {}, result)
            bar.update()
    bar.close()

    reference = results[REFERENCE][2]
    rows = {
        name: Row(name, kind, hparams, result, row_metrics(result, reference))
        for name, (kind, hparams, result) in results.items()
    }
    config = {
        "family": getattr(family, "name", str(family)),
        "heldout_family": getattr(heldout, "name", str(heldout)),
        "steps": steps,
        "num_seeds": num_seeds,
        "num_tasks": num_tasks,
        "tune": tune,
        "tune_seeds": tune_seeds or num_seeds,
        "tune_tasks": tune_tasks or num_tasks,
        "guard": guard,
        "num_evals": num_evals,
        "reference": REFERENCE,
        "grids": {name: spec.grid for name, spec in specs.items()},
        "selection": "mean over train tasks x seeds of the tail train loss",
    }
    return Results(rows, tuning, config, reference.device, versions())
