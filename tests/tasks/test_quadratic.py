"""Quadratic families: known optimum, Hessian spectrum, Adam convergence, noise."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from tasks import registry
from tasks.quadratic import QuadraticConfig, build_quadratic


def _adam_run(task, lr, steps, key):
    opt = optax.adam(optax.cosine_decay_schedule(lr, steps))
    params = task.init(key)

    def step(carry, k):
        p, s = carry
        g = jax.grad(task.loss)(p, k)
        u, s = opt.update(g, s, p)
        return (optax.apply_updates(p, u), s), None

    (params, _), _ = jax.lax.scan(step, (params, opt.init(params)), jax.random.split(key, steps))
    return params


def test_spectrum_matches_condition_range():
    config = QuadraticConfig(dim=6, condition_range=(50.0, 50.0), scale_range=(2.0, 2.0))
    cfg = build_quadratic(config).sample(jax.random.key(3))
    eig = np.linalg.eigvalsh(np.asarray(cfg.hessian, np.float64))
    np.testing.assert_allclose(eig.max(), 2.0, rtol=1e-4)
    np.testing.assert_allclose(eig.max() / eig.min(), 50.0, rtol=1e-3)


def test_value_and_gradient_formula():
    family = registry.get("quadratic", min_value_range=(0.5, 1.5))
    cfg = family.sample(jax.random.key(0))
    task = family.task(cfg)
    x = task.init(jax.random.key(1))
    h, xs = np.asarray(cfg.hessian, np.float64), np.asarray(cfg.x_star, np.float64)
    d = np.asarray(x, np.float64) - xs
    expected = 0.5 * d @ h @ d + float(cfg.min_value)
    np.testing.assert_allclose(task.eval_loss(x, jax.random.key(2), "test"), expected, rtol=1e-5)
    # gradient of the noisy loss = H (x - x*) + noise_std * eps, eps from the key
    key = jax.random.key(7)
    eps = np.asarray(jax.random.normal(key, (10,)), np.float64)
    np.testing.assert_allclose(
        jax.grad(task.loss)(x, key), h @ d + float(cfg.noise_std) * eps, rtol=1e-4, atol=1e-5)
    # minimum value attained at x*
    assert float(task.optimum) >= 0.5
    np.testing.assert_allclose(task.loss(cfg.x_star, key), task.optimum, rtol=1e-6)


@pytest.mark.parametrize(
    "name, overrides",
    [("quadratic", {}), ("quadratic-lsq", {"rows": 20})],  # 20x10 W: well conditioned
)
def test_adam_reaches_known_optimum(name, overrides):
    family = registry.get(name, noise_range=(0.0, 0.0), **overrides)
    task = family.task(family.sample(jax.random.key(11)))
    params = jax.jit(lambda k: _adam_run(task, 0.05, 2000, k))(jax.random.key(0))
    gap = float(task.eval_loss(params, jax.random.key(0), "test") - task.optimum)
    assert 0.0 <= gap + 1e-5 and gap < 1e-3, gap


def test_lsq_optimum_overdetermined():
    family = registry.get("quadratic-lsq", split="heldout")  # 30 x 20, nonzero minimum
    cfg = family.sample(jax.random.key(4))
    w, y = np.asarray(cfg.matrix, np.float64), np.asarray(cfg.target, np.float64)
    x_ref = np.linalg.lstsq(w, y, rcond=None)[0]
    np.testing.assert_allclose(cfg.x_star, x_ref, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(cfg.min_value, np.sum((w @ x_ref - y) ** 2), rtol=1e-3)
    assert float(cfg.min_value) > 0.1


def test_noise_has_zero_mean():
    family = registry.get("quadratic", noise_range=(1.0, 1.0))
    task = family.task(family.sample(jax.random.key(0)))
    x = task.init(jax.random.key(1))
    losses = jax.vmap(task.loss, (None, 0))(x, jax.random.split(jax.random.key(2), 4000))
    exact = task.eval_loss(x, None, "train")
    spread = float(jnp.std(losses))
    assert spread > 0.5  # noise present
    assert abs(float(jnp.mean(losses) - exact)) < 4 * spread / np.sqrt(4000)
