"""Each baseline against a hand-written NumPy reference, step by step."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from baselines import optimizers, registry

STEPS = 7


def _grads_sequence(seed=0, steps=STEPS):
    rng = np.random.default_rng(seed)
    return [
        {"a": rng.normal(size=(3, 2)).astype(np.float32), "b": rng.normal(size=(4,)).astype(np.float32)}
        for _ in range(steps)
    ]


def _params0():
    rng = np.random.default_rng(42)
    return {"a": rng.normal(size=(3, 2)).astype(np.float32), "b": rng.normal(size=(4,)).astype(np.float32)}


def _run(tx, grads_seq, params):
    """Apply tx for len(grads_seq) steps (grads given, not computed); returns params per step."""
    update = jax.jit(lambda g, s, p: tx.update(g, s, p, value=jnp.float32(1.0), next_loss_fn=lambda q: 0.0))
    state = tx.init(params)
    history = []
    for grads in grads_seq:
        updates, state = update(grads, state, params)
        params = optax.apply_updates(params, updates)
        history.append(jax.tree.map(np.asarray, params))
    return history, state


def _close(got, want):
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-6, atol=1e-6)


def test_adam_matches_reference():
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    grads_seq, params = _grads_sequence(), _params0()
    history, _ = _run(optimizers.adam(lr), grads_seq, params)
    ref = {k: v.astype(np.float64) for k, v in params.items()}
    m = {k: np.zeros_like(v) for k, v in ref.items()}
    v = {k: np.zeros_like(x) for k, x in ref.items()}
    for t, (grads, got) in enumerate(zip(grads_seq, history), start=1):
        for k in ref:
            m[k] = b1 * m[k] + (1 - b1) * grads[k]
            v[k] = b2 * v[k] + (1 - b2) * grads[k] ** 2
            m_hat, v_hat = m[k] / (1 - b1**t), v[k] / (1 - b2**t)
            ref[k] = ref[k] - lr * m_hat / (np.sqrt(v_hat) + eps)
        _close(got, ref)


@pytest.mark.parametrize("weight_decay", [0.0, 0.3])
def test_lion_matches_reference(weight_decay):
    lr, b1, b2 = 0.02, 0.9, 0.99
    grads_seq, params = _grads_sequence(1), _params0()
    history, _ = _run(optimizers.lion(lr, b1, b2, weight_decay=weight_decay), grads_seq, params)
    ref = {k: v.astype(np.float64) for k, v in params.items()}
    m = {k: np.zeros_like(v) for k, v in ref.items()}
    for grads, got in zip(grads_seq, history):
        for k in ref:
            c = b1 * m[k] + (1 - b1) * grads[k]
            ref[k] = ref[k] - lr * (np.sign(c) + weight_decay * ref[k])
            m[k] = b2 * m[k] + (1 - b2) * grads[k]
        _close(got, ref)


def test_sgd_momentum_matches_reference():
    lr, mu = 0.1, 0.9
    grads_seq, params = _grads_sequence(2), _params0()
    history, _ = _run(optimizers.sgd(lr, momentum=mu), grads_seq, params)
    ref = {k: v.astype(np.float64) for k, v in params.items()}
    velocity = {k: np.zeros_like(v) for k, v in ref.items()}
    for grads, got in zip(grads_seq, history):
        for k in ref:
            velocity[k] = mu * velocity[k] + grads[k]
            ref[k] = ref[k] - lr * velocity[k]
        _close(got, ref)


@pytest.mark.parametrize("k, alpha", [(3, 0.5), (2, 0.8)])
def test_lookahead_sgd_matches_reference_and_keeps_slow_weights(k, alpha):
    lr = 0.1
    grads_seq, params = _grads_sequence(3, steps=10), _params0()
    tx = optimizers.lookahead(optimizers.sgd(lr), sync_period=k, slow_step_size=alpha)
    state = tx.init(params)
    update = jax.jit(lambda g, s, p: tx.update(g, s, p, value=jnp.float32(0.0)))
    fast = {key: v.astype(np.float64) for key, v in params.items()}
    slow = {key: v.copy() for key, v in fast.items()}
    for t, grads in enumerate(grads_seq, start=1):
        updates, state = update(grads, state, params)
        params = optax.apply_updates(params, updates)
        for key in fast:
            fast[key] = fast[key] - lr * grads[key]
        if t % k == 0:
            for key in fast:
                slow[key] = slow[key] + alpha * (fast[key] - slow[key])
                fast[key] = slow[key].copy()
            _close(jax.tree.map(np.asarray, params), slow)  # fast restarts at slow
        _close(jax.tree.map(np.asarray, params), fast)
        _close(jax.tree.map(np.asarray, optimizers.lookahead_slow_params(state)), slow)
        _close(jax.tree.map(np.asarray, optimizers.eval_params(state, params)), slow)
    assert int(state.count) == len(grads_seq)


def test_lookahead_adam_keeps_inner_state_across_syncs():
    lr, k, alpha = 0.05, 2, 0.5
    grads_seq, params = _grads_sequence(4, steps=6), _params0()
    history, _ = _run(optimizers.lookahead(optimizers.adam(lr), k, alpha), grads_seq, params)
    adam_ref = optax.adam(lr)  # inner reference updates, state never reset
    inner_state = adam_ref.init(params)
    fast = jax.tree.map(np.asarray, params)
    slow = dict(fast)
    for t, (grads, got) in enumerate(zip(grads_seq, history), start=1):
        updates, inner_state = adam_ref.update(grads, inner_state, fast)
        fast = jax.tree.map(lambda p, u: np.asarray(p + u), fast, updates)
        if t % k == 0:
            slow = jax.tree.map(lambda s, f: s + alpha * (f - s), slow, fast)
            fast = dict(slow)
        _close(got, fast)


def test_eval_params_is_identity_for_plain_states():
    params = _params0()
    state = optimizers.adam(1e-3).init(params)
    assert optimizers.eval_params(state, params) is params
    with pytest.raises(TypeError, match="LookaheadState"):
        optimizers.lookahead_slow_params(state)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: optimizers.lookahead(optimizers.adam(1e-3), sync_period=0),
         "sync_period must be a positive int"),
        (lambda: optimizers.lookahead(optimizers.adam(1e-3), slow_step_size=1.5),
         r"slow_step_size must lie in \(0, 1\]"),
    ],
)
def test_bad_hyperparameters_raise(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_baselines_are_optax_with_optax_argument_order():
    assert (optimizers.adam, optimizers.lion, optimizers.sgd) == (optax.adam, optax.lion, optax.sgd)
    # lion(learning_rate, b1, b2, weight_decay): a second positional argument is b1.
    grads_seq, params = _grads_sequence(5), _params0()
    got, _ = _run(optimizers.lion(3e-4, 0.5), grads_seq, params)
    want, _ = _run(optax.lion(learning_rate=3e-4, b1=0.5, b2=0.99, weight_decay=1e-3), grads_seq, params)
    _close(got[-1], want[-1])
    decayed, _ = _run(optimizers.lion(3e-4, 0.5, weight_decay=0.9), grads_seq, params)
    assert not np.allclose(decayed[-1]["a"], got[-1]["a"])


def test_lookahead_old_argument_names_warn_and_still_work():
    grads_seq, params = _grads_sequence(6, steps=4), _params0()
    new, _ = _run(optimizers.lookahead(optimizers.sgd(0.1), 2, 0.8), grads_seq, params)
    with pytest.warns(DeprecationWarning, match="use (sync_period|slow_step_size)") as caught:
        old = optimizers.lookahead(optimizers.sgd(0.1), k=2, alpha=0.8)
    assert len(caught) == 2
    old, _ = _run(old, grads_seq, params)
    _close(old[-1], new[-1])
    with pytest.warns(DeprecationWarning, match="use fast_optimizer"):
        optimizers.lookahead(inner=optimizers.sgd(0.1))
    with pytest.warns(DeprecationWarning, match="use learning_rate"):
        spec = registry.get("adam").with_grid(lr=(1e-3,))
    assert spec.grid == {"learning_rate": (1e-3,)}


@pytest.mark.parametrize("name", registry.names())
def test_registry_specs_build_and_step(name):
    spec = registry.get(name)
    assert set(spec.defaults) == set(spec.grid)
    assert len(spec.grid_points()) == int(np.prod([len(v) for v in spec.grid.values()]))
    tx = spec.make(**spec.defaults)
    params = {"w": jnp.ones(3)}
    state = tx.init(params)
    updates, _ = tx.update({"w": jnp.ones(3)}, state, params, value=jnp.float32(1.0), next_loss_fn=lambda p: 0.0)
    assert np.all(np.asarray(updates["w"]) < 0)  # a descent step on a positive gradient
    assert spec.eval_params(state, params) is params or name == "lookahead"


def test_registry_rejects_unknown_names():
    with pytest.raises(KeyError, match="unknown baseline 'adamw'"):
        registry.get("adamw")
    with pytest.raises(ValueError, match="unknown"):
        registry.get("adam").with_grid(momentum=(0.9,))
    assert registry.log_grid(1e-4, 1e-1, 4) == pytest.approx((1e-4, 1e-3, 1e-2, 1e-1))
