"""Boundary checks shared by every learned optimizer (static shapes only: free under jit)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from l2o.flat import TreeLayout


def check_num_steps(num_steps: Any, caller: str) -> None:
    """Raise unless ``num_steps`` (the training horizon T) is a positive integer.

    A traced ``jax.Array`` (e.g. a horizon that varies across a vmapped batch) is not
    checked. ``None`` gets a message naming the argument, since the progress features
    of an optimizer depend on it.
    """
    if isinstance(num_steps, jax.Array):
        return
    if num_steps is None:
        raise ValueError(
            f"{caller} needs num_steps, the number of steps you will train for: the "
            "optimizer's progress features are computed from step / num_steps. Pass e.g. "
            "num_steps=1000 (optimizers loaded with l2o.load carry their meta-training "
            "horizon as .horizon)."
        )
    if isinstance(num_steps, bool) or not (int(num_steps) == num_steps and num_steps >= 1):
        raise ValueError(f"{caller}: num_steps must be a positive integer; got {num_steps!r}.")


def check_chunk_size(chunk_size: Any) -> None:
    """Raise unless ``chunk_size`` is None (auto), 0 (one pass) or a positive int."""
    if chunk_size is not None and (int(chunk_size) != chunk_size or chunk_size < 0):
        raise ValueError(
            f"chunk_size must be None (auto), 0 (off) or a positive int; got {chunk_size!r}."
        )


def check_update_inputs(name: str, grads: Any, layout: TreeLayout, state_rows: int,
                        state_shapes: tuple | None = None) -> None:
    """Raise ``ValueError`` unless ``grads`` and a state of ``state_rows`` coordinates fit params.

    A per-leaf state also passes its leaf ``state_shapes``, which must equal params'.
    Compares static shapes only (``layout`` is ``tree_layout(params)``), so it costs nothing
    under ``jit``/``vmap``.
    """
    grad_shapes = tuple(tuple(int(d) for d in jnp.shape(x)) for x in jax.tree.leaves(grads))
    if grad_shapes != layout.shapes:
        raise ValueError(
            f"{name} update: grads have leaf shapes {list(grad_shapes)} but params have "
            f"{list(layout.shapes)}; pass the gradient at these params, e.g. "
            "jax.grad(loss_fn)(params)."
        )
    shapes_differ = state_shapes is not None and tuple(state_shapes) != layout.shapes
    if state_rows != layout.num_coordinates or shapes_differ:
        same_count = state_rows == layout.num_coordinates
        raise ValueError(
            f"{name} update: the optimizer state was built for {state_rows} parameter "
            f"coordinates{' of leaf shapes ' + str(list(state_shapes)) if same_count else ''}"
            f" but params have {layout.num_coordinates} (leaf shapes "
            f"{list(layout.shapes)}); the state belongs to another params pytree. Make a "
            "state for these params with init(theta, params, num_steps) (or tx.init(params))."
        )


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
