"""Property-based tests: learned-optimizer updates over random pytrees, the guard's rule.

Shapes come from a few fixed pytree buckets, so a jitted update compiles once per bucket
and dtype mix while hypothesis varies nesting choice, dtypes and values (NaN, inf, huge,
subnormal gradients included).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import l2o

from helpers.reliability import SMALL_LSTM, SMALL_MLP

SETTINGS = settings(max_examples=20, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# Nested pytrees of small leaves: (name, leaf shapes, builder from a list of leaves).
BUCKETS = [
    ("dense", [(2, 3), (3,)], lambda l: {"w": l[0], "b": l[1]}),
    ("nested", [(), (4,), (1, 2)], lambda l: [l[0], {"k": l[1], "inner": (l[2],)}]),
    ("deep", [(5,), (2, 2), (3,), (1,)],
     lambda l: {"a": {"b": {"c": l[0]}}, "d": [l[1], (l[2], {"e": l[3]})]}),
]
DTYPE_MIXES = {
    "float32": lambda i: jnp.float32,
    "half": lambda i: (jnp.bfloat16, jnp.float16)[i % 2],
}
UPDATES = {lopt.name: jax.jit(lopt.update) for lopt in (SMALL_MLP, SMALL_LSTM)}
THETAS = {lopt.name: lopt.init_meta_params(jax.random.key(0)) for lopt in (SMALL_MLP, SMALL_LSTM)}

GRAD_VALUES = st.floats(width=32, allow_nan=True, allow_infinity=True, allow_subnormal=True)
PARAM_VALUES = st.floats(min_value=-10.0, max_value=10.0, width=32)


@st.composite
def problems(draw):
    """(bucket name, params, grads): same structure, leaves in one dtype mix."""
    name, shapes, build = draw(st.sampled_from(BUCKETS))
    dtype_of = DTYPE_MIXES[draw(st.sampled_from(sorted(DTYPE_MIXES)))]
    params, grads = [], []
    for i, shape in enumerate(shapes):
        dtype = dtype_of(i)
        p = draw(hnp.arrays(np.float32, shape, elements=PARAM_VALUES))
        g = draw(hnp.arrays(np.float32, shape, elements=GRAD_VALUES))
        params.append(jnp.asarray(p, dtype))
        grads.append(jnp.asarray(g).astype(dtype))  # float16 overflow -> inf is intended
    return name, build(params), build(grads)


@pytest.mark.parametrize("lopt", [SMALL_MLP, SMALL_LSTM], ids=lambda lopt: lopt.name)
@SETTINGS
@given(problem=problems())
def test_updates_keep_structure_dtype_and_are_finite(lopt, problem):
    _, params, grads = problem
    theta, update = THETAS[lopt.name], UPDATES[lopt.name]
    state = lopt.init(theta, params, 8)
    for _ in range(2):
        updates, state = update(theta, grads, state, params, jnp.float32(1.5))
        assert jax.tree.structure(updates) == jax.tree.structure(params)
        for u, p in zip(jax.tree.leaves(updates), jax.tree.leaves(params)):
            assert u.shape == p.shape and u.dtype == p.dtype
            assert bool(jnp.all(jnp.isfinite(u))), (u, p)
        params = optax.apply_updates(params, updates)
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(state))


def _constant(value):
    """An optax transform whose update is ``value`` in every coordinate."""
    return optax.GradientTransformation(
        lambda params: optax.EmptyState(),
        lambda updates, state, params=None: (
            jax.tree.map(lambda u: jnp.full_like(u, value), updates), state),
    )


@functools.partial(jax.jit, static_argnames="shadow")
def _guarded_step(learned_loss, fallback_loss, learned_step, shadow=False):
    """Guard between a learned step ``learned_step`` and a fallback step -1 from x = 0; the
    comparison loss is ``learned_loss`` at x > 0 and ``fallback_loss`` elsewhere."""
    tx = l2o.loss_guarded(_constant(learned_step), _constant(-1.0), shadow=shadow)
    params = {"x": jnp.zeros(())}
    state = tx.init(params)

    def value_fn(p):
        return jnp.where(p["x"] > 0, learned_loss, fallback_loss)

    updates, state = tx.update(params, state, params, value=0.0, next_loss_fn=value_fn)
    return updates["x"], l2o.guard_stats(state)


LOSSES = st.one_of(
    st.floats(width=32, allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1.0, np.inf, -np.inf, np.nan]),
)


@SETTINGS
@given(learned_loss=LOSSES, fallback_loss=LOSSES, learned_step=st.sampled_from([1.0, np.nan, np.inf]))
def test_guard_takes_learned_iff_its_step_and_loss_are_finite_and_not_worse(
        learned_loss, fallback_loss, learned_step):
    update, stats = _guarded_step(np.float32(learned_loss), np.float32(fallback_loss),
                                  np.float32(learned_step))
    a, b = np.float32(learned_loss), np.float32(fallback_loss)
    # The rule: learned iff its step and loss are finite and L_learned <= L_fallback; a
    # non-finite L_fallback (NaN) loses to any finite L_learned.
    learned = bool(np.isfinite(learned_step) and np.isfinite(a) and (a <= b or np.isnan(b)))
    assert bool(stats["used_learned"]) == learned
    assert int(stats["num_learned"]) == int(learned) and int(stats["num_fallback"]) == int(not learned)
    assert float(update) == (1.0 if learned else -1.0)


@SETTINGS
@given(learned_loss=LOSSES, fallback_loss=LOSSES, learned_step=st.sampled_from([1.0, np.nan, np.inf]))
def test_paired_runs_never_follow_a_non_finite_run_and_follow_a_clear_lead(
        learned_loss, fallback_loss, learned_step):
    update, stats = _guarded_step(np.float32(learned_loss), np.float32(fallback_loss),
                                  np.float32(learned_step), shadow=True)
    a, b = np.float32(learned_loss), np.float32(fallback_loss)
    learned_ok = bool(np.isfinite(learned_step) and np.isfinite(a))
    followed = bool(stats["used_learned"])
    assert float(update) == (1.0 if followed else -1.0)  # always one run's own point
    assert not followed or learned_ok
    if learned_ok and not np.isfinite(b):
        assert followed
    if learned_ok and np.isfinite(b) and min(a, b) > 1e-30:  # first step: the losses decide
        if a > 1.01 * b:
            assert not followed
        if a < 0.99 * b:
            assert followed
    assert int(stats["num_steps"]) == 1
