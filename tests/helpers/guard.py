"""Problems, bad learned rules and the training loop of the loss-guard tests."""

import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

import tasks

# ----------------------------------------------------------------------------- problems


class Problem(NamedTuple):
    """``loss(params, key)`` on a minibatch; ``full_loss(params)`` for the final score."""

    name: str
    params: Any
    loss: Callable
    full_loss: Callable
    optimum: float
    cfg: Any


def registry_problem(name, noise_free=False, seed=0, **overrides):
    """Task ``seed`` of ``tasks.registry.get(name, **overrides)``; ``full_loss`` is its
    ``eval_loss`` on the train split, also used as the training loss with ``noise_free``."""
    family = tasks.registry.get(name, **overrides)
    cfg = family.sample(jax.random.key(seed))
    task = family.task(cfg)

    def full_loss(params):
        return task.eval_loss(params, jax.random.key(0), "train")

    loss = (lambda params, key: full_loss(params)) if noise_free else task.loss
    optimum = 0.0 if task.optimum is None else float(task.optimum)
    return Problem(task.name, task.init(jax.random.key(seed + 1)), loss, full_loss, optimum, cfg)


def quadratic_problem():
    """Noise-free registry quadratic: f(x) = 0.5 (x - x*)^T H (x - x*) + c, 10-d."""
    return registry_problem("quadratic", noise_free=True)


def noisy_quadratic_problem(noise=0.05):
    """Same family with gradient noise of std ``noise``; ``full_loss`` is the noise-free f."""
    return registry_problem("quadratic", noise_range=(noise, noise))


def rosenbrock_problem():
    return registry_problem("rosenbrock")


def digits_problem():
    """Registry MLP on the digits dataset: minibatch loss for training, whole split to score."""
    return registry_problem("mlp-digits")


def curvature_bounds(problem):
    """(mu, L): smallest and largest Hessian eigenvalue of a registry quadratic."""
    eigenvalues = np.linalg.eigvalsh(np.asarray(problem.cfg.hessian, np.float64))
    return float(eigenvalues[0]), float(eigenvalues[-1])


def gd_fallback():
    """Gradient descent with step 1/L on `quadratic_problem` (the theorem's fallback)."""
    return optax.sgd(1.0 / curvature_bounds(quadratic_problem())[1])


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
                grads, state, params, value=loss, next_loss_fn=lambda p: problem.loss(p, next_key)
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
    "quadratic-gd": (quadratic_problem, gd_fallback(), 100),
    "quadratic-adam": (quadratic_problem, optax.adam(0.05), 100),
    "rosenbrock-adam": (rosenbrock_problem, optax.adam(0.02), 300),
    "digits-adam": (digits_problem, optax.adam(1e-2), 100),
}


@functools.cache
def fallback_alone(setting: str):
    """Final params of ``SETTINGS[setting]``'s fallback alone from key 1 (computed once)."""
    make_problem, fallback, steps = SETTINGS[setting]
    problem = make_problem()
    return make_run(fallback, problem, steps)(problem.params, jax.random.key(1))[0]
