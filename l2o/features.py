"""Per-coordinate feature helpers shared by the learned optimizers.

Every learned optimizer in l2o works on ONE flat float32 vector holding all N scalar
coordinates of the parameter pytree, so per-coordinate networks run as a single batched
matmul over N rows instead of a Python loop over leaves. `TreeLayout` remembers the
static structure (tree definition, shapes, dtypes) needed to go back.

    layout = tree_layout(params)          # static, hashable description
    flat = flatten(grads)                 # (N,) float32
    tree = unflatten(flat, layout)        # same pytree as params, leaves in their dtypes
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

# Largest gradient magnitude fed to the optimizers: its square still fits in float32.
GRAD_LIMIT = 1e15


class TreeLayout(NamedTuple):
    """Static description of a parameter pytree.

    Attributes:
      treedef: the pytree structure.
      shapes: shape of each leaf, in ``jax.tree.leaves`` order.
      dtypes: dtype of each leaf (updates are returned in these dtypes).
    """

    treedef: Any
    shapes: tuple[tuple[int, ...], ...]
    dtypes: tuple[Any, ...]

    @property
    def sizes(self) -> tuple[int, ...]:
        """Number of scalars in each leaf."""
        return tuple(math.prod(s) for s in self.shapes)

    @property
    def num_coordinates(self) -> int:
        """Total number N of scalar coordinates."""
        return sum(self.sizes)


def tree_layout(tree: Any, what: str = "params") -> TreeLayout:
    """The `TreeLayout` of ``tree``; raises if it has no leaves or a non-float leaf.

    Args:
      tree: pytree of arrays (float16, bfloat16, float32 or float64 leaves).
      what: name of the argument, used in error messages.
    """
    leaves, treedef = jax.tree.flatten(tree)
    if not leaves:
        raise ValueError(
            f"{what} has no array leaves (got {tree!r}); a learned optimizer needs at "
            "least one floating-point array to optimize."
        )
    dtypes = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        dtype = jnp.result_type(leaf)
        if not jnp.issubdtype(dtype, jnp.floating):
            raise TypeError(
                f"{what} leaf {jax.tree_util.keystr(path)} has dtype {dtype}; expected a "
                "floating-point dtype (float32/bfloat16/float16). Keep integer buffers "
                "out of the pytree you optimize."
            )
        dtypes.append(dtype)
    shapes = tuple(tuple(int(d) for d in jnp.shape(leaf)) for leaf in leaves)
    return TreeLayout(treedef, shapes, tuple(dtypes))


def flatten(tree: Any) -> jax.Array:
    """All leaves of ``tree`` raveled and concatenated into one (N,) float32 vector."""
    leaves = jax.tree.leaves(tree)
    return jnp.concatenate([jnp.ravel(jnp.asarray(x, jnp.float32)) for x in leaves])


def unflatten(flat: jax.Array, layout: TreeLayout) -> Any:
    """Inverse of `flatten`: (N,) vector -> pytree of ``layout``, leaves cast to their dtype."""
    offsets = np.cumsum((0,) + layout.sizes)
    leaves = [
        flat[start:stop].reshape(shape).astype(dtype)
        for start, stop, shape, dtype in zip(offsets[:-1], offsets[1:], layout.shapes, layout.dtypes)
    ]
    return jax.tree.unflatten(layout.treedef, leaves)


def sanitize(x: jax.Array, limit: float) -> jax.Array:
    """NaN -> 0 and clip to [-limit, limit] (infinities become +-limit)."""
    return jnp.clip(jnp.nan_to_num(x, nan=0.0, posinf=limit, neginf=-limit), -limit, limit)


def second_moment_normalize(
    features: jax.Array, layout: TreeLayout, over: str = "tensor", eps: float = 1e-12
) -> jax.Array:
    """Divide each feature column by its root-mean-square.

    ``features`` is (N, F). With ``over="tensor"`` the mean of x^2 is taken over the
    coordinates of each leaf separately (one segment-sum over all leaves):
    x_ij / sqrt(mean_{k in tensor(i)} x_kj^2 + eps). With ``over="all"`` it is taken over
    all N coordinates at once (cheaper, one reduction).
    """
    if over == "all" or len(layout.sizes) == 1:
        mean_square = jnp.mean(jnp.square(features), axis=0, keepdims=True)
        return features * jax.lax.rsqrt(mean_square + eps)
    sizes = layout.sizes
    segment_ids = jnp.concatenate(
        [jnp.full((size,), index, jnp.int32) for index, size in enumerate(sizes)]
    )
    sums = jax.ops.segment_sum(
        jnp.square(features), segment_ids, num_segments=len(sizes), indices_are_sorted=True
    )
    inv_rms = jax.lax.rsqrt(sums / jnp.asarray(sizes, jnp.float32)[:, None] + eps)
    return features * inv_rms[segment_ids]


def lstm_preprocess(x: jax.Array, p: float = 10.0) -> jax.Array:
    """Andrychowicz et al. (2016) gradient preprocessing, (N,) -> (N, 2).

    (log|x| / p, sign(x)) where |x| >= e^-p, else (-1, e^p x).
    """
    magnitude = jnp.abs(x)
    big = magnitude >= math.exp(-p)
    log_part = jnp.log(jnp.maximum(magnitude, math.exp(-p))) / p
    first = jnp.where(big, log_part, -1.0)
    second = jnp.where(big, jnp.sign(x), math.exp(p) * x)
    return jnp.stack([first, second], axis=-1)


def progress_features(step: jax.Array, num_steps: jax.Array, scales: Sequence[float]) -> jax.Array:
    """Training-progress embedding tanh(s * t / T) for each scale s, shape (len(scales),).

    t is the step counter, T the horizon; large scales saturate early and resolve the
    start of training, small ones are ~linear over the whole horizon.
    """
    fraction = jnp.asarray(step, jnp.float32) / jnp.maximum(jnp.asarray(num_steps, jnp.float32), 1.0)
    return jnp.tanh(jnp.asarray(scales, jnp.float32) * fraction)


def count_params(tree: Any) -> int:
    """Total number of scalars in the leaves of ``tree`` (arrays or ShapeDtypeStructs)."""
    return int(sum(math.prod(x.shape) for x in jax.tree.leaves(tree)))


def num_meta_params(lopt: Any) -> int:
    """Number of scalar meta-parameters of ``lopt`` (shape inference only, no compute)."""
    return count_params(jax.eval_shape(lopt.init_meta_params, jax.random.key(0)))


def config_repr(lopt: Any) -> str:
    """``ClassName(field=value, ..., num_meta_params=P)`` for a frozen-dataclass optimizer."""
    fields = ", ".join(f"{f.name}={getattr(lopt, f.name)!r}" for f in dataclasses.fields(lopt))
    return f"{type(lopt).__name__}({fields}, num_meta_params={num_meta_params(lopt)})"


def summary(lopt: Any) -> str:
    """Multi-line description: architecture, every config field, input features, size."""
    lines = [f"{type(lopt).__name__} (registry name {lopt.name!r})"]
    lines += [f"  {f.name}: {getattr(lopt, f.name)!r}" for f in dataclasses.fields(lopt)]
    lines.append("  features: " + ", ".join(lopt.feature_names()))
    lines.append(f"  meta-parameters: {num_meta_params(lopt):,}")
    return "\n".join(lines)
