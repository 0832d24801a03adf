"""Feature helpers: flatten/unflatten, per-tensor normalisation, progress, sanitising."""

import jax
import jax.numpy as jnp
import numpy as np

from l2o import features as F
from lopt_helpers import nested_params


def test_flatten_unflatten_round_trip_keeps_dtypes():
    params = nested_params(jax.random.key(0))
    layout = F.tree_layout(params)
    flat = F.flatten(params)
    assert flat.dtype == jnp.float32 and flat.shape == (layout.num_coordinates,) == (72 + 4 + 24 + 1,)
    back = F.unflatten(flat, layout)
    for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(params)):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(np.asarray(a, np.float32), np.asarray(b, np.float32))


def test_second_moment_normalize_per_tensor_and_global():
    layout = F.tree_layout({"a": jnp.zeros(3), "b": jnp.zeros((2,))})
    x = jnp.array([[1.0, 0.0], [2.0, 0.0], [2.0, 0.0], [10.0, 3.0], [0.0, 4.0]])
    got = F.second_moment_normalize(x, layout, "tensor", eps=0.0 + 1e-30)
    rms_a = np.sqrt([(1 + 4 + 4) / 3, 1.0])
    rms_b = np.sqrt([100 / 2, (9 + 16) / 2])
    expected = np.concatenate([np.asarray(x[:3]) / rms_a, np.asarray(x[3:]) / rms_b])
    expected[:3, 1] = 0.0  # an all-zero column stays zero
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    got_all = F.second_moment_normalize(x, layout, "all", eps=1e-30)
    np.testing.assert_allclose(got_all, np.asarray(x) / np.sqrt(np.mean(np.asarray(x) ** 2, 0)), rtol=1e-6)


def test_progress_features_and_sanitize():
    feats = F.progress_features(jnp.int32(25), jnp.int32(100), (1.0, 10.0))
    np.testing.assert_allclose(feats, np.tanh([0.25, 2.5]), rtol=1e-6)
    x = F.sanitize(jnp.array([jnp.nan, jnp.inf, -jnp.inf, 5.0, -0.5]), 2.0)
    np.testing.assert_array_equal(x, [0.0, 2.0, -2.0, 2.0, -0.5])


def test_map_rows_blocks_and_tail_match_one_pass():
    x = jnp.arange(23.0 * 2).reshape(23, 2)
    y = jnp.arange(23.0)

    def fn(a, b):
        return {"sum": a.sum(1) + b, "outer": a[:, :, None] * b[:, None, None]}

    whole = fn(x, y)
    for chunk_size in (0, 4, 5, 11, 12, 100):
        got = jax.jit(lambda a, b: F.map_rows(fn, a, b, chunk_size=chunk_size))(x, y)
        for k in whole:
            np.testing.assert_array_equal(got[k], whole[k])
    on_cpu = jax.default_backend() == "cpu"
    assert F.resolve_chunk_size(None) == (F.DEFAULT_CPU_CHUNK if on_cpu else 0)
    assert F.resolve_chunk_size(0) == 0
