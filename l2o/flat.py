"""The flat layout every learned optimizer works in, and row-blocked maps over it.

Every learned optimizer in l2o works on ONE flat float32 vector holding all N scalar
coordinates of the parameter pytree, so per-coordinate networks run as a single batched
matmul over N rows instead of a Python loop over leaves. `TreeLayout` remembers the
static structure (tree definition, shapes, dtypes) needed to go back; `map_rows` runs a
per-row function block by block over the N rows.

    layout = tree_layout(params)          # static, hashable description
    flat = flatten(grads)                 # (N,) float32
    tree = unflatten(flat, layout)        # same pytree as params, leaves in their dtypes
    out = map_rows(fn, flat, state, chunk_size=resolve_chunk_size(None))
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

# Rows per block of per-coordinate network work on CPU (see `map_rows`).
DEFAULT_CPU_CHUNK = 2048


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
    """All leaves of ``tree`` raveled and concatenated into one (N,) float32 vector.

    Built by writing each leaf into a zero buffer (in-place dynamic_update_slice): XLA's
    CPU concatenate of many reshaped leaves is much slower (``benchmarks/optimizer_step.py``).
    """
    leaves = [jnp.ravel(jnp.asarray(x, jnp.float32)) for x in jax.tree.leaves(tree)]
    if len(leaves) == 1:
        return leaves[0]
    flat = jnp.zeros((sum(x.shape[0] for x in leaves),), jnp.float32)
    start = 0
    for leaf in leaves:
        flat = jax.lax.dynamic_update_slice_in_dim(flat, leaf, start, 0)
        start += leaf.shape[0]
    return flat


def unflatten(flat: jax.Array, layout: TreeLayout) -> Any:
    """Inverse of `flatten`: (N,) vector -> pytree of ``layout``, leaves cast to their dtype."""
    offsets = np.cumsum((0,) + layout.sizes)
    leaves = [
        flat[start:stop].reshape(shape).astype(dtype)
        for start, stop, shape, dtype in zip(offsets[:-1], offsets[1:], layout.shapes, layout.dtypes)
    ]
    return jax.tree.unflatten(layout.treedef, leaves)


def leaf_index(rows: jax.Array, layout: TreeLayout) -> jax.Array:
    """Index of the leaf holding each flat coordinate in ``rows`` (int array, any shape)."""
    boundaries = jnp.asarray(np.cumsum(layout.sizes)[:-1], jnp.int32)
    if boundaries.size == 0:
        return jnp.zeros(jnp.shape(rows), jnp.int32)
    method = "compare_all" if boundaries.size <= 32 else "scan"
    return jnp.searchsorted(boundaries, rows, side="right", method=method).astype(jnp.int32)


def count_params(tree: Any) -> int:
    """Total number of scalars in the leaves of ``tree`` (arrays or ShapeDtypeStructs)."""
    return int(sum(math.prod(x.shape) for x in jax.tree.leaves(tree)))


def resolve_chunk_size(chunk_size: int | None, cpu_default: int = DEFAULT_CPU_CHUNK) -> int:
    """Rows per block for `map_rows`: ``None`` -> ``cpu_default`` on CPU, 0 (no blocks)
    elsewhere; an int is returned as is."""
    if chunk_size is None:
        return cpu_default if jax.default_backend() == "cpu" else 0
    return int(chunk_size)


def is_blocked(num_rows: int, chunk_size: int) -> bool:
    """Whether `map_rows` splits ``num_rows`` rows into blocks of ``chunk_size``."""
    return 0 < chunk_size and 2 * chunk_size <= num_rows


def map_rows(fn: Callable, *arrays: jax.Array, chunk_size: int, axis: int = 0) -> Any:
    """``fn(*arrays)`` computed block by block over the row axis ``axis``.

    Every array has N rows along ``axis`` (0: leading, -1: last); ``fn`` maps row blocks
    to a pytree of arrays with as many rows along the same axis. Blocks of ``chunk_size``
    rows run in a ``fori_loop`` (plus one static tail block), so wide per-row
    intermediates (e.g. (rows, 32) MLP activations) stay in the CPU cache instead of
    streaming N x 32 floats through memory. ``chunk_size <= 0`` or N < 2 * chunk_size:
    one call on all rows (best on accelerators).
    """
    n = arrays[0].shape[axis]
    if not is_blocked(n, chunk_size):
        return fn(*arrays)
    arrays = jax.lax.optimization_barrier(arrays)  # materialise inputs once, outside the loop
    num_chunks, main = n // chunk_size, (n // chunk_size) * chunk_size

    def rows(x, start, size):
        return jax.lax.slice_in_dim(x, start, start + size, axis=axis)

    shapes = jax.eval_shape(fn, *[rows(x, 0, chunk_size) for x in arrays])
    # Output buffers start as an input of the same shape and dtype where there is one
    # (e.g. an optimizer state that is overwritten block by block): every row is written
    # below, and a donated input can then be updated in place instead of allocating and
    # zero-filling a fresh (N, ...) buffer, which is costly for large optimizer states.
    unused = list(arrays)

    def initial(s):
        full = list(s.shape)
        full[axis] = n
        full = tuple(full)
        for j, x in enumerate(unused):
            if x is not None and x.shape == full and x.dtype == s.dtype:
                unused[j] = None
                return x
        return jnp.zeros(full, s.dtype)

    outputs = jax.tree.map(initial, shapes)

    def write(outputs, block, start):
        return jax.tree.map(
            lambda o, b: jax.lax.dynamic_update_slice_in_dim(o, b, start, axis), outputs, block)

    def body(i, outputs):
        start = i * chunk_size
        block = fn(*[jax.lax.dynamic_slice_in_dim(x, start, chunk_size, axis) for x in arrays])
        return write(outputs, block, start)

    outputs = jax.lax.fori_loop(0, num_chunks, body, outputs)
    if main < n:
        outputs = write(outputs, fn(*[rows(x, main, n - main) for x in arrays]), main)
    return outputs
