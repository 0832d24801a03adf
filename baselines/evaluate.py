"""Run an optimizer on a batch of tasks × seeds as one ``jit(vmap(lax.scan))`` call.

Every step passes the same extra arguments to every optimizer::

    updates, state = tx.update(grads, state, params, value=loss, next_loss_fn=next_loss)

where ``loss`` is the minibatch loss at ``params`` and ``next_loss(p)`` is the loss of
``p`` on the *next* step's minibatch (what the loss guard compares candidates on).
Plain optax transforms are wrapped with ``optax.with_extra_args_support``.

Random numbers are common across optimizers: for the same ``key`` every optimizer
sees the same task configs, initialisations, minibatch sequence and evaluation
batches. Diverging runs never raise: non-finite losses are counted, kept as NaN in
the curves, and the run is flagged as diverged.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from baselines.optimizers import eval_params as default_eval_params
from tasks.evaluation import final_losses, final_test_metrics

BLOWUP_FACTOR = 1e3
# Short runs are re-executed (same inputs, same outputs) and the fastest time is kept,
# which makes per-step timings of small problems robust to a busy machine.
TIMING_REPEATS = 5
TIMING_BUDGET_S = 1.0


@dataclasses.dataclass(frozen=True)
class EvalResult:
    """Curves and timings of a batched run (leading axes: ``[grid,] task, seed``).

    Attributes:
      train_loss: ``[..., steps]`` minibatch train loss at the params each step's
        gradient was taken at; non-finite values replaced by NaN.
      eval_steps: ``[num_evals + 1]`` steps at which evaluation happened (0 and steps
        included).
      eval_loss: ``[..., num_evals + 1]`` test-split loss of the evaluated params
        (`tasks.evaluation.final_losses`); its last entry is ``final_test_loss``.
      eval_train_loss: same on the ``"train"`` split (last entry: ``final_train_loss``).
      num_nonfinite: ``[...]`` number of steps whose train loss was NaN/inf.
      diverged: ``[...]`` bool, NaN/inf seen or final loss > 1e3 × (|initial| + 1).
      seconds_per_step: wall-clock per step of the whole batched call, after compile,
        evaluation included; fastest of up to 5 executions while they total < 1 s.
      compile_seconds: time to lower and compile.
      device: ``str(jax.devices()[0])``.
      final_stats: ``final_stats(opt_state)`` of the last state, each ``[...]`` (e.g. the
        loss guard's ``learned_fraction``); empty when not requested.
      final_metrics: the task's ``metrics`` on the test split at the last step other than
        the loss (e.g. ``accuracy`` of classifiers), each ``[...]``; empty for tasks
        without metrics.
    """

    train_loss: np.ndarray
    eval_steps: np.ndarray
    eval_loss: np.ndarray
    eval_train_loss: np.ndarray
    num_nonfinite: np.ndarray
    diverged: np.ndarray
    seconds_per_step: float
    compile_seconds: float
    device: str
    final_stats: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    final_metrics: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)


def _chunks(steps: int, num_evals: int) -> tuple[int, int, int]:
    """Split ``steps`` into ``num_chunks`` chunks of ``chunk`` steps plus a ``tail``."""
    num_evals = max(1, min(num_evals, steps))
    chunk = steps // num_evals
    return num_evals, chunk, steps - num_evals * chunk


def make_run(
    make_tx: Callable[..., Any],
    family,
    steps: int,
    num_evals: int = 10,
    eval_params: Callable[[Any, Any], Any] | None = None,
    final_stats: Callable[[Any], dict] | None = None,
) -> Callable[[dict, Any, jax.Array], dict]:
    """One whole training run as a pure function ``run(hparams, cfg, key) -> dict``.

    ``make_tx(**hparams)`` builds the optimizer inside the trace, so ``hparams`` (a dict
    of scalars) may be batched with ``vmap``. The returned dict holds ``train_loss``
    ``[steps]``, ``eval_loss`` and ``eval_train_loss`` ``[num_evals + 1]`` (raw, possibly
    non-finite), ``final_stats`` (``final_stats(last opt_state)``, or ``{}``) and
    ``final_metrics`` (the task's test-split ``metrics`` at the end, loss left out).
    """
    eval_params = eval_params or default_eval_params
    num_chunks, chunk, tail = _chunks(steps, num_evals)

    def run(hparams, cfg, key):
        task = family.task(cfg)
        tx = optax.with_extra_args_support(make_tx(**hparams))
        key_init, key_steps, key_eval = jax.random.split(key, 3)
        params = task.init(key_init)
        opt_state = tx.init(params)

        def evaluate_now(params, opt_state, index):
            final = final_losses(task, eval_params(opt_state, params),
                                 jax.random.fold_in(key_eval, index))
            return final["final_test_loss"], final["final_train_loss"]

        def step(carry, t):
            params, opt_state, batch_key = carry
            loss, grads = jax.value_and_grad(task.loss)(params, batch_key)
            next_key = jax.random.fold_in(key_steps, t + 1)
            next_loss_fn = lambda p: task.loss(p, next_key)  # noqa: E731
            updates, opt_state = tx.update(
                grads, opt_state, params, value=loss, next_loss_fn=next_loss_fn
            )
            params = optax.apply_updates(params, updates)
            return (params, opt_state, next_key), loss

        def run_chunk(carry, start, length):
            return jax.lax.scan(step, carry, start + jnp.arange(length))

        def chunk_then_eval(carry, index):
            carry, losses = run_chunk(carry, index * chunk, chunk)
            return carry, (losses, evaluate_now(carry[0], carry[1], index + 1))

        carry = (params, opt_state, jax.random.fold_in(key_steps, 0))
        first_eval = evaluate_now(params, opt_state, 0)
        carry, (losses, evals) = jax.lax.scan(chunk_then_eval, carry, jnp.arange(num_chunks))
        losses = losses.reshape(-1)
        test_losses = jnp.concatenate([first_eval[0][None], evals[0]])
        train_losses = jnp.concatenate([first_eval[1][None], evals[1]])
        if tail:
            carry, tail_losses = run_chunk(carry, num_chunks * chunk, tail)
            losses = jnp.concatenate([losses, tail_losses])
            last = evaluate_now(carry[0], carry[1], num_chunks + 1)
            test_losses = test_losses.at[-1].set(last[0])
            train_losses = train_losses.at[-1].set(last[1])
        stats = {} if final_stats is None else dict(final_stats(carry[1]))
        final_key = jax.random.fold_in(key_eval, num_chunks + bool(tail))  # the last eval's
        final_metrics = final_test_metrics(task, eval_params(carry[1], carry[0]), final_key)
        return {
            "train_loss": losses,
            "eval_loss": test_losses,
            "eval_train_loss": train_losses,
            "final_stats": stats,
            "final_metrics": final_metrics,
        }

    return run


def eval_steps_of(steps: int, num_evals: int = 10) -> np.ndarray:
    """The step indices at which :func:`make_run` evaluates (``0`` … ``steps``)."""
    num_chunks, chunk, tail = _chunks(steps, num_evals)
    points = np.arange(num_chunks + 1) * chunk
    points[-1] += tail
    return points


def task_configs(family, num_tasks: int, key: jax.Array):
    """``num_tasks`` configs of ``family`` (leading axis ``num_tasks``)."""
    return jax.vmap(family.sample)(jax.random.split(key, num_tasks))


def _validate(steps: int, num_seeds: int, num_tasks: int) -> None:
    for name, value in (("steps", steps), ("num_seeds", num_seeds), ("num_tasks", num_tasks)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}.")


def evaluate_grid(
    make_tx: Callable[..., Any],
    grid: list[dict[str, float]] | None,
    family,
    steps: int,
    num_seeds: int = 2,
    num_tasks: int = 2,
    key: jax.Array | None = None,
    eval_params: Callable[[Any, Any], Any] | None = None,
    num_evals: int = 10,
    final_stats: Callable[[Any], dict] | None = None,
) -> EvalResult:
    """Run ``make_tx(**point)`` for every grid point, task and seed in one jitted call.

    Args:
      make_tx: builds an optax transform from hyper-parameters (may be traced).
      grid: list of hyper-parameter dicts (same keys), or None for a single
        ``make_tx()`` without a grid axis.
      family: a ``tasks.base.TaskFamily``; ``num_tasks`` configs are drawn with ``key``.
      steps, num_seeds, num_tasks: run length and batch sizes.
      key: PRNG key (default ``PRNGKey(0)``); same key ⇒ same tasks, inits, batches.
        The configs are ``task_configs(family, num_tasks, jax.random.split(key)[0])``.
      eval_params: ``(opt_state, params) -> params`` evaluated (Lookahead: slow weights).
      num_evals: number of evaluations after step 0.
      final_stats: ``opt_state -> dict of scalars`` recorded from each run's last state.

    Returns:
      :class:`EvalResult` with arrays shaped ``[len(grid),] num_tasks, num_seeds, ...``.
    """
    _validate(steps, num_seeds, num_tasks)
    key = jax.random.PRNGKey(0) if key is None else key
    key_tasks, key_runs = jax.random.split(key)
    cfgs = task_configs(family, num_tasks, key_tasks)
    run_keys = jax.random.split(key_runs, (num_tasks, num_seeds))
    run = make_run(make_tx, family, steps, num_evals, eval_params, final_stats)
    over_seeds = jax.vmap(run, in_axes=(None, None, 0))
    over_tasks = jax.vmap(over_seeds, in_axes=(None, 0, 0))
    if grid is None:
        hparams = {}
        batched = over_tasks
    else:
        if not grid:
            raise ValueError("grid is empty; pass at least one hyper-parameter dict or None.")
        hparams = {name: jnp.asarray([p[name] for p in grid], jnp.float32) for name in grid[0]}
        batched = jax.vmap(over_tasks, in_axes=(0, None, None))

    start = time.perf_counter()
    compiled = jax.jit(batched).lower(hparams, cfgs, run_keys).compile()
    compile_seconds = time.perf_counter() - start
    timings = []
    while not timings or (len(timings) < TIMING_REPEATS and sum(timings) < TIMING_BUDGET_S):
        start = time.perf_counter()
        out = jax.block_until_ready(compiled(hparams, cfgs, run_keys))
        timings.append(time.perf_counter() - start)
    elapsed = min(timings)
    out = jax.tree.map(lambda x: np.asarray(x, np.float64), out)

    finite = np.isfinite(out["train_loss"])
    train_loss = np.where(finite, out["train_loss"], np.nan)
    num_nonfinite = (~finite).sum(-1)
    first = np.abs(np.nan_to_num(train_loss[..., 0], nan=0.0))
    last = train_loss[..., -1]
    with np.errstate(invalid="ignore"):
        blown_up = last > BLOWUP_FACTOR * (first + 1.0)
    diverged = (num_nonfinite > 0) | ~np.isfinite(out["eval_loss"][..., -1]) | blown_up

    def clean(x):
        return np.where(np.isfinite(x), x, np.nan)

    return EvalResult(
        train_loss=train_loss,
        eval_steps=eval_steps_of(steps, num_evals),
        eval_loss=clean(out["eval_loss"]),
        eval_train_loss=clean(out["eval_train_loss"]),
        num_nonfinite=num_nonfinite,
        diverged=diverged,
        seconds_per_step=elapsed / steps,
        compile_seconds=compile_seconds,
        device=str(jax.devices()[0]),
        final_stats=out["final_stats"],
        final_metrics=out["final_metrics"],
    )


def grid_point(result: EvalResult, index: int) -> EvalResult:
    """The runs of grid point ``index`` of an :func:`evaluate_grid` result (grid axis dropped).

    ``seconds_per_step`` and ``compile_seconds`` stay those of the whole batched grid call.
    """
    def pick(value):
        return {k: v[index] for k, v in value.items()} if isinstance(value, dict) else value[index]

    return dataclasses.replace(
        result, **{f.name: pick(getattr(result, f.name)) for f in dataclasses.fields(result)
                   if f.name not in ("eval_steps", "seconds_per_step", "compile_seconds",
                                     "device")})


def evaluate(
    tx,
    family,
    steps: int,
    num_seeds: int = 2,
    num_tasks: int = 2,
    key: jax.Array | None = None,
    eval_params: Callable[[Any, Any], Any] | None = None,
    num_evals: int = 10,
    final_stats: Callable[[Any], dict] | None = None,
) -> EvalResult:
    """Train ``num_tasks`` tasks of ``family`` × ``num_seeds`` seeds with ``tx``.

    ``tx`` is any optax transform (plain ones ignore the extra args). Arrays in the
    result are shaped ``[num_tasks, num_seeds, ...]``; see :func:`evaluate_grid`.
    """
    if not hasattr(tx, "init") or not hasattr(tx, "update"):
        raise TypeError(
            f"tx must be an optax GradientTransformation, got {type(tx).__name__}; build "
            "one with optax.adam(1e-3) or lopt.as_optax(theta, num_steps)."
        )
    return evaluate_grid(
        lambda: tx, None, family, steps, num_seeds, num_tasks, key, eval_params, num_evals,
        final_stats,
    )
