"""Any `LearnedOptimizer` with fixed meta-parameters as an optax transform.

    tx = as_optax(lopt, theta, num_steps=1000)     # or lopt.as_optax(theta, 1000)
    state = tx.init(params)
    updates, state = tx.update(grads, state, params, value=loss)
    params = optax.apply_updates(params, updates)

The loss goes in as the keyword ``value`` (optax's convention for extra args, as in
``optax.contrib.reduce_on_plateau``). Other extra keyword arguments (``value_fn``, ...)
are accepted and ignored, so one training loop can feed every optimizer the same ones.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax


def check_meta_params(lopt: Any, theta: Any) -> None:
    """Raise if ``theta``'s structure or leaf shapes differ from ``lopt.init_meta_params``.

    Only shapes are compared (via ``jax.eval_shape``), so this costs no compute; a
    leading population axis, as in a vmapped theta, is reported as a shape mismatch.
    """
    template = jax.eval_shape(lopt.init_meta_params, jax.random.key(0))
    expected = jax.tree_util.tree_flatten_with_path(template)[0]
    got = jax.tree_util.tree_flatten_with_path(theta)[0]
    expected_paths = [jax.tree_util.keystr(p) for p, _ in expected]
    got_paths = [jax.tree_util.keystr(p) for p, _ in got]
    if expected_paths != got_paths:
        raise ValueError(
            f"theta does not match {type(lopt).__name__}'s meta-parameters: expected leaves "
            f"{expected_paths}, got {got_paths}. Create theta with lopt.init_meta_params(key) "
            "or load it with l2o.load for the same optimizer config."
        )
    for (path, want), (_, have) in zip(expected, got):
        if tuple(want.shape) != tuple(jnp.shape(have)):
            raise ValueError(
                f"theta leaf {jax.tree_util.keystr(path)} has shape {tuple(jnp.shape(have))}, "
                f"expected {tuple(want.shape)} for {lopt!r}. Was theta made for another "
                "config, or does it carry a population axis (index one member: "
                "jax.tree.map(lambda x: x[i], theta))?"
            )


def as_optax(lopt: Any, theta: Any, num_steps: int = 1000) -> optax.GradientTransformationExtraArgs:
    """``lopt`` with fixed ``theta`` as an ``optax.GradientTransformationExtraArgs``.

    Args:
      lopt: a `LearnedOptimizer` (e.g. `MLPOptimizer()`).
      theta: its meta-parameters (one member, no population axis).
      num_steps: training horizon given to the optimizer's progress features.

    Returns:
      A transform whose ``init(params)`` calls ``lopt.init(theta, params, num_steps)`` and
      whose ``update(grads, state, params, *, value=None, **extra_args)`` calls
      ``lopt.update(theta, grads, state, params, value)``. ``params`` is required;
      ``value`` (the current scalar loss) is required when ``lopt.uses_loss``, otherwise
      it may be omitted (0 is passed).
    """
    if not isinstance(num_steps, jax.Array) and not (int(num_steps) == num_steps and num_steps >= 1):
        raise ValueError(f"num_steps must be a positive integer; got {num_steps!r}.")
    check_meta_params(lopt, theta)
    uses_loss = bool(getattr(lopt, "uses_loss", False))

    def init_fn(params):
        return lopt.init(theta, params, num_steps)

    def update_fn(updates, state, params=None, *, value=None, **extra_args):
        del extra_args  # e.g. value_fn: accepted for a uniform training loop, unused here
        if params is None:
            raise ValueError(
                f"{lopt.name} learned optimizer needs the current params: call "
                "tx.update(grads, state, params, value=loss)."
            )
        if value is None:
            if uses_loss:
                raise ValueError(
                    f"{lopt!r} uses the loss as an input: pass it as "
                    "tx.update(grads, state, params, value=loss)."
                )
            value = jnp.zeros((), jnp.float32)
        return lopt.update(theta, updates, state, params, jnp.asarray(value, jnp.float32))

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
