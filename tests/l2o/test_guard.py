"""Loss guard (LGL2O): bad learned rules are contained, good ones kept, the theorem holds."""

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from sklearn.datasets import load_digits

from l2o.guard import GuardState, guard_stats, loss_guarded

# ----------------------------------------------------------------------------- problems


class Problem(NamedTuple):
    """``loss(params, key)`` on a minibatch; ``full_loss(params)`` for the final score."""

    name: str
    params: dict
    loss: Callable
    full_loss: Callable


CURVATURE = jnp.logspace(-1.0, 1.0, 10)  # mu = 0.1, L = 10


def quadratic_problem():
    """f(x) = 1/2 sum_i c_i x_i^2, c log-spaced in [0.1, 10]; minimum 0 at x = 0."""

    def full_loss(p):
        return 0.5 * jnp.sum(CURVATURE * p["x"] ** 2)

    return Problem("quadratic", {"x": jnp.linspace(-2.0, 2.0, 10)}, lambda p, k: full_loss(p), full_loss)


def rosenbrock_problem():
    """(1 - x)^2 + 100 (y - x^2)^2 from (-1.2, 1); minimum 0 at (1, 1)."""

    def full_loss(p):
        x, y = p["xy"][0], p["xy"][1]
        return (1.0 - x) ** 2 + 100.0 * (y - x**2) ** 2

    return Problem("rosenbrock", {"xy": jnp.array([-1.2, 1.0])}, lambda p, k: full_loss(p), full_loss)


def digits_problem():
    """64-16-10 tanh MLP on scikit-learn's digits, cross-entropy on minibatches of 64."""
    data = load_digits()
    images = jnp.asarray(data.data / 16.0, jnp.float32)
    labels = jnp.asarray(data.target)
    k1, k2 = jax.random.split(jax.random.key(0))
    params = {
        "w1": jax.random.normal(k1, (64, 16)) / 8.0,
        "b1": jnp.zeros(16),
        "w2": jax.random.normal(k2, (16, 10)) / 4.0,
        "b2": jnp.zeros(10),
    }

    def batch_loss(p, x, y):
        logits = jnp.tanh(x @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"]
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    def loss(p, key):
        idx = jax.random.randint(key, (64,), 0, images.shape[0])
        return batch_loss(p, images[idx], labels[idx])

    return Problem("mlp-digits", params, loss, lambda p: batch_loss(p, images, labels))


def make_run(tx, problem, steps, record_full=False):
    """jit ``run(params, key) -> (params, state, losses[steps])``: the guard's training loop.

    ``losses[t]`` is the minibatch loss at ``θ_t``, or with ``record_full`` the pair
    (minibatch loss, ``full_loss(θ_t)``) as ``[steps, 2]``.
    """
    tx = optax.with_extra_args_support(tx)

    def run(params, key):
        def step(carry, t):
            params, state = carry
            batch_key = jax.random.fold_in(key, t)
            next_key = jax.random.fold_in(key, t + 1)
            loss, grads = jax.value_and_grad(problem.loss)(params, batch_key)
            updates, state = tx.update(
                grads, state, params, value=loss, value_fn=lambda p: problem.loss(p, next_key)
            )
            out = jnp.stack([loss, problem.full_loss(params)]) if record_full else loss
            return (optax.apply_updates(params, updates), state), out

        (params, state), losses = jax.lax.scan(step, (params, tx.init(params)), jnp.arange(steps))
        return params, state, losses

    return jax.jit(run)


# ------------------------------------------------------------------- bad learned rules


def sign_flipped(lr=0.1):
    """Gradient ascent: u = +lr g."""
    return optax.sgd(-lr)


def exploding(lr=0.1):
    """Adam's step times 1e3."""
    return optax.chain(optax.adam(lr), optax.scale(1e3))


def nan_producing():
    """Every update is NaN."""
    return optax.stateless(lambda updates, params: jax.tree.map(lambda g: g * jnp.nan, updates))


def random_rule(scale=1.0):
    """u ~ N(0, scale^2) per coordinate, fresh noise each step (key in the state)."""

    def init(params):
        return jax.random.key(42)

    def update(updates, key, params=None):
        key, sub = jax.random.split(key)
        leaves, treedef = jax.tree.flatten(updates)
        keys = jax.random.split(sub, len(leaves))
        noise = [scale * jax.random.normal(k, g.shape, g.dtype) for k, g in zip(keys, leaves)]
        return jax.tree.unflatten(treedef, noise), key

    return optax.GradientTransformation(init, update)


BAD_RULES = {
    "sign_flipped": sign_flipped,
    "exploding": exploding,
    "nan": nan_producing,
    "random": random_rule,
}

# name -> (problem, fallback, steps)
SETTINGS = {
    "quadratic-sgd": (quadratic_problem, optax.sgd(0.1), 100),
    "quadratic-adam": (quadratic_problem, optax.adam(0.05), 100),
    "rosenbrock-adam": (rosenbrock_problem, optax.adam(0.02), 300),
    "digits-adam": (digits_problem, optax.adam(1e-2), 100),
}


@pytest.fixture(scope="module")
def fallback_alone():
    """Final params of each setting's fallback alone from key 1 (computed once per setting)."""
    cache = {}

    def get(setting):
        if setting not in cache:
            make_problem, fallback, steps = SETTINGS[setting]
            problem = make_problem()
            cache[setting] = make_run(fallback, problem, steps)(problem.params, jax.random.key(1))[0]
        return cache[setting]

    return get


# On digits the candidates are compared on one 64-example minibatch: the gentle ascent
# step then wins some steps by noise (about 9%) and ends about 10% above Adam alone;
# every other bad rule is never taken. Deterministic problems: within 1%.
TOLERANCE = {("digits-adam", "sign_flipped"): 1.2}


# Digits compiles are the slow part: the two rules that are never taken run with --runslow.
BAD_CASES = [
    pytest.param(setting, rule, marks=[pytest.mark.slow] if slow else [])
    for setting in sorted(SETTINGS)
    for rule in sorted(BAD_RULES)
    for slow in [setting == "digits-adam" and rule in ("exploding", "random")]
]


@pytest.mark.parametrize("setting, rule", BAD_CASES)
def test_bad_learned_rule_is_contained(setting, rule, fallback_alone):
    make_problem, fallback, steps = SETTINGS[setting]
    problem = make_problem()
    run = make_run(loss_guarded(BAD_RULES[rule](), fallback), problem, steps)
    params, state, losses = run(problem.params, jax.random.key(1))
    final = float(problem.full_loss(params))
    alone = float(problem.full_loss(fallback_alone(setting)))
    assert np.all(np.isfinite(losses)), f"non-finite training loss: {losses}"
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(params))
    assert final <= TOLERANCE.get((setting, rule), 1.01) * alone + 1e-6, (final, alone)
    assert final < 0.5 * float(problem.full_loss(problem.params))
    stats = guard_stats(state)
    assert int(stats["num_steps"]) == steps
    if rule in ("nan", "exploding"):
        assert int(stats["num_learned"]) == 0
        assert final == pytest.approx(alone, rel=1e-4)


@pytest.mark.parametrize("rule", sorted(BAD_RULES))
def test_gd_fallback_on_strongly_convex_quadratic_gives_the_theorem_rate(rule):
    """f(θ_{t+1}) <= (1 - αμ) f(θ_t) with α = 1/L = 0.1, μ = 0.1, f* = 0: monotone, linear."""
    problem = quadratic_problem()
    run = make_run(loss_guarded(BAD_RULES[rule](), optax.sgd(0.1)), problem, 100)
    _, _, losses = run(problem.params, jax.random.key(0))
    losses = np.asarray(losses, np.float64)
    assert np.all(np.isfinite(losses))
    assert np.all(losses[1:] <= losses[:-1] * (1 + 1e-6))
    assert np.all(losses[1:] <= (1 - 0.1 * 0.1) * losses[:-1] * (1 + 1e-6))
    assert losses[-1] <= 0.99**99 * losses[0]


def noisy_quadratic_problem(noise=0.05):
    """Minibatch loss 1/2 sum_i c_i (x_i - ξ_i)^2, ξ ~ N(0, noise^2); population f = 1/2 sum c x^2 + const."""

    def loss(p, key):
        return 0.5 * jnp.sum(CURVATURE * (p["x"] - noise * jax.random.normal(key, (10,))) ** 2)

    clean = quadratic_problem()
    return Problem("noisy-quadratic", clean.params, loss, clean.full_loss)


def test_sgd_fallback_on_noisy_quadratic_descends_in_expectation():
    problem = noisy_quadratic_problem()
    steps = 60
    keys = jax.random.split(jax.random.key(0), 128)

    def mean_curve(tx):
        run = make_run(tx, problem, steps, record_full=True)
        return np.asarray(jax.vmap(lambda k: run(problem.params, k)[2])(keys).mean(0))

    alone = mean_curve(optax.sgd(0.1))[:, 1]
    for rule, floor_ratio in (("sign_flipped", 2.0), ("random", 1.01)):
        population = mean_curve(loss_guarded(BAD_RULES[rule](), optax.sgd(0.1)))[:, 1]
        # Descent phase (signal >> noise): the seed-average population loss never increases.
        assert np.all(np.diff(population[:25]) <= 0), (rule, population[:25])
        assert population[-1] < 0.01 * population[0]
        # Near the noise floor the one-minibatch comparison has a selection bias (module
        # doc): the sign-flipped rule ends about 1.5x above SGD alone; random is never taken.
        assert population[-10:].mean() <= floor_ratio * alone[-10:].mean(), rule


@pytest.mark.parametrize("setting", ["quadratic-adam", "digits-adam"])
def test_fallback_as_learned_takes_learned_on_ties_and_equals_fallback(setting, fallback_alone):
    make_problem, fallback, steps = SETTINGS[setting]
    problem = make_problem()
    run = make_run(loss_guarded(fallback, fallback), problem, steps)
    guarded_params, state, _ = run(problem.params, jax.random.key(1))
    alone_params = fallback_alone(setting)
    assert int(state.num_learned) == steps and int(state.num_fallback) == 0
    for a, b in zip(jax.tree.leaves(guarded_params), jax.tree.leaves(alone_params)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(
    "make_problem, learned, fallback, steps, tolerance, fallback_final",
    [  # fallback_final: the SGD fallback alone, measured from the same start and key
        (quadratic_problem, optax.adam(0.1), optax.sgd(0.1), 100, 1.0, 0.0344),
        (rosenbrock_problem, optax.adam(0.05), optax.sgd(1e-3), 300, 1.0, 3.10),
        (digits_problem, optax.adam(3e-2), optax.sgd(0.1), 100, 1.1, 1.09),
    ],
)
def test_better_learned_rule_is_kept(make_problem, learned, fallback, steps, tolerance, fallback_final):
    """Tuned Adam as 'learned' over an SGD fallback: guard ~ learned alone, far below SGD."""
    problem = make_problem()
    key = jax.random.key(1)
    finals = {}
    for name, tx in (("guard", loss_guarded(learned, fallback)), ("learned", learned)):
        params, state, _ = make_run(tx, problem, steps)(problem.params, key)
        finals[name] = float(problem.full_loss(params))
        if name == "guard":
            assert float(guard_stats(state)["learned_fraction"]) > 0.5
    assert finals["guard"] <= tolerance * finals["learned"], finals
    assert finals["guard"] < 0.5 * fallback_final, finals


def test_counters_and_recorded_losses_follow_the_rule_exactly():
    """f = x^2/2, learned lr alternates 0.8 / 1.95, fallback lr 0.5: learned wins even steps.

    Candidates x(1 - lr): factors 0.2 (learned, even t), -0.95 (learned, odd t), 0.5.
    """
    learned = optax.sgd(lambda t: jnp.where(t % 2 == 0, 0.8, 1.95))
    tx = loss_guarded(learned, optax.sgd(0.5))
    loss_fn = lambda p: 0.5 * p["x"] ** 2  # noqa: E731
    params = {"x": jnp.float32(1.0)}
    state = tx.init(params)
    update = jax.jit(lambda g, s, p: tx.update(g, s, p, value=loss_fn(p), value_fn=loss_fn))
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
    updates, state = tx.update(grads, tx.init(params), params, value_fn=loss_fn)
    assert bool(state.used_learned) and not np.isfinite(float(state.fallback_loss))
    np.testing.assert_allclose(updates["x"], -0.1 * grads["x"], rtol=1e-6)
    tx = loss_guarded(nan_producing(), optax.sgd(-1e3))  # both fail: fallback, as the rule says
    updates, state = tx.update(grads, tx.init(params), params, value_fn=loss_fn)
    assert not bool(state.used_learned) and int(state.num_fallback) == 1
    np.testing.assert_allclose(updates["x"], 1e3 * grads["x"], rtol=1e-6)
    tx = loss_guarded(nan_producing(), nan_producing())  # NaN coordinates become no move
    updates, state = tx.update(grads, tx.init(params), params, value_fn=loss_fn)
    np.testing.assert_array_equal(updates["x"], [0.0, 0.0])


def test_vmap_over_a_batch_of_parameter_sets_matches_one_by_one():
    problem = quadratic_problem()
    tx = loss_guarded(random_rule(0.5), optax.sgd(0.1))
    run = make_run(tx, problem, 30)
    starts = {"x": jnp.stack([s * problem.params["x"] for s in (1.0, -0.5, 2.0, 0.1)])}
    batched_params, batched_state, _ = jax.vmap(run, in_axes=(0, None))(starts, jax.random.key(0))
    stats = guard_stats(batched_state)
    assert stats["num_learned"].shape == (4,)
    np.testing.assert_array_equal(stats["num_steps"], [30] * 4)
    for i in range(4):
        params, state, _ = run({"x": starts["x"][i]}, jax.random.key(0))
        np.testing.assert_allclose(batched_params["x"][i], params["x"], rtol=1e-5, atol=1e-7)
        assert int(stats["num_learned"][i]) == int(state.num_learned)


def test_guard_stats_finds_the_guard_inside_a_chain_and_rejects_other_states():
    tx = optax.chain(loss_guarded(optax.sgd(0.1), optax.sgd(0.1)), optax.scale(1.0))
    params = {"x": jnp.ones(3)}
    state = tx.init(params)
    _, state = tx.update(params, state, params, value_fn=lambda p: jnp.sum(p["x"] ** 2))
    assert int(guard_stats(state)["num_learned"]) == 1
    assert isinstance(state[0], GuardState)
    with pytest.raises(ValueError, match="exactly one GuardState"):
        guard_stats(optax.adam(1e-3).init(params))


def test_boundary_errors_say_how_to_call():
    params = {"x": jnp.ones(3)}
    tx = loss_guarded(optax.sgd(0.1))
    state = tx.init(params)
    with pytest.raises(ValueError, match=r"value_fn=lambda p: loss_fn\(p, next_batch\)"):
        tx.update(params, state, params, value=1.0)
    with pytest.raises(TypeError, match="callable"):
        tx.update(params, state, params, value_fn=3.0)
    with pytest.raises(ValueError, match=r"scalar loss; got an array of shape \(3,\)"):
        tx.update(params, state, params, value_fn=lambda p: p["x"])
    with pytest.raises(ValueError, match="needs the current params"):
        tx.update(params, state, value_fn=lambda p: 0.0)
    with pytest.raises(TypeError, match="learned must be an optax GradientTransformation"):
        loss_guarded(lambda g: g)
    with pytest.raises(TypeError, match="fallback must be an optax GradientTransformation"):
        loss_guarded(optax.sgd(0.1), fallback=0.1)


def test_value_and_extra_args_reach_both_inner_optimizers():
    seen = {}

    def recording(tag):
        def update(updates, state, params=None, *, value=None, **extra):
            seen[tag] = (value, sorted(extra))
            return updates, state

        return optax.GradientTransformationExtraArgs(lambda p: optax.EmptyState(), update)

    tx = loss_guarded(recording("learned"), recording("fallback"))
    params = {"x": jnp.ones(2)}
    tx.update(params, tx.init(params), params, value=2.5, value_fn=lambda p: 0.0, step_size=1)
    assert seen["learned"] == (2.5, ["step_size", "value_fn"])
    assert seen["fallback"] == (2.5, ["step_size", "value_fn"])
