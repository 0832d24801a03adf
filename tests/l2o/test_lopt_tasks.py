"""Untrained learned optimizers on every registered task family stay finite (and the
MLP optimizer, which starts as Adam, makes progress)."""

import functools

import jax
import jax.numpy as jnp
import pytest

import l2o
import tasks.registry
from helpers.lopt import ARCHITECTURES

LONG = {"quadratic", "rosenbrock", "mlp-digits"}  # 1,000 steps; the rest 50


def _run(lopt, theta, task, params, num_steps, key):
    def step(carry, key):
        params, state = carry
        loss, grads = jax.value_and_grad(task.loss)(params, key)
        updates, state = lopt.update(theta, grads, state, params, loss)
        return (jax.tree.map(jnp.add, params, updates), state), loss

    state = lopt.init(theta, params, num_steps)
    (params, _), losses = jax.lax.scan(step, (params, state), jax.random.split(key, num_steps))
    return params, losses


@pytest.mark.parametrize("family_name", tasks.registry.names())
@pytest.mark.parametrize("lopt_name", ARCHITECTURES)
def test_untrained_optimizer_on_registered_family(family_name, lopt_name):
    family = tasks.registry.get(family_name)
    task = family.sample_task(jax.random.key(0))
    lopt = l2o.registry.get(lopt_name)
    theta = lopt.init_meta_params(jax.random.key(1))
    num_steps = 1000 if family_name in LONG else 50
    params = task.init(jax.random.key(2))
    run = jax.jit(functools.partial(_run, lopt, task=task, num_steps=num_steps))
    final, losses = run(theta, params=params, key=jax.random.key(3))
    assert bool(jnp.all(jnp.isfinite(losses))), f"non-finite loss at step {int(jnp.argmin(jnp.isfinite(losses)))}"
    assert all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in jax.tree.leaves(final))
    if lopt_name == "mlp":
        window = max(num_steps // 10, 5)
        assert float(losses[-window:].mean()) < float(losses[:window].mean())
