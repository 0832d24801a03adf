"""The flat layout (flatten / unflatten) and row-blocked maps over it."""

import jax
import jax.numpy as jnp
import numpy as np

from l2o import flat as L
from helpers.lopt import nested_params


def test_flatten_unflatten_round_trip_keeps_dtypes():
    params = nested_params(jax.random.key(0))
    layout = L.tree_layout(params)
    flat = L.flatten(params)
    assert flat.dtype == jnp.float32 and flat.shape == (layout.num_coordinates,) == (72 + 4 + 24 + 1,)
    back = L.unflatten(flat, layout)
    for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(params)):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(np.asarray(a, np.float32), np.asarray(b, np.float32))


def test_map_rows_blocks_and_tail_match_one_pass():
    x = jnp.arange(23.0 * 2).reshape(23, 2)
    y = jnp.arange(23.0)

    def fn(a, b):
        return {"sum": a.sum(1) + b, "outer": a[:, :, None] * b[:, None, None]}

    whole = fn(x, y)
    for chunk_size in (0, 4, 5, 11, 12, 100):
        got = jax.jit(lambda a, b: L.map_rows(fn, a, b, chunk_size=chunk_size))(x, y)
        for k in whole:
            np.testing.assert_array_equal(got[k], whole[k])
    # Rows along the last axis (feature-major blocks): (K, n) and (n,) inputs.
    xt, two = x.T, lambda a, b: (a * b, a.sum(0) - b)  # noqa: E731
    for chunk_size in (0, 4, 5, 11, 12):
        got = jax.jit(lambda a, b: L.map_rows(two, a, b, chunk_size=chunk_size, axis=-1))(xt, y)
        for g, w in zip(got, two(xt, y)):
            np.testing.assert_array_equal(g, w)
    assert L.is_blocked(23, 11) and not L.is_blocked(23, 12) and not L.is_blocked(23, 0)
    on_cpu = jax.default_backend() == "cpu"
    assert L.resolve_chunk_size(None) == (L.DEFAULT_CPU_CHUNK if on_cpu else 0)
    assert L.resolve_chunk_size(0) == 0
