"""The held-out generalisation suite: every optimizer on every problem of ``tasks.heldout``.

Protocol (recorded in :attr:`SuiteResults.config`):

1. Each problem is one task; every optimizer runs ``num_seeds`` seeds of ``steps`` steps
   with common random numbers (the same initialisations and minibatches for everyone).
2. Adam, Lion and Lookahead(Adam) run their whole grid (log-spaced, ``SUITE_GRIDS`` or
   ``baselines.registry``) on those seeds and keep the point with the lowest score: the
   mean over seeds of the ``final_train_loss`` (``tasks.evaluation``; a diverged run
   disqualifies the point). They are tuned per problem on the evaluation seeds
   themselves, which favours the baselines.
3. ``adam@suite`` is Adam at the one learning rate that is best over the whole suite
   (lowest geometric mean over problems of its score / the problem's best Adam score):
   what a user who does not tune gets.
4. Learned optimizers run untuned, told ``num_steps = steps``; with ``guard`` each also
   runs under ``l2o.loss_guarded`` whose fallback is the problem's tuned Adam.

Metrics: :func:`problem_metrics` per problem, :func:`aggregate` over problems.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import jax
import numpy as np
from tqdm.auto import tqdm

from baselines import metrics, stats
from baselines.compare import as_row_factory, row_metrics, versions
from baselines.evaluate import EvalResult, evaluate_grid, grid_point
from baselines.registry import get as get_baseline, log_grid
from baselines.tune import TuneResult, grid_scores

BASELINES: tuple[str, ...] = ("adam", "lion", "lookahead")
# Half-decade learning-rate grids; Adam's reaches 10^0.5 because small full-batch and wide
# problems want steps near 1 (10^-0.5, the registry's top value, was best on three
# problems). Lion keeps the registry grid (8 learning rates x weight decay 0, 0.01, 0.1).
SUITE_GRIDS: dict[str, dict[str, tuple[float, ...]]] = {
    "adam": {"learning_rate": log_grid(1e-4, 10**0.5, 10)},
    "lookahead": {"learning_rate": log_grid(1e-4, 10**0.5, 10)},
}
REFERENCE, UNTUNED = "adam", "adam@suite"
DEFAULT_STEPS, DEFAULT_SEEDS = 300, 3


@dataclasses.dataclass(frozen=True)
class ProblemResult:
    """One problem: ``rows`` (name -> (kind, hparams, EvalResult)), baseline ``tuning``,
    ``metrics`` (name -> :func:`problem_metrics`), ``description`` and ``seconds``."""

    name: str
    description: dict[str, Any]
    rows: dict[str, tuple[str, dict, EvalResult]]
    tuning: dict[str, TuneResult]
    metrics: dict[str, dict[str, Any]]
    seconds: float


@dataclasses.dataclass(frozen=True)
class SuiteResults:
    """Everything :func:`run_suite` measured; ``baselines.suite_report`` writes it out."""

    problems: dict[str, ProblemResult]
    aggregates: dict[str, dict[str, Any]]
    config: dict[str, Any]
    device: str
    versions: dict[str, str]
    seconds: float


def _mean_ok(values: np.ndarray, ok: np.ndarray) -> float:
    values = values[ok & np.isfinite(values)]
    return float(values.mean()) if values.size else float("nan")


def problem_metrics(result: EvalResult, reference: EvalResult,
                    untuned: EvalResult) -> dict[str, Any]:
    """One row on one problem, against tuned Adam (``reference``) and ``adam@suite``.

    - ``final_train_loss`` / ``final_test_loss``: loss on the full train / test split at
      the last step, mean over the seeds that did not diverge; ``test_accuracy`` likewise;
    - ``speedup``: steps tuned Adam needs to reach its own final loss ÷ steps this row
      needs (seed-mean minibatch curves smoothed over 10% of steps, as in
      :func:`baselines.compare.row_metrics`; 0 = never reached), ``steps_to_target``
      (inf = never); ``speedup_vs_untuned`` the same against ``adam@suite``;
    - ``loss_ratio``: ``final_train_loss`` ÷ tuned Adam's (inf when every seed diverged);
    - ``divergences`` out of ``num_runs``; ``guard_learned_fraction`` for guarded rows.
    """
    tuned, plain = row_metrics(result, reference), row_metrics(result, untuned)
    final = tuned["final_train_loss"]
    reference_final = row_metrics(reference, reference)["final_train_loss"]
    accuracy = result.final_metrics.get("accuracy")
    out = {
        "final_train_loss": final,
        "final_test_loss": tuned["final_test_loss"],
        "test_accuracy": None if accuracy is None else _mean_ok(accuracy[0], ~result.diverged[0]),
        "speedup": tuned["per_task"]["speedup"][0],
        "steps_to_target": tuned["per_task"]["steps_to_target"][0],
        "speedup_vs_untuned": plain["per_task"]["speedup"][0],
        "loss_ratio": final / reference_final if np.isfinite(final) else float("inf"),
        "divergences": tuned["divergences"],
        "num_runs": tuned["num_runs"],
    }
    if "guard_learned_fraction" in tuned:
        out["guard_learned_fraction"] = tuned["guard_learned_fraction"]
        out["guard_resets"] = float(np.mean(result.final_stats.get("num_resets", np.nan)))
    return out


def aggregate(per_problem: dict[str, dict[str, Any]], untuned: dict[str, dict[str, Any]],
              reference: dict[str, dict[str, Any]], num_resamples: int = 2000) -> dict:
    """One row's statistics over problems (dicts keyed by problem, from problem_metrics).

    ``speedup`` / ``speedup_vs_untuned``: :func:`baselines.stats.summarize` (median, IQM,
    mean with bootstrap CIs over problems); ``win_rate`` / ``win_rate_vs_untuned``:
    fraction of problems whose final train loss is below tuned Adam's / ``adam@suite``'s
    (ties ½, diverged loses); ``never_reached``: problems where the speedup is 0;
    ``loss_ratio_median`` / ``loss_ratio_max``; total ``divergences`` of ``num_runs``.
    """
    problems = list(per_problem)

    def column(source, key):
        return np.array([source[p][key] for p in problems], float)

    finals = column(per_problem, "final_train_loss")
    ratios = np.where(np.isnan(column(per_problem, "loss_ratio")), np.inf,
                      column(per_problem, "loss_ratio"))
    speedups = column(per_problem, "speedup")
    return {
        "speedup": stats.summarize(speedups, num_resamples),
        "speedup_vs_untuned": stats.summarize(column(per_problem, "speedup_vs_untuned"),
                                              num_resamples),
        "win_rate": metrics.win_rate(finals, column(reference, "final_train_loss")),
        "win_rate_vs_untuned": metrics.win_rate(finals, column(untuned, "final_train_loss")),
        "never_reached": [p for p, s in zip(problems, speedups) if s == 0],
        "loss_ratio_median": float(np.median(ratios)),
        "loss_ratio_max": float(np.max(ratios)),
        "divergences": int(column(per_problem, "divergences").sum()),
        "num_runs": int(column(per_problem, "num_runs").sum()),
    }


def suite_learning_rate(scores: np.ndarray) -> int:
    """Index of the grid point best over the suite, from ``scores[problem, point]``.

    Lowest geometric mean over problems of ``score / min(score of that problem)``; points
    that diverged on some problem (score inf) lose to any that never did. Ties: first.
    """
    scores = np.asarray(scores, float)
    best = np.min(np.where(np.isfinite(scores), scores, np.inf), axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.log(np.maximum(scores, 1e-30) / np.maximum(best, 1e-30))
    failures = (~np.isfinite(scores)).sum(0)
    mean_log = np.where(np.isfinite(logs), logs, 0.0).mean(0)
    return int(np.lexsort((mean_log, failures))[0])


def run_suite(
    optimizers: dict[str, Any],
    problems: list[str] | None = None,
    steps: int = DEFAULT_STEPS,
    num_seeds: int = DEFAULT_SEEDS,
    guard: bool = False,
    baselines: tuple[str, ...] = BASELINES,
    grids: dict[str, dict[str, tuple[float, ...]]] | None = None,
    num_evals: int = 10,
    key: jax.Array | None = None,
    progress: bool = True,
    problem_set: Any = None,
) -> SuiteResults:
    """Run the suite (module doc) and return every curve and metric.

    Args:
      optimizers: row name -> an optax transform or a callable ``num_steps -> transform``
        (``lambda n: lopt.as_optax(theta, num_steps=n)``); may be empty.
      problems: names from ``problem_set.names()`` (default: all).
      steps, num_seeds: the budget of every run.
      guard: also run each learned row under the loss guard (row ``"<name>+guard"``).
      baselines: tuned baselines; must include ``"adam"`` (the reference).
      grids: baseline name -> grid axes replacing ``SUITE_GRIDS``/the registry's grid.
      key: PRNG key of the seeds (default ``PRNGKey(0)``); every row shares it.
      problem_set: a module like ``tasks.heldout`` (the default): ``names``, ``get``,
        ``family`` and ``describe`` of its problems; ``tasks.training_problems`` runs the
        same protocol on the meta-training distribution.
    """
    from tasks import heldout

    heldout = heldout if problem_set is None else problem_set

    problems = heldout.names() if problems is None else list(problems)
    for name in problems:
        heldout.get(name)  # unknown names fail before any work
    if REFERENCE not in baselines:
        raise ValueError(f"baselines must include {REFERENCE!r} (the reference), got "
                         f"{list(baselines)}.")
    if not problems:
        raise ValueError(f"problems is empty; choose from {heldout.names()}.")
    grids = {**SUITE_GRIDS, **(grids or {})}
    specs = {name: get_baseline(name) for name in baselines}
    specs = {name: spec.with_grid(**grids[name]) if name in grids else spec
             for name, spec in specs.items()}
    learned = {name: as_row_factory(name, entry)[1] for name, entry in optimizers.items()}
    clash = sorted(set(learned) & (set(specs) | {UNTUNED}))
    if clash:
        raise ValueError(f"optimizer row names {clash} clash with the baseline rows; rename them.")
    key = jax.random.PRNGKey(0) if key is None else key
    start = time.perf_counter()
    stages = len(problems) * (len(specs) + len(learned) * (2 if guard else 1))
    bar = tqdm(total=stages, desc=f"{heldout.__name__.rpartition('.')[2]} suite",
               disable=not progress)
    partial: dict[str, tuple] = {}

    def run(make, family, eval_params=None, final_stats=None, grid=None):
        return evaluate_grid(make, grid, family, steps, num_seeds, 1, key, eval_params,
                             num_evals, final_stats)

    for problem in problems:
        problem_start, family = time.perf_counter(), heldout.family(problem)
        rows, tuning, grids = {}, {}, {}
        for name, spec in specs.items():
            bar.set_postfix_str(f"{problem}: {name}")
            points = spec.grid_points()
            grids[name] = run(spec.make, family, spec.eval_params, grid=points)
            # score: the final full-train-split loss (a length-1 "tail"), diverged = inf
            scores = grid_scores(grids[name].eval_train_loss[..., -1:], grids[name].diverged)
            best = int(np.argmin(scores)) if np.isfinite(scores).any() else 0
            tuning[name] = TuneResult(name, points[best], points, scores, steps, num_seeds, 1)
            rows[name] = ("baseline", points[best], grid_point(grids[name], best))
            bar.update()
        for name, factory in learned.items():
            variants = [(name, "learned", lambda f=factory: f(steps), None)]
            if guard:
                from l2o.guard import guard_stats, loss_guarded

                fallback = specs[REFERENCE].make(**tuning[REFERENCE].best)
                variants.append((f"{name}+guard", "guarded",
                                 lambda f=factory: loss_guarded(f(steps), fallback), guard_stats))
            for row, kind, make, final_stats in variants:
                bar.set_postfix_str(f"{problem}: {row}")
                rows[row] = (kind, {}, run(make, family, final_stats=final_stats))
                bar.update()
        partial[problem] = (rows, tuning, grids[REFERENCE], time.perf_counter() - problem_start)
    bar.close()

    suite_scores = np.stack([partial[p][1][REFERENCE].scores for p in problems])
    suite_index = suite_learning_rate(suite_scores)
    suite_point = specs[REFERENCE].grid_points()[suite_index]
    results: dict[str, ProblemResult] = {}
    for problem in problems:
        rows, tuning, adam_grid, seconds = partial[problem]
        rows = {**{n: rows[n] for n in specs}, UNTUNED: ("baseline", suite_point,
                grid_point(adam_grid, suite_index)), **{n: rows[n] for n in rows if n not in specs}}
        reference, untuned = rows[REFERENCE][2], rows[UNTUNED][2]
        per_row = {n: problem_metrics(r, reference, untuned) for n, (_, _, r) in rows.items()}
        results[problem] = ProblemResult(problem, heldout.describe(problem), rows, tuning,
                                         per_row, seconds)
    row_names = list(results[problems[0]].rows)
    aggregates = {
        row: aggregate({p: results[p].metrics[row] for p in problems},
                       {p: results[p].metrics[UNTUNED] for p in problems},
                       {p: results[p].metrics[REFERENCE] for p in problems})
        for row in row_names
    }
    config = {
        "suite": heldout.__name__.rpartition(".")[2], "problems": problems, "steps": steps,
        "num_seeds": num_seeds,
        "guard": guard, "num_evals": num_evals, "reference": REFERENCE,
        "untuned_reference": UNTUNED, "untuned_hparams": suite_point,
        "grids": {name: spec.grid for name, spec in specs.items()},
        "selection": "per problem, on the evaluation seeds: mean over seeds of the final "
                     "full-train-split loss (a diverged run disqualifies the point)",
        "learned": list(learned),
    }
    return SuiteResults(results, aggregates, config, str(jax.devices()[0]), versions(),
                        time.perf_counter() - start)

