"""Paired runs of the loss guard: each run is its optimizer alone, the one ahead is followed."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import serialization

import l2o
from helpers.guard import SETTINGS, make_run, nan_producing, sign_flipped
from l2o import GuardedOptimizer, guard_stats, loss_guarded
from l2o.guard_paired import paired_gap


def leaves_equal(a, b):
    return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def eager_run(tx, setting, steps):
    """Final (params, state) of ``steps`` un-jitted steps: op by op, so the guarded runs and
    the optimizers alone execute the same floating-point operations."""
    make_problem, _, _ = SETTINGS[setting]
    problem = make_problem()
    with jax.disable_jit():
        params, state, _ = make_run(tx, problem, steps)(problem.params, jax.random.key(1))
    return params, state


@pytest.mark.parametrize("rule", [nan_producing, sign_flipped])
def test_learned_never_ahead_follows_the_fallback_alone_bit_for_bit(rule):
    fallback = optax.adam(0.05)
    alone, alone_state = eager_run(fallback, "quadratic-adam", 6)
    guarded, state = eager_run(loss_guarded(rule(), fallback), "quadratic-adam", 6)
    assert leaves_equal(guarded, alone)
    assert leaves_equal(state.fallback_state, alone_state)
    stats = guard_stats(state)
    assert (int(stats["num_learned"]), int(stats["num_fallback"])) == (0, 6)
    # NaN restarts the learned run from the fallback run's point at every step; gradient
    # ascent falls clearly behind at least once in 6 steps.
    assert int(stats["num_resets"]) == 6 if rule is nan_producing else int(stats["num_resets"]) >= 1


def test_learned_always_ahead_is_the_learned_optimizer_alone_bit_for_bit():
    learned = optax.adam(0.05)
    fallback = optax.sgd(-0.01)  # ascends: behind from the first step on
    alone, alone_state = eager_run(learned, "quadratic-adam", 6)
    guarded, state = eager_run(loss_guarded(learned, fallback), "quadratic-adam", 6)
    assert leaves_equal(guarded, alone)
    assert leaves_equal(state.learned_state, alone_state)
    stats = guard_stats(state)
    assert (int(stats["num_learned"]), int(stats["num_resets"])) == (6, 0)


@pytest.mark.parametrize("setting", ["quadratic-adam", "digits-adam"])
def test_jitted_runs_match_each_optimizer_alone_to_rounding(setting):
    """Compiled, XLA may fuse the same operations differently (measured: 3e-8 after one
    quadratic step), so the runs agree to rounding, not bit for bit."""
    make_problem, fallback, steps = SETTINGS[setting]
    problem = make_problem()
    run = lambda tx: make_run(tx, problem, steps)(problem.params, jax.random.key(1))  # noqa: E731
    for learned, expect in ((nan_producing(), "fallback"), (fallback, "fallback"),
                            (optax.adam(0.05), "learned")):
        other = optax.sgd(-0.01) if expect == "learned" else fallback
        tx = loss_guarded(learned, other) if expect == "learned" else loss_guarded(learned, fallback)
        guarded, state, losses = run(tx)
        alone, _, alone_losses = run(learned if expect == "learned" else fallback)
        for a, b in zip(jax.tree.leaves(guarded), jax.tree.leaves(alone)):
            np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-6)
        # (digits: Adam's first step overshoots, so the guard follows the fallback once)
        np.testing.assert_allclose(losses[2:], alone_losses[2:], rtol=2e-4, atol=1e-6)
        assert bool(state.used_learned) == (expect == "learned")


def late_diverging(lr=0.05, from_step=40):
    """Adam until ``from_step``, then Adam's step times 1e4 (blows up)."""
    return optax.chain(optax.adam(lr), optax.scale_by_schedule(
        lambda t: jnp.where(t < from_step, 1.0, 1e4)))


def test_learned_run_that_diverges_late_ends_at_the_fallback_run():
    make_problem, _, steps = SETTINGS["quadratic-adam"]
    problem = make_problem()
    fallback = optax.adam(0.01)  # slower than the learned rule's Adam(0.05) before step 40
    run = lambda tx: make_run(tx, problem, steps)(problem.params, jax.random.key(1))  # noqa: E731
    learned_alone, _, _ = run(late_diverging())
    guarded, state, losses = run(loss_guarded(late_diverging(), fallback))
    alone, _, _ = run(fallback)
    assert float(problem.full_loss(learned_alone)) > 100 * float(problem.full_loss(alone))
    assert np.all(np.isfinite(losses))
    stats = guard_stats(state)
    assert not bool(stats["used_learned"]) and int(stats["num_resets"]) > 0
    assert 0 < int(stats["num_learned"]) <= 40
    for a, b in zip(jax.tree.leaves(guarded), jax.tree.leaves(alone)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_running_means_not_per_batch_ratios_decide():
    """A learned run with most batch losses far below the fallback's and a few far above
    is behind in the mean: losses (0.001, 1) vs (0.1, 0.1) alternating, s = 0.5."""
    def next_loss_fn(step):  # the learned run stays at x = 0, the fallback run moves to 1
        learned_loss = (0.001, 1.0)[step]
        return lambda p: jnp.where(p["x"] == 0.0, learned_loss, 0.1)

    tx = loss_guarded(optax.stateless(lambda u, p: jax.tree.map(jnp.zeros_like, u)),
                      optax.stateless(lambda u, p: jax.tree.map(jnp.ones_like, u)),
                      smoothing=0.5, reset_gap=0.99)
    params = {"x": jnp.float32(0.0)}
    state = tx.init(params)
    for step in range(2):
        _, state = tx.update({"x": jnp.float32(0.0)}, state, params,
                             next_loss_fn=next_loss_fn(step))
    # means 0.5(0.5 * 0.001) + 0.5 = 0.50025 vs 0.075: the fallback run is ahead, although
    # the learned run was 100x lower on one of the two batches and 10x higher on the other.
    assert float(state.learned_mean) == pytest.approx(0.50025)
    assert float(state.fallback_mean) == pytest.approx(0.075)
    assert not bool(state.used_learned)


def test_paired_gap_is_bounded_and_handles_non_finite_losses():
    pairs = [(1.0, 3.0, -0.5), (3.0, 1.0, 0.5), (2.0, 2.0, 0.0), (0.0, 0.0, 0.0),
             (-1.0, 1.0, -1.0), (jnp.inf, 1.0, 1.0), (jnp.nan, 1.0, 1.0), (1.0, jnp.nan, -1.0),
             (jnp.nan, jnp.inf, 0.0)]
    for a, b, expected in pairs:
        assert float(paired_gap(jnp.float32(a), jnp.float32(b))) == pytest.approx(expected, abs=1e-6)
    assert float(paired_gap(jnp.float32(3e38), jnp.float32(-3e38))) == 1.0  # no overflow


def scalar_steps(learned_lr, steps, **settings):
    """f(x) = x^2 / 2 from x = 1, noise-free, learned SGD(learned_lr) vs fallback SGD(0.5)."""
    tx = loss_guarded(optax.sgd(learned_lr), optax.sgd(0.5), **settings)
    loss_fn = lambda p: 0.5 * p["x"] ** 2  # noqa: E731
    params = {"x": jnp.float32(1.0)}
    state = tx.init(params)
    for _ in range(steps):
        grads = jax.grad(loss_fn)(params)
        updates, state = tx.update(grads, state, params, value=loss_fn(params),
                                   next_loss_fn=loss_fn)
        params = optax.apply_updates(params, updates)
    return float(params["x"]), state


def test_hand_checked_step_follows_the_run_ahead_and_keeps_the_other():
    # Learned x = 1 - 0.8 = 0.2 (loss 0.02), fallback 0.5 (loss 0.125):
    # Running means 0.5 * 0.02 and 0.5 * 0.125 (from 0): D = -0.105 / 0.145 < -switch_gap,
    # follow the learned run.
    x, state = scalar_steps(0.8, 1, smoothing=0.5)
    assert x == pytest.approx(0.2)
    assert bool(state.used_learned) and not bool(state.reset)
    assert float(state.running_gap) == pytest.approx(-0.105 / 0.145, rel=1e-6)
    assert float(state.learned_mean) == pytest.approx(0.01)
    assert float(state.fallback_mean) == pytest.approx(0.0625)
    assert float(state.fallback_params["x"]) == 0.5 and float(state.fallback_grads["x"]) == 0.5
    assert float(state.learned_params["x"]) == pytest.approx(0.2)
    assert float(state.learned_grads["x"]) == pytest.approx(0.2)
    assert float(state.learned_loss) == pytest.approx(0.02) and float(state.fallback_loss) == 0.125
    # Step 2, from the learned run at 0.2 (gradient given: 0.2) and the fallback run at 0.5
    # (gradient kept: 0.5): learned 0.04 (loss 0.0008), fallback 0.25 (loss 0.03125).
    x, state = scalar_steps(0.8, 2, smoothing=0.5)
    assert x == pytest.approx(0.04) and float(state.fallback_params["x"]) == 0.25
    assert int(state.num_learned) == 2


def test_hand_checked_reset_copies_the_fallback_run_into_the_learned_run():
    # Learned x = 1 - 2.5 = -1.5 (loss 1.125), fallback 0.5 (0.125): D = 0.8 > 0.3.
    x, state = scalar_steps(2.5, 1, smoothing=0.5, reset_gap=0.3)
    assert x == 0.5 and float(state.learned_params["x"]) == 0.5  # both runs at 0.5
    assert float(state.learned_grads["x"]) == 0.5
    assert bool(state.reset) and not bool(state.used_learned)
    assert int(state.num_resets) == 1
    assert float(state.running_gap) == pytest.approx(0.3)  # restarts at reset_gap
    assert float(state.learned_mean) == pytest.approx(0.0625 * 1.3 / 0.7)
    assert float(state.learned_loss) == float(state.fallback_loss) == 0.125
    # Without resets (reset_gap 1) the learned run keeps its own point.
    x, state = scalar_steps(2.5, 1, smoothing=0.5, reset_gap=0.99)
    assert x == 0.5 and float(state.learned_params["x"]) == -1.5 and int(state.num_resets) == 0


def test_hysteresis_keeps_the_run_followed_within_switch_gap():
    # Learned 1 - 0.49 = 0.51 vs fallback 0.5: d = (0.51^2 - 0.25) / (0.51^2 + 0.25) = 0.0099.
    d = (0.51**2 - 0.25) / (0.51**2 + 0.25)
    _, state = scalar_steps(0.49, 1, smoothing=0.0, switch_gap=0.02)
    assert not bool(state.used_learned)  # starts on the fallback run
    assert float(state.running_gap) == pytest.approx(d, rel=1e-4)
    # Learned slightly ahead (0.49 vs 0.5): gap -0.0200 within 0.05, stays on the fallback.
    _, state = scalar_steps(0.51, 1, smoothing=0.0, switch_gap=0.05)
    assert not bool(state.used_learned)
    _, state = scalar_steps(0.51, 1, smoothing=0.0, switch_gap=0.01)
    assert bool(state.used_learned)


def test_non_finite_runs_are_never_followed():
    loss_fn = lambda p: jnp.exp(p["x"]).sum()  # noqa: E731
    params = {"x": jnp.array([1.0, 2.0])}
    grads = jax.grad(loss_fn)(params)
    tx = loss_guarded(optax.sgd(0.1), optax.sgd(-1e3))  # fallback ascends to exp(1e4) = inf
    updates, state = tx.update(grads, tx.init(params), params, next_loss_fn=loss_fn)
    assert bool(state.used_learned) and not np.isfinite(float(state.fallback_loss))
    assert int(state.num_resets) == 0
    np.testing.assert_allclose(updates["x"], -0.1 * grads["x"], rtol=1e-6)
    tx = loss_guarded(nan_producing(), optax.sgd(0.1))
    updates, state = tx.update(grads, tx.init(params), params, next_loss_fn=loss_fn)
    assert not bool(state.used_learned) and bool(state.reset)
    np.testing.assert_allclose(updates["x"], -0.1 * grads["x"], rtol=1e-6)
    np.testing.assert_allclose(state.learned_params["x"], params["x"] - 0.1 * grads["x"])
    # Finite params with a non-finite loss count as non-finite too.
    inf_at_learned = lambda p: jnp.where(p["x"][0] < 0, jnp.inf, jnp.sum(p["x"]))  # noqa: E731
    tx = loss_guarded(optax.sgd(10.0), optax.sgd(0.1))
    _, state = tx.update({"x": jnp.ones(2)}, tx.init(params), params, next_loss_fn=inf_at_learned)
    assert not bool(state.used_learned) and bool(state.reset)
    tx = loss_guarded(nan_producing(), nan_producing())  # both fail: no move
    updates, state = tx.update(grads, tx.init(params), params, next_loss_fn=loss_fn)
    np.testing.assert_array_equal(updates["x"], [0.0, 0.0])


def test_state_is_saveable_and_resume_is_bit_exact():
    guarded = GuardedOptimizer(l2o.MLPOptimizer(hidden_sizes=(4,)), optax.adam(0.05))
    theta = guarded.init_meta_params(jax.random.key(0))
    make_problem, _, _ = SETTINGS["quadratic-adam"]
    problem = make_problem()

    @jax.jit
    def step(params, state, t):
        loss, grads = jax.value_and_grad(problem.loss)(params, jax.random.key(t))
        updates, state = guarded.update(theta, grads, state, params, loss,
                                        next_loss_fn=lambda p: problem.loss(p, jax.random.key(t + 1)))
        return optax.apply_updates(params, updates), state

    def steps(params, state, start, stop):
        for t in range(start, stop):
            params, state = step(params, state, t)
        return params, state

    state0 = guarded.init(theta, problem.params, 10)
    straight = steps(problem.params, state0, 0, 10)
    params, state = steps(problem.params, state0, 0, 5)
    blob = serialization.to_bytes((params, state))
    restored = serialization.from_bytes((problem.params, state0), blob)
    assert leaves_equal(steps(*restored, 5, 10), straight)


def test_settings_are_validated_and_reach_the_optax_form(monkeypatch):
    bad = [({"smoothing": 1.0}, r"smoothing must be a float in \[0, 1\)"),
           ({"smoothing": "0.5"}, "smoothing"),
           ({"reset_gap": 1.0}, r"reset_gap must be a float in \[0, 1\)"),
           ({"switch_gap": -0.1}, "switch_gap must be a float"),
           ({"switch_gap": 0.2, "reset_gap": 0.1}, "switch_gap must be below reset_gap")]
    for kwargs in ({"alone_run": "yes"}, {"alone_run": 1}):
        with pytest.raises(TypeError, match="alone_run must be True or False"):
            loss_guarded(optax.sgd(0.1), optax.sgd(0.1), **kwargs)
        with pytest.raises(TypeError, match="alone_run must be True or False"):
            GuardedOptimizer(l2o.MLPOptimizer(), **kwargs)
    for kwargs, match in bad:
        with pytest.raises(ValueError, match=match):
            loss_guarded(optax.sgd(0.1), optax.sgd(0.1), **kwargs)
        with pytest.raises(ValueError, match=match):
            GuardedOptimizer(l2o.MLPOptimizer(), **kwargs)
    seen = {}

    def spy(learned, fallback, **kwargs):
        seen.update(kwargs)
        return loss_guarded(learned, fallback, **kwargs)

    monkeypatch.setattr(l2o.guarded, "loss_guarded", spy)
    guarded = GuardedOptimizer(l2o.MLPOptimizer(), optax.sgd(0.5), smoothing=0.25,
                               switch_gap=0.01, reset_gap=0.3, alone_run=False)
    guarded.as_optax(guarded.init_meta_params(jax.random.key(0)), num_steps=10)
    assert seen == {"shadow": True, "smoothing": 0.25, "switch_gap": 0.01, "reset_gap": 0.3,
                    "alone_run": False}


def scripted(moves):
    """A rule that ignores the gradient: step ``t`` moves every coordinate by ``moves[t]``
    (0 after the last)."""
    moves = jnp.asarray(moves, jnp.float32)

    def init(params):
        return jnp.zeros((), jnp.int32)

    def update(updates, count, params=None):
        move = jnp.where(count < moves.shape[0], moves[jnp.minimum(count, moves.shape[0] - 1)], 0.0)
        return jax.tree.map(lambda u: jnp.full_like(u, move), updates), count + 1

    return optax.GradientTransformation(init, update)


def test_alone_run_keeps_a_trajectory_that_the_restarts_throw_away():
    """f(x) = x^2 / 2 from x = 1. The learned rule climbs to x = 4 in 3 steps, then jumps
    to the optimum 0; the fallback SGD(0.05) shrinks x by 0.95 per step. The learned run is
    restarted from the fallback's point while it climbs and then jumps from there (to -3.1,
    behind again); the alone run, never restarted, reaches 0 and is followed once its
    running mean leads."""
    loss_fn = lambda p: 0.5 * p["x"] ** 2  # noqa: E731
    fallback = optax.sgd(0.05)

    def run(tx, steps=24):
        params = {"x": jnp.float32(1.0)}
        state = tx.init(params)
        with jax.disable_jit():
            for _ in range(steps):
                grads = jax.grad(loss_fn)(params)
                updates, state = tx.update(grads, state, params, next_loss_fn=loss_fn)
                params = optax.apply_updates(params, updates)
        return float(params["x"]), state

    learned = scripted([1.0, 1.0, 1.0, -4.0])
    x, state = run(loss_guarded(learned, fallback, smoothing=0.5, alone_run=True))
    assert x == 0.0 and float(state.alone_params["x"]) == 0.0
    stats = guard_stats(state)
    assert int(stats["following"]) == 2 and bool(stats["used_learned"])
    assert int(stats["num_resets"]) >= 1 and int(stats["num_alone_resets"]) == 0
    assert 0 < int(stats["num_alone"]) <= int(stats["num_learned"])
    assert float(stats["chosen_loss"]) == 0.0
    # The fallback run is still the fallback alone.
    fallback_x, _ = run(fallback)
    assert float(state.fallback_params["x"]) == fallback_x
    # Without the alone run the learned trajectory is lost: the guard ends at the fallback's
    # level, 0.95^24 = 0.29.
    x, state = run(loss_guarded(learned, fallback, smoothing=0.5, alone_run=False))
    assert abs(x) > 0.1 and state.alone_params is None
    assert int(guard_stats(state)["num_alone"]) == 0


def test_alone_run_that_stops_being_finite_restarts_from_the_fallback_run():
    params = {"x": jnp.array([1.0, 2.0])}
    loss_fn = lambda p: jnp.sum(p["x"] ** 2)  # noqa: E731
    tx = loss_guarded(nan_producing(), optax.sgd(0.1), alone_run=True)
    updates, state = tx.update(jax.grad(loss_fn)(params), tx.init(params), params,
                               next_loss_fn=loss_fn)
    np.testing.assert_allclose(state.alone_params["x"], state.fallback_params["x"])
    stats = guard_stats(state)
    assert (int(stats["num_alone_resets"]), int(stats["num_resets"])) == (1, 1)
    assert int(stats["following"]) == 0
    np.testing.assert_allclose(updates["x"], -0.1 * jax.grad(loss_fn)(params)["x"], rtol=1e-6)
