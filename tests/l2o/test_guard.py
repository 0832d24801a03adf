"""Loss guard (LGL2O): bad learned rules are contained, good ones kept, the theorem holds."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from helpers.guard import (
    BAD_RULES, SETTINGS, curvature_bounds, digits_problem, fallback_alone, gd_fallback,
    make_run, nan_producing, noisy_quadratic_problem, quadratic_problem, random_rule,
)
from l2o.guard import GuardState, guard_stats, loss_guarded

# Final loss gap f - f* must be within 1% of the fallback's, plus 1% of the initial gap:
# with Adam (no monotonicity) a rule that wins one early step by being genuinely lower
# changes the path, and at 1e-3 losses that shows as a large ratio either way (measured,
# 1% of steps taken: random rule 3.1x on the quadratic, 9.9x on Rosenbrock; exploding rule
# 0.18x on Rosenbrock).
TOLERANCE: dict[tuple[str, str], float] = {}
# Without the shadow run, on digits the candidates are compared on one minibatch: the
# ascent step wins 4-9% of the steps by noise and ends 4-10% above Adam alone.
PER_STEP_TOLERANCE = {("digits-adam", "sign_flipped"): 1.2}


# Digits compiles are the slow part: the two rules that are never taken run with --runslow.
BAD_CASES = [
    pytest.param(setting, rule, marks=[pytest.mark.slow] if slow else [])
    for setting in sorted(SETTINGS)
    for rule in sorted(BAD_RULES)
    for slow in [setting == "digits-adam" and rule in ("exploding", "random")]
]


@pytest.mark.parametrize("shadow", [True, False], ids=["shadow", "per-step"])
@pytest.mark.parametrize("setting, rule", BAD_CASES)
def test_bad_learned_rule_is_contained(setting, rule, shadow):
    make_problem, fallback, steps = SETTINGS[setting]
    problem = make_problem()
    run = make_run(loss_guarded(BAD_RULES[rule](), fallback, shadow=shadow), problem, steps)
    params, state, losses = run(problem.params, jax.random.key(1))
    final = float(problem.full_loss(params)) - problem.optimum
    alone = float(problem.full_loss(fallback_alone(setting))) - problem.optimum
    initial = float(problem.full_loss(problem.params)) - problem.optimum
    assert np.all(np.isfinite(losses)), f"non-finite training loss: {losses}"
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(params))
    tolerance = (TOLERANCE if shadow else PER_STEP_TOLERANCE).get((setting, rule), 1.01)
    assert final <= tolerance * alone + 1e-2 * initial, (final, alone)
    assert final < 0.5 * initial
    stats = guard_stats(state)
    assert int(stats["num_steps"]) == steps
    if rule == "nan":
        assert int(stats["num_learned"]) == 0
        if not shadow:
            assert final == pytest.approx(alone, rel=1e-4)


@pytest.mark.parametrize("shadow", [True, False], ids=["shadow", "per-step"])
@pytest.mark.parametrize("rule", sorted(BAD_RULES))
def test_gd_fallback_on_strongly_convex_quadratic_gives_the_theorem_rate(rule, shadow):
    """f(θ_{t+1}) - f* <= (1 - μ/L)(f(θ_t) - f*) with GD step 1/L: monotone and linear.

    A reset to the shadow keeps the rate (module doc): the shadow point is itself at
    most one GD step behind the guarded one.
    """
    problem = quadratic_problem()
    mu, lipschitz = curvature_bounds(problem)
    run = make_run(loss_guarded(BAD_RULES[rule](), gd_fallback(), shadow=shadow), problem, 50)
    _, _, losses = run(problem.params, jax.random.key(0))
    losses = np.asarray(losses, np.float64)
    gap = losses - problem.optimum
    rounding = 1e-6 * np.abs(losses[:-1])
    assert np.all(np.isfinite(losses))
    assert np.all(np.diff(losses) <= rounding)
    assert np.all(gap[1:] <= (1 - mu / lipschitz) * gap[:-1] + rounding)
    assert gap[-1] <= (1 - mu / lipschitz) ** 49 * gap[0] * (1 + 1e-3)


def test_sgd_fallback_on_noisy_quadratic_descends_in_expectation():
    problem = noisy_quadratic_problem()
    steps = 60
    keys = jax.random.split(jax.random.key(0), 128)

    def mean_gap(tx):  # seed-average of f(θ_t) - f*
        run = make_run(tx, problem, steps, record_full=True)
        curves = jax.vmap(lambda k: run(problem.params, k)[2])(keys)
        return np.asarray(curves.mean(0))[:, 1] - problem.optimum

    floor = mean_gap(gd_fallback())[-10:].mean()  # SGD alone at its noise floor
    for rule in ("sign_flipped", "random"):
        gap = mean_gap(loss_guarded(BAD_RULES[rule](), gd_fallback()))
        # While the signal dominates the noise (gap > 3x floor) the expected loss never rises;
        # later the 128-seed average wobbles by a few percent, as SGD alone does (measured
        # largest step-to-step rise: 6.2% alone, 6.1% with the guarded random rule).
        descending = gap[:-1] > 3 * floor
        assert descending.sum() >= 5
        assert np.all(np.diff(gap)[descending] <= 0), (rule, gap)
        assert np.all(gap[1:] <= 1.1 * gap[:-1]), (rule, gap)
        assert gap[-1] < 0.02 * gap[0]
        # At the floor the one-minibatch comparison is biased (module doc); measured here
        # 0.95x (sign-flipped) and 1.0004x (random) of SGD alone.
        assert gap[-10:].mean() <= 1.5 * floor, rule


@pytest.mark.parametrize("setting", ["quadratic-adam", "digits-adam"])
def test_fallback_as_learned_takes_learned_on_ties_and_equals_fallback(setting):
    make_problem, fallback, steps = SETTINGS[setting]
    problem = make_problem()
    run = make_run(loss_guarded(fallback, fallback, shadow=False), problem, steps)
    guarded_params, state, _ = run(problem.params, jax.random.key(1))
    alone_params = fallback_alone(setting)
    assert int(state.num_learned) == steps and int(state.num_fallback) == 0
    for a, b in zip(jax.tree.leaves(guarded_params), jax.tree.leaves(alone_params)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
    "make_problem, learned, fallback, steps",
    [
        (quadratic_problem, optax.adam(0.1), optax.sgd(0.1 / curvature_bounds(quadratic_problem())[1]), 100),
        (digits_problem, optax.adam(1e-2), optax.sgd(0.1), 100),
    ],
)
def test_better_learned_rule_is_kept(make_problem, learned, fallback, steps):
    """Tuned Adam as 'learned' over a slow SGD fallback: guard ~ learned alone, far below SGD.

    Measured (final loss): quadratic guard 3.5e-6 vs Adam 5.2e-6 vs SGD 9.3e-3; digits guard
    0.062 vs Adam 0.053 vs SGD 0.40 (minibatch noise lets SGD win 14% of the comparisons).
    """
    problem = make_problem()
    finals = {}
    for name, tx in (("guard", loss_guarded(learned, fallback)), ("learned", learned), ("fallback", fallback)):
        params, state, _ = make_run(tx, problem, steps)(problem.params, jax.random.key(1))
        finals[name] = float(problem.full_loss(params)) - problem.optimum
        if name == "guard":
            assert float(guard_stats(state)["learned_fraction"]) > 0.5
    initial_gap = float(problem.full_loss(problem.params)) - problem.optimum
    assert finals["guard"] <= finals["learned"] + 0.01 * initial_gap, finals
    assert finals["guard"] < 0.5 * finals["fallback"], finals


def test_counters_and_recorded_losses_follow_the_rule_exactly():
    """f = x^2/2, learned lr alternates 0.8 / 1.95, fallback lr 0.5: learned wins even steps.

    Candidates x(1 - lr): factors 0.2 (learned, even t), -0.95 (learned, odd t), 0.5.
    """
    learned = optax.sgd(lambda t: jnp.where(t % 2 == 0, 0.8, 1.95))
    tx = loss_guarded(learned, optax.sgd(0.5), shadow=False)
    loss_fn = lambda p: 0.5 * p["x"] ** 2  # noqa: E731
    params = {"x": jnp.float32(1.0)}
    state = tx.init(params)
    update = jax.jit(lambda g, s, p: tx.update(g, s, p, value=loss_fn(p), next_loss_fn=loss_fn))
    x = 1.0
    for t in range(6):
        grads = jax.grad(loss_fn)(params)
        updates, state = update(grads, state, params)
        params = optax.apply_updates(params, updates)
        expected_learned = 0.2 if t % 2 == 0 else -0.95
        assert bool(state.used_learned) == (t % 2 == 0)
        assert float(state.learned_loss) == pytest.approx(0.5 * (x * expected_learned) ** 2, rel=1e-5)
        assert float(state.fallback_loss) == pytest.approx(0.5 * (x * 0.5) ** 2, rel=1e-5)
        x *= 0.2 if t % 2 == 0 else 0.5
        assert float(params["x"]) == pytest.approx(x, rel=1e-5)
    stats = guard_stats(state)
    assert (int(stats["num_learned"]), int(stats["num_fallback"]), int(stats["num_steps"])) == (3, 3, 6)
    assert float(stats["learned_fraction"]) == 0.5
    assert float(stats["chosen_loss"]) == pytest.approx(0.5 * x**2, rel=1e-5)


def test_finite_learned_beats_non_finite_fallback_and_zero_update_when_both_fail():
    loss_fn = lambda p: jnp.exp(p["x"]).sum()  # noqa: E731
    params = {"x": jnp.array([1.0, 2.0])}
    grads = jax.grad(loss_fn)(params)
    tx = loss_guarded(optax.sgd(0.1), optax.sgd(-1e3))  # fallback ascends to exp(1e4) = inf
    updates, state = tx.update(grads, tx.init(params), params, next_loss_fn=loss_fn)
    assert bool(state.used_learned) and not np.isfinite(float(state.fallback_loss))
    np.testing.assert_allclose(updates["x"], -0.1 * grads["x"], rtol=1e-6)
    # Both fail: the per-step rule takes the fallback (a shadow run would jump to its own
    # next point instead, which is no better here: it ascends too).
    tx = loss_guarded(nan_producing(), optax.sgd(-1e3), shadow=False)
    updates, state = tx.update(grads, tx.init(params), params, next_loss_fn=loss_fn)
    assert not bool(state.used_learned) and int(state.num_fallback) == 1
    np.testing.assert_allclose(updates["x"], 1e3 * grads["x"], rtol=1e-6)
    tx = loss_guarded(nan_producing(), nan_producing())  # NaN coordinates become no move
    updates, state = tx.update(grads, tx.init(params), params, next_loss_fn=loss_fn)
    np.testing.assert_array_equal(updates["x"], [0.0, 0.0])


def test_vmap_over_a_batch_of_parameter_sets_matches_one_by_one():
    problem = quadratic_problem()
    tx = loss_guarded(random_rule(0.5), gd_fallback())
    run = make_run(tx, problem, 30)
    starts = jnp.stack([s * problem.params for s in (1.0, -0.5, 2.0, 0.1)])
    batched_params, batched_state, losses = jax.vmap(run, in_axes=(0, None))(starts, jax.random.key(0))
    stats = guard_stats(batched_state)
    assert stats["num_learned"].shape == (4,)
    np.testing.assert_array_equal(stats["num_steps"], [30] * 4)
    for i in range(4):
        params, state, one_losses = run(starts[i], jax.random.key(0))
        np.testing.assert_allclose(batched_params[i], params, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(losses[i], one_losses, rtol=1e-5)
        assert int(stats["num_learned"][i]) == int(state.num_learned)


def test_guard_stats_finds_the_guard_inside_a_chain_and_rejects_other_states():
    tx = optax.chain(loss_guarded(optax.sgd(0.1), optax.sgd(0.1)), optax.scale(1.0))
    params = {"x": jnp.ones(3)}
    state = tx.init(params)
    _, state = tx.update(params, state, params, next_loss_fn=lambda p: jnp.sum(p["x"] ** 2))
    assert int(guard_stats(state)["num_steps"]) == 1
    assert isinstance(state[0], GuardState)
    with pytest.raises(ValueError, match="exactly one GuardState"):
        guard_stats(optax.adam(1e-3).init(params))


def test_boundary_errors_say_how_to_call():
    params = {"x": jnp.ones(3)}
    tx = loss_guarded(optax.sgd(0.1))
    state = tx.init(params)
    with pytest.raises(ValueError, match=r"needs next_loss_fn.*next_loss_fn=lambda p: loss_fn\(p, next_batch\)"):
        tx.update(params, state, params, value=1.0)
    with pytest.raises(TypeError, match="callable"):
        tx.update(params, state, params, next_loss_fn=3.0)
    with pytest.raises(ValueError, match=r"scalar loss; got an array of shape \(3,\)"):
        tx.update(params, state, params, next_loss_fn=lambda p: p["x"])
    with pytest.raises(ValueError, match="needs the current params"):
        tx.update(params, state, next_loss_fn=lambda p: 0.0)
    with pytest.raises(TypeError, match="learned must be an optax GradientTransformation"):
        loss_guarded(lambda g: g)
    with pytest.raises(TypeError, match="fallback must be an optax GradientTransformation"):
        loss_guarded(optax.sgd(0.1), fallback=0.1)


def test_value_and_extra_args_reach_both_inner_optimizers():
    seen = {"learned": [], "fallback": []}

    def recording(tag):
        def update(updates, state, params=None, *, value=None, **extra):
            seen[tag].append((float(value), sorted(extra)))
            return updates, state

        return optax.GradientTransformationExtraArgs(lambda p: optax.EmptyState(), update)

    tx = loss_guarded(recording("learned"), recording("fallback"))
    params = {"x": jnp.ones(2)}
    next_loss_fn = lambda p: 0.25 * jnp.sum(p["x"])  # noqa: E731
    tx.update(params, tx.init(params), params, value=2.5, next_loss_fn=next_loss_fn, step_size=1)
    # The learned optimizer steps two runs: the learned run and the alone run.
    assert seen["learned"] == [(2.5, ["next_loss_fn", "step_size"])] * 2
    assert seen["fallback"] == [(2.5, ["next_loss_fn", "step_size"])]
    # Paired runs, second step: each run gets the loss at its own point (the fallback run,
    # followed, the caller's value; the learned runs their comparison losses of the last step).
    state = tx.init(params)
    updates, state = tx.update(params, state, params, value=2.5, next_loss_fn=next_loss_fn)
    params = optax.apply_updates(params, updates)  # the fallback run's point
    seen["learned"].clear(), seen["fallback"].clear()
    tx.update(params, state, params, value=1.5, next_loss_fn=next_loss_fn)
    assert not bool(state.used_learned)
    assert seen["fallback"] == [(1.5, ["next_loss_fn"])]
    assert seen["learned"] == [(float(state.learned_loss), ["next_loss_fn"]),
                               (float(state.alone_loss), ["next_loss_fn"])]
    # optax's value_fn (the current batch's loss) is passed on as given, beside it.
    seen["learned"].clear()
    tx.update(params, tx.init(params), params, value=2.5, next_loss_fn=next_loss_fn,
              value_fn=lambda p: 0.0)
    assert seen["learned"] == [(2.5, ["next_loss_fn", "value_fn"])] * 2


def test_value_fn_is_a_deprecated_alias_of_next_loss_fn():
    params = {"x": jnp.array([1.0, -2.0])}
    loss_fn = lambda p: jnp.sum(p["x"] ** 2)  # noqa: E731
    tx = loss_guarded(optax.sgd(0.1), optax.sgd(0.3))
    new = tx.update(params, tx.init(params), params, next_loss_fn=loss_fn)
    with pytest.warns(DeprecationWarning, match="pass next_loss_fn="):
        old = tx.update(params, tx.init(params), params, value_fn=loss_fn)
    for a, b in zip(jax.tree.leaves(new), jax.tree.leaves(old)):
        np.testing.assert_array_equal(a, b)
