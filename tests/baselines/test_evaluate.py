"""The batched training harness against direct Python-loop runs."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from baselines import evaluate as ev
from baselines import optimizers
from helpers.toy_family import quadratic, toy_family

KEY = jax.random.PRNGKey(3)


def _direct_run(tx, cfg, steps):
    """Deterministic toy task (noise 0, zero init): losses before each update + final."""
    params = {"w": jnp.zeros(4), "b": jnp.zeros(())}
    state = tx.init(params)
    loss_and_grad = jax.jit(jax.value_and_grad(lambda p: quadratic(p, cfg)))
    losses = []
    for _ in range(steps):
        loss, grads = loss_and_grad(params)
        losses.append(float(loss))
        updates, state = tx.update(grads, state, params, value=loss)
        params = optax.apply_updates(params, updates)
    return np.array(losses), float(quadratic(params, cfg))


def test_curves_match_a_direct_run():
    family, steps = toy_family(noise=0.0, init_scale=0.0), 20
    result = ev.evaluate(optimizers.adam(0.05), family, steps, num_seeds=2, num_tasks=2, key=KEY, num_evals=4)
    assert result.train_loss.shape == (2, 2, steps)
    np.testing.assert_array_equal(result.eval_steps, [0, 5, 10, 15, 20])
    cfgs = ev.task_configs(family, 2, jax.random.split(KEY)[0])
    for task in range(2):
        cfg = jax.tree.map(lambda x: x[task], cfgs)
        losses, final = _direct_run(optimizers.adam(0.05), cfg, steps)
        for seed in range(2):
            np.testing.assert_allclose(result.train_loss[task, seed], losses, rtol=1e-5)
            np.testing.assert_allclose(result.eval_loss[task, seed, :-1], losses[::5], rtol=1e-5)
            np.testing.assert_allclose(result.eval_loss[task, seed, -1], final, rtol=1e-5)
    assert losses[-1] < 0.5 * losses[0]
    assert not result.diverged.any() and result.num_nonfinite.sum() == 0
    assert result.seconds_per_step > 0 and result.device == str(jax.devices()[0])


def test_uneven_eval_chunks_cover_every_step():
    family = toy_family(noise=0.0, init_scale=0.0)
    result = ev.evaluate(optimizers.sgd(0.1), family, 7, num_seeds=1, num_tasks=1, key=KEY, num_evals=3)
    np.testing.assert_array_equal(result.eval_steps, [0, 2, 4, 7])
    cfg = jax.tree.map(lambda x: x[0], ev.task_configs(family, 1, jax.random.split(KEY)[0]))
    losses, final = _direct_run(optimizers.sgd(0.1), cfg, 7)
    np.testing.assert_allclose(result.train_loss[0, 0], losses, rtol=1e-5)
    np.testing.assert_allclose(result.eval_loss[0, 0], [*losses[[0, 2, 4]], final], rtol=1e-5)


def test_lookahead_is_evaluated_on_slow_weights():
    family = toy_family(noise=0.0, init_scale=0.0)
    tx = optimizers.lookahead(optimizers.sgd(0.1), sync_period=5, slow_step_size=0.5)
    result = ev.evaluate(tx, family, 6, num_seeds=1, num_tasks=1, key=KEY, num_evals=2)
    curve, evals = result.train_loss[0, 0], result.eval_loss[0, 0]
    # step 3: no sync yet, slow weights are still the initial ones
    np.testing.assert_allclose(evals[1], curve[0], rtol=1e-6)
    assert curve[3] < 0.9 * curve[0]
    plain = ev.evaluate(tx, family, 6, num_seeds=1, num_tasks=1, key=KEY, num_evals=2,
                        eval_params=lambda state, params: params)
    np.testing.assert_allclose(plain.eval_loss[0, 0, 1], curve[3], rtol=1e-5)


def _probe_tx():
    """Zero updates, except the difference between this step's loss and the previous
    step's next_loss_fn(params): zero iff next_loss_fn is the loss on the next minibatch."""

    def init(params):
        return jnp.full((), jnp.nan)

    def update(grads, predicted, params=None, *, value, next_loss_fn, **extra):
        mismatch = jnp.where(jnp.isnan(predicted), 0.0, value - predicted)
        updates = jax.tree.map(lambda g: jnp.full_like(g, mismatch), grads)
        return updates, next_loss_fn(params)

    return optax.GradientTransformationExtraArgs(init, update)


def test_value_and_next_loss_fn_are_this_and_next_minibatch_loss():
    family = toy_family(noise=0.5)
    frozen = ev.evaluate(optax.set_to_zero(), family, 12, num_seeds=2, num_tasks=1, key=KEY)
    probe = ev.evaluate(_probe_tx(), family, 12, num_seeds=2, num_tasks=1, key=KEY)
    assert np.ptp(frozen.train_loss) > 0.1  # minibatches differ, so the probe can fail
    np.testing.assert_allclose(probe.train_loss, frozen.train_loss, rtol=1e-5, atol=1e-6)


def test_divergence_is_reported_not_raised():
    family = toy_family()
    result = ev.evaluate(optimizers.sgd(1e6), family, 15, num_seeds=2, num_tasks=2, key=KEY)
    assert result.diverged.all()
    assert (result.num_nonfinite > 0).all()
    assert np.isfinite(result.train_loss[..., 0]).all()
    assert np.isnan(result.train_loss[..., -1]).all()
    assert not np.isinf(result.train_loss).any()


def test_grid_axis_matches_separate_runs():
    family = toy_family()
    grid = [{"learning_rate": 0.01}, {"learning_rate": 0.1}]
    batched = ev.evaluate_grid(optimizers.adam, grid, family, 10, 2, 2, KEY)
    assert batched.train_loss.shape == (2, 2, 2, 10)
    for i, point in enumerate(grid):
        single = ev.evaluate(optimizers.adam(point["learning_rate"]), family, 10, 2, 2, KEY)
        np.testing.assert_allclose(batched.train_loss[i], single.train_loss, rtol=1e-5)


@pytest.mark.parametrize("kwargs, match", [({"steps": 0}, "steps must be a positive int"),
                                           ({"num_seeds": 0}, "num_seeds must be")])
def test_bad_arguments_raise(kwargs, match):
    args = {"steps": 5, "num_seeds": 1, "num_tasks": 1, **kwargs}
    with pytest.raises(ValueError, match=match):
        ev.evaluate(optimizers.adam(1e-3), toy_family(), **args)
    with pytest.raises(TypeError, match="optax GradientTransformation"):
        ev.evaluate("adam", toy_family(), 5)


def test_final_metrics_are_the_tasks_test_metrics_at_the_end():
    """Zero updates keep the initial params, so final_metrics is the task's test accuracy
    at its initialisation (key derivation as documented in evaluate_grid/make_run)."""
    from tasks import heldout

    family = heldout.family("iris-elu")
    result = ev.evaluate(optax.set_to_zero(), family, 3, num_seeds=2, num_tasks=1, key=KEY)
    assert set(result.final_metrics) == {"accuracy"}
    assert result.final_metrics["accuracy"].shape == (1, 2)
    key_tasks, key_runs = jax.random.split(KEY)
    cfg = jax.tree.map(lambda x: x[0], ev.task_configs(family, 1, key_tasks))
    task = family.task(cfg)
    for seed, run_key in enumerate(jax.random.split(key_runs, (1, 2))[0]):
        params = task.init(jax.random.split(run_key, 3)[0])
        expected = task.metrics(params, jax.random.key(0), "test")  # whole split: key unused
        np.testing.assert_allclose(result.final_metrics["accuracy"][0, seed],
                                   expected["accuracy"], rtol=1e-6)
        np.testing.assert_allclose(result.eval_loss[0, seed, -1], expected["loss"], rtol=1e-5)
    toy = ev.evaluate(optimizers.sgd(0.1), toy_family(), 3, num_seeds=1, num_tasks=1, key=KEY)
    assert toy.final_metrics == {}
