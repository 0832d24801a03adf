"""Sampled inner horizons: log-uniform multiples of the truncation, told to the optimizer."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import l2o
from meta_train.config import MetaTrainConfig
from meta_train.inner import LearnedOptimizerSystem
from meta_train.train import build, train
from meta_train.truncation import horizon_range_error, sample_horizon

from helpers.systems import TOY_FAMILY

LOPT = l2o.MLPOptimizer(hidden_sizes=(4,))


def test_sample_horizon_is_log_uniform_over_multiples():
    keys = jax.random.split(jax.random.PRNGKey(0), 20000)
    values = np.asarray(jax.vmap(lambda k: sample_horizon(k, 100, 2000, 20))(keys))
    assert values.dtype == np.int32
    assert values.min() == 100 and values.max() == 2000
    assert np.all(values % 20 == 0)
    # Log-uniform: half the mass below the geometric mean, a quarter below (low^3 high)^(1/4).
    geo = math.sqrt(100 * 2000)
    assert np.mean(values < geo) == pytest.approx(0.5, abs=0.02)
    assert np.mean(values < (100**3 * 2000) ** 0.25) == pytest.approx(0.25, abs=0.02)
    np.testing.assert_array_equal(jax.vmap(lambda k: sample_horizon(k, 60, 60, 20))(keys[:5]),
                                  [60] * 5)


@pytest.mark.parametrize("value, trunc, match", [
    ([400, 200], 20, "horizon_range \\[400, 200\\] has min 400 > max 200; give \\[min, max\\]"),
    ([30, 50], 20, "must hold multiples of trunc_length=20 .*; try \\[20, 60\\]"),
    ([10, 100], 20, "horizon_range min 10 is below trunc_length=20"),
    ([100], 20, "horizon_range must be a \\[min, max\\] pair of ints"),
    ([100.0, 200], 20, "horizon_range must be a \\[min, max\\] pair of ints"),
])
def test_bad_ranges_are_explained(value, trunc, match):
    with pytest.raises(ValueError, match=match) as info:
        MetaTrainConfig(horizon_range=value, trunc_length=trunc, horizon=200)
    assert "\n" not in str(info.value)
    assert horizon_range_error([20, 200], 20) is None


def test_each_run_draws_its_horizon_and_tells_the_optimizer():
    system = LearnedOptimizerSystem(family=TOY_FAMILY, lopt=LOPT, horizon=8,
                                    horizon_range=(4, 64), horizon_multiple=4)
    theta = LOPT.init_meta_params(jax.random.PRNGKey(0))
    states = jax.vmap(system.init, in_axes=(0, None))(
        jax.random.split(jax.random.PRNGKey(1), 64), theta)
    horizons = np.asarray(states.horizon)
    assert np.all((horizons >= 4) & (horizons <= 64) & (horizons % 4 == 0))
    assert len(set(horizons.tolist())) > 5
    np.testing.assert_array_equal(np.asarray(states.opt_state.num_steps), horizons)
    # One run resets exactly when it reaches its own horizon.
    state = system.init(jax.random.PRNGKey(2), theta)
    horizon = int(state.horizon)
    unroll = jax.jit(lambda s, k: system.unroll(theta, s, k, 4))
    resets = []
    for i in range(horizon // 4 + 1):
        state, loss, reset = unroll(state, jax.random.PRNGKey(10 + i))
        resets.append(bool(reset))
        assert np.isfinite(float(loss))
    assert resets == [False] * (horizon // 4 - 1) + [True, False]
    assert int(state.inner_step) == 4
    # A fixed-horizon system keeps its state without a horizon leaf.
    fixed = LearnedOptimizerSystem(family=TOY_FAMILY, lopt=LOPT, horizon=8)
    plain = fixed.init(jax.random.PRNGKey(2), theta)
    assert plain.horizon is None
    assert len(jax.tree.leaves(plain)) + 1 == len(jax.tree.leaves(system.init(
        jax.random.PRNGKey(2), theta)))
    with pytest.raises(ValueError, match="min 64 > max 4"):
        LearnedOptimizerSystem(family=TOY_FAMILY, lopt=LOPT, horizon=8, horizon_range=(64, 4))


def test_sampled_horizons_and_augment_reach_the_provenance(tmp_path):
    config = MetaTrainConfig(family="toy", lopt="mlp", lopt_config={"hidden_sizes": [4]},
                             horizon=8, trunc_length=4, num_tasks=2, num_pairs=1, outer_steps=6,
                             eval_every=0, eval_tasks=1, ckpt_every=0, log_every=1,
                             horizon_range=[4, 16], out_dir=str(tmp_path / "run"))
    components = build(config, family=TOY_FAMILY, heldout=TOY_FAMILY, lopt=LOPT)
    assert components.system.horizon_range == (4, 16)
    assert components.system.horizon_multiple == 4
    result = train(config, progress=False, components=components)
    _, _, record = l2o.load(result.theta_path)
    assert record["provenance"]["horizon_range"] == [4, 16]
    assert record["provenance"]["augment"] == {}
    assert MetaTrainConfig.from_json(result.run_dir / "config.json").horizon_range == [4, 16]
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(result.theta))
