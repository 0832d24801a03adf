"""Any `LearnedOptimizer` with fixed meta-parameters as an optax transform.

    tx = as_optax(lopt, theta, num_steps=1000)     # or lopt.as_optax(theta, 1000)
    state = tx.init(params)
    updates, state = tx.update(grads, state, params, value=loss)
    params = optax.apply_updates(params, updates)

The loss goes in as the keyword ``value`` (optax's convention for extra args, as in
``optax.contrib.reduce_on_plateau``). Other extra keyword arguments (``next_loss_fn``,
...) are accepted and ignored, so one training loop can feed every optimizer the same ones.

``num_steps`` has no default: the progress features of an optimizer depend on it (the
shipped ones were meta-trained at a horizon of 100 or 200 steps). An optimizer loaded
with `l2o.load` knows its meta-training horizon: ``loaded.as_optax()`` uses it.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import optax

from l2o.validation import check_meta_params, check_num_steps


def as_optax(lopt: Any, theta: Any, num_steps: int | None = None) -> optax.GradientTransformationExtraArgs:
    """``lopt`` with fixed ``theta`` as an ``optax.GradientTransformationExtraArgs``.

    Args:
      lopt: a `LearnedOptimizer` (e.g. `MLPOptimizer()`).
      theta: its meta-parameters (one member, no population axis).
      num_steps: training horizon given to the optimizer's progress features: the
        number of steps you will train for (required; ``None`` raises).

    Returns:
      A transform whose ``init(params)`` calls ``lopt.init(theta, params, num_steps)`` and
      whose ``update(grads, state, params, *, value=None, **extra_args)`` calls
      ``lopt.update(theta, grads, state, params, value)``. ``params`` is required;
      ``value`` (the current scalar loss) is required when ``lopt.uses_loss``, otherwise
      it may be omitted (0 is passed).
    """
    check_num_steps(num_steps, f"{type(lopt).__name__}.as_optax")
    check_meta_params(lopt, theta)
    uses_loss = lopt.uses_loss

    def init_fn(params):
        return lopt.init(theta, params, num_steps)

    def update_fn(updates, state, params=None, *, value=None, **extra_args):
        del extra_args  # e.g. next_loss_fn: accepted for a uniform training loop, unused here
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
