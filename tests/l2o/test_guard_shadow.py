"""Shadow run of the loss guard: exact resets, smoothing, and the held-out case it fixes."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import l2o
import tasks
from baselines.evaluate import evaluate_grid
from l2o import GuardedOptimizer, guard_stats, loss_guarded
from l2o.guard_state import _find_guard_state

from helpers.guard import SETTINGS, make_run, nan_producing


def constant_rule(step=1.0):
    """u = +step on every coordinate, whatever the gradient."""
    return optax.stateless(lambda updates, params: jax.tree.map(
        lambda g: jnp.full_like(g, step), updates))


def two_steps(smoothing):
    """Two hand-checked steps on a scalar x (fallback SGD lr 0.5, momentum 0.25).

    Step 0, from x=0 with g=-1 and L0(x) = (x-1)^2/2: learned candidate 1 (L0 = 0),
    fallback 0.5 (L0 = 0.125): learned taken. Shadow at 0: l_S = 0.5, g_S = -1, moves
    to 0.5. Gap 0 - 0.5 = -0.5.
    Step 1, from x=1 with g=1 and L1(x) = x^2/2: learned candidate 2 (L1 = 2); fallback
    trace 1 + 0.25 (-1) = 0.75, candidate 0.625 (L1 = 0.1953125): fallback taken. Shadow
    at 0.5: l_S = 0.125, g_S = 0.5, trace 0.5 + 0.25 (-1) = 0.25, moves to 0.375.
    Gap 0.1953125 - 0.125 = 0.0703125 > 0.
    """
    tx = loss_guarded(constant_rule(), optax.sgd(0.5, momentum=0.25), smoothing=smoothing)
    params = {"x": jnp.float32(0.0)}
    state = tx.init(params)
    losses = [lambda p: 0.5 * (p["x"] - 1.0) ** 2, lambda p: 0.5 * p["x"] ** 2]
    for grad, next_loss_fn in zip((-1.0, 1.0), losses):
        updates, state = tx.update({"x": jnp.float32(grad)}, state, params, next_loss_fn=next_loss_fn)
        params = optax.apply_updates(params, updates)
    return float(params["x"]), state


def fallback_trace(state):
    """The momentum buffer of ``optax.sgd(momentum=...)``'s state."""
    return float(jax.tree.leaves(state)[0])


def test_reset_jumps_to_the_shadow_and_takes_its_fallback_state():
    x, state = two_steps(smoothing=0.0)  # running gap = step gap = 0.0703125 > 0
    assert x == 0.375  # the shadow's point after its step, not the fallback's 0.625
    assert fallback_trace(state.fallback_state) == 0.25  # the shadow's trace, not 0.75
    assert fallback_trace(state.shadow_state) == 0.25
    assert float(state.shadow_params["x"]) == 0.375
    assert (int(state.num_learned), int(state.num_fallback), int(state.num_resets)) == (1, 0, 1)
    assert bool(state.reset) and not bool(state.used_learned)
    assert float(state.learned_loss) == 2.0 and float(state.fallback_loss) == 0.1953125
    assert float(state.shadow_loss) == 0.125
    assert float(state.running_gap) == 0.0  # cleared by the reset
    stats = guard_stats(state)
    assert int(stats["num_steps"]) == 2 and float(stats["reset_fraction"]) == 0.5
    assert float(stats["chosen_loss"]) == 0.125


def test_smoothing_keeps_a_run_that_was_ahead():
    # Running gap 0.5 * (0.5 * -0.5) + 0.5 * 0.0703125 = -0.08984375 <= 0: no reset.
    x, state = two_steps(smoothing=0.5)
    assert x == 0.625  # the fallback candidate
    assert fallback_trace(state.fallback_state) == 0.75
    assert float(state.shadow_params["x"]) == 0.375 and fallback_trace(state.shadow_state) == 0.25
    assert (int(state.num_learned), int(state.num_fallback), int(state.num_resets)) == (1, 1, 0)
    assert not bool(state.reset)
    assert float(state.running_gap) == -0.08984375


@pytest.mark.parametrize("smoothing", [0.0, 0.5])
def test_non_finite_guarded_point_resets_whatever_the_running_gap(smoothing):
    tx = loss_guarded(nan_producing(), optax.sgd(0.5), smoothing=smoothing)
    params = {"x": jnp.float32(1.0)}
    state = tx.init(params)
    # Both candidates NaN on this comparison batch except at the shadow point (x = 1).
    next_loss_fn = lambda p: jnp.where(p["x"] == 1.0, 0.5, jnp.nan)  # noqa: E731
    updates, state = tx.update({"x": jnp.float32(1.0)}, state, params, next_loss_fn=next_loss_fn)
    assert bool(state.reset)
    assert float(optax.apply_updates(params, updates)["x"]) == 1.0  # shadow: zero gradient


@pytest.mark.parametrize("setting", ["quadratic-adam", "rosenbrock-adam"])
def test_shadow_of_a_rule_that_never_wins_is_the_fallback_run(setting):
    """Noise-free comparison: a reset lands on the fallback candidate itself."""
    make_problem, fallback, steps = SETTINGS[setting]
    problem = make_problem()
    problem = problem._replace(loss=lambda params, key: problem.full_loss(params))
    alone, _, _ = make_run(fallback, problem, steps)(problem.params, jax.random.key(1))
    guarded, state, _ = make_run(loss_guarded(nan_producing(), fallback), problem, steps)(
        problem.params, jax.random.key(1))
    assert int(state.num_learned) == 0
    for a, b in zip(jax.tree.leaves(guarded), jax.tree.leaves(alone)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_smoothing_is_validated_and_reaches_the_optax_form(monkeypatch):
    for bad in (-0.1, 1.0, "0.5"):
        with pytest.raises(ValueError, match=r"smoothing must be a float in \[0, 1\)"):
            loss_guarded(optax.sgd(0.1), optax.sgd(0.1), smoothing=bad)
        with pytest.raises(ValueError, match="smoothing"):
            GuardedOptimizer(l2o.MLPOptimizer(), smoothing=bad)
    seen = {}

    def spy(learned, fallback, **kwargs):
        seen.update(kwargs)
        return loss_guarded(learned, fallback, **kwargs)

    monkeypatch.setattr(l2o.guarded, "loss_guarded", spy)
    guarded = GuardedOptimizer(l2o.MLPOptimizer(), optax.sgd(0.5), shadow=True, smoothing=0.25)
    guarded.as_optax(guarded.init_meta_params(jax.random.key(0)), num_steps=10)
    assert seen == {"shadow": True, "smoothing": 0.25}


def shipped_mlp_image_on(split, smoothing_values):
    """Full-train loss at step 200 of each run (``[4 tasks, 2 seeds]``), shipped
    ``mlp-image`` on ``split``: Adam alone, the per-step guard, and for each smoothing the
    shadow guard (``s``), its shadow run (``("shadow", s)``: the fallback alone on the
    batches shifted by one) and its mean number of resets (``("resets", s)``)."""
    lopt, theta, _ = l2o.load_pretrained("mlp-image")
    family = tasks.registry.get("mlp-digits", split=split)
    fallback = optax.adam(0.0316)  # the lr the comparison harness tunes on train tasks
    rows = {"adam": (lambda: fallback, None),
            "per-step": (lambda: loss_guarded(lopt.as_optax(theta, 200), fallback,
                                              shadow=False), None)}
    for s in smoothing_values:
        def make(s=s):
            return loss_guarded(lopt.as_optax(theta, 200), fallback, smoothing=s)
        rows[s] = (make, None)
        rows[("shadow", s)] = (make, lambda state, params: _find_guard_state(state).shadow_params)
    out = {}
    for name, (make, eval_params) in rows.items():
        stats = guard_stats if isinstance(name, float) else None
        result = evaluate_grid(make, None, family, 200, 2, 4, jax.random.PRNGKey(3),
                               eval_params, 1, stats)
        out[name] = result.eval_train_loss[..., -1]
        if stats:
            out[("resets", name)] = float(result.final_stats["num_resets"].mean())
    return out


def test_shadow_guard_ends_below_its_shadow_where_the_per_step_guard_stalls():
    """Held-out architecture (64-64-64 ReLU): the shipped rule wins steps but leads where
    Adam is slow, and Adam at this lr is itself erratic (final losses spread over 100x
    across batch orders: the shadow, Adam on the batches shifted by one, is the fair
    reference). Measured, mean final loss: Adam 0.0234, per-step guard 0.167, shadow
    guard 0.0331 with its shadow at 0.0473; per run, guard / shadow from 0.25 to 1.18
    (the comparison is on one minibatch and lenient by one step)."""
    out = shipped_mlp_image_on("heldout", [0.5])
    assert out["per-step"].mean() > 2 * out["adam"].mean()
    assert out[0.5].mean() <= out[("shadow", 0.5)].mean()
    assert np.all(out[0.5] <= 1.5 * out[("shadow", 0.5)])
    assert out[("resets", 0.5)] > 0


@pytest.mark.slow
def test_smoothing_cuts_resets_in_distribution():
    """Training family: the learned rule is far ahead, so resets are noise. Measured,
    mean final loss: Adam 0.0029, per-step guard 0.00019; shadow guard 0.00036 with
    smoothing 0 (11.4 resets per run), 0.00019 with 0.5 (2.5 resets)."""
    out = shipped_mlp_image_on("train", [0.0, 0.5])
    assert out[("resets", 0.5)] < 0.5 * out[("resets", 0.0)]
    assert out[0.5].mean() < 0.2 * out["adam"].mean()
