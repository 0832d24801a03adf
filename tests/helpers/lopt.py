"""Learned-optimizer test pieces: tiny nested pytrees, losses, a plain training loop."""

import jax
import jax.numpy as jnp

import l2o

# Registered architectures; "guarded" wraps one of them and needs next_loss_fn.
ARCHITECTURES = [name for name in l2o.registry.names() if name != "guarded"]


def nested_params(key):
    """Conv kernel + dense weights + bias + scalar, mixed float32/bfloat16/float16."""
    k1, k2, k3 = jax.random.split(key, 3)
    return {
        "conv": {"kernel": 0.3 * jax.random.normal(k1, (3, 3, 2, 4)), "bias": jnp.zeros((4,), jnp.bfloat16)},
        "dense": {"w": (0.3 * jax.random.normal(k2, (8, 3))).astype(jnp.float16)},
        "scale": jax.random.normal(k3, ()),
    }


def quadratic_loss(params):
    """sum_i c_i x_i^2 / 2 over all leaves, curvature c_i in [0.1, 10] (log-spaced per leaf)."""
    total = 0.0
    for leaf in jax.tree.leaves(params):
        x = leaf.astype(jnp.float32).ravel()
        curvature = jnp.logspace(-1, 1, x.size)
        total = total + 0.5 * jnp.sum(curvature * x**2)
    return total


def train(lopt, theta, loss_fn, params, num_steps):
    """Run ``num_steps`` steps of ``lopt`` in one ``lax.scan``; returns (params, losses)."""

    def step(carry, _):
        params, state = carry
        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, state = lopt.update(theta, grads, state, params, loss)
        params = jax.tree.map(lambda p, u: (p + u).astype(p.dtype), params, updates)
        return (params, state), loss

    state = lopt.init(theta, params, num_steps)
    (params, _), losses = jax.lax.scan(step, (params, state), length=num_steps)
    return params, losses
