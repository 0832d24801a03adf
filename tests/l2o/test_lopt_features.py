"""Input features: per-tensor normalisation, progress features, sanitising."""

import jax.numpy as jnp
import numpy as np

from l2o import features as F
from l2o.flat import tree_layout


def test_second_moment_normalize_per_tensor_and_global():
    layout = tree_layout({"a": jnp.zeros(3), "b": jnp.zeros((2,))})
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


def test_sanitize_matches_nan_to_num_then_clip_bit_for_bit():
    x = jnp.array([jnp.nan, -jnp.nan, jnp.inf, -jnp.inf, 3.0, -3.0, 1e-3, -0.0, 0.0, 2.0],
                  jnp.float32)
    reference = jnp.clip(jnp.nan_to_num(x, nan=0.0, posinf=2.0, neginf=-2.0), -2.0, 2.0)
    got = F.sanitize(x, 2.0)
    assert got.dtype == x.dtype
    np.testing.assert_array_equal(np.asarray(got).view(np.int32),
                                  np.asarray(reference).view(np.int32))
    assert F.sanitize(x.astype(jnp.bfloat16), 2.0).dtype == jnp.bfloat16


def test_row_sums_of_squares_of_each_row():
    x = jnp.arange(24.0).reshape(3, 2, 4) - 7.0
    expected = np.sum(np.square(np.asarray(x).reshape(3, -1)), axis=1)
    np.testing.assert_allclose(F.row_sums_of_squares(x), expected, rtol=1e-6)
    np.testing.assert_allclose(F.row_sums_of_squares(jnp.array([[3.0], [4.0]])), [9.0, 16.0])
    assert F.row_sums_of_squares(jnp.float32(2.0)[None]).shape == (1,)
