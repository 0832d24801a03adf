"""Rosenbrock: classical values, minimum 0 at the known optimum for sampled configs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tasks import registry
from tasks.rosenbrock import rosenbrock_value


def test_classical_values():
    assert float(rosenbrock_value(jnp.array([1.0, 1.0]))) == 0.0
    # the classic start (-1.2, 1): 100 * (1 - 1.44)^2 + 2.2^2 = 24.2
    np.testing.assert_allclose(rosenbrock_value(jnp.array([-1.2, 1.0])), 24.2, rtol=1e-6)
    # 3-d chain at 0: two terms of (1 - 0)^2
    np.testing.assert_allclose(rosenbrock_value(jnp.zeros(3)), 2.0)


@pytest.mark.parametrize("name", ["rosenbrock", "rosenbrock-nd"])
@pytest.mark.parametrize("split", ["train", "heldout"])
def test_minimum_zero_at_argmin(name, split):
    family = registry.get(name, split=split)

    def check(key):
        task = family.task(family.sample(key))
        start = task.init(key)
        return (task.loss(task.argmin, key), jax.grad(task.loss)(task.argmin, key),
                task.loss(start, key), task.optimum)

    at_min, grad_at_min, at_start, optimum = jax.jit(jax.vmap(check))(
        jax.random.split(jax.random.key(0), 8))
    np.testing.assert_array_equal(at_min, 0.0)
    np.testing.assert_array_equal(optimum, 0.0)
    np.testing.assert_allclose(grad_at_min, 0.0, atol=1e-5)
    assert np.all(np.asarray(at_start) > 0.0)


def test_shift_and_scale_applied():
    family = registry.get("rosenbrock", scale_range=(3.0, 3.0), curvature_range=(100.0, 100.0))
    cfg = family.sample(jax.random.key(5))
    task = family.task(cfg)
    x = cfg.shift + jnp.array([-1.2, 1.0])
    np.testing.assert_allclose(task.eval_loss(x, None, "test"), 3.0 * 24.2, rtol=1e-5)
    np.testing.assert_allclose(task.argmin, cfg.shift + 1.0)


def test_bad_dim_is_rejected():
    with pytest.raises(ValueError, match="dim >= 2, got dim=1"):
        registry.get("rosenbrock", dim=1)
