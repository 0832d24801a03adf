"""Sharding the particle axis over (fake) devices gives the same step as one device."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import jax
import pytest

from meta_train.pes import ESGradientEstimator
from meta_train.sharding import particle_mesh, shard_state
from meta_train.toy import InfluenceBalancing

SCRIPT = textwrap.dedent("""
    import jax, jax.numpy as jnp, numpy as np
    from meta_train.pes import ESGradientEstimator
    from meta_train.sharding import particle_mesh, shard_state
    from meta_train.toy import InfluenceBalancing
    assert jax.device_count() == 2, jax.devices()
    theta = jnp.array([0.5], jnp.float32)
    est = ESGradientEstimator(InfluenceBalancing(horizon=20), theta, num_tasks=4, num_pairs=2,
                              trunc_length=5, horizon=20, sigma=0.01)
    state = est.init(jax.random.PRNGKey(0), theta)
    sharded = shard_state(state, particle_mesh(), 4, 2)
    assert len(sharded.es_state.pert_accum.sharding.device_set) == 2
    assert sharded.es_state.pert_accum.addressable_shards[0].data.shape == (8, 1)
    assert sharded.system_state.s.addressable_shards[0].data.shape == (2, 2, 2, 23)
    a, b = state, sharded
    for _ in range(5):
        a, ma = est.step(a)
        b, mb = est.step(b)
    np.testing.assert_allclose(est.theta(a), est.theta(b), rtol=1e-5)
    np.testing.assert_allclose(ma["grad_norm"], mb["grad_norm"], rtol=1e-4)
    print("OK", float(est.theta(b)[0]))
""")


def test_two_device_sharded_step_matches_single_device():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2",
               JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.startswith("OK")


def test_indivisible_layout_is_rejected():
    theta = jax.numpy.array([0.5], jax.numpy.float32)
    est = ESGradientEstimator(InfluenceBalancing(horizon=20), theta, num_tasks=3, num_pairs=1,
                              trunc_length=5, horizon=20)
    state = est.init(jax.random.PRNGKey(0), theta)
    mesh = particle_mesh([jax.devices()[0]] * 1)
    assert shard_state(state, mesh, 3, 1).step == 0
    fake = type("FakeMesh", (), {"axis_names": ("particles",), "shape": {"particles": 2}})()
    with pytest.raises(ValueError, match="cannot split 3 tasks \\(6 particles\\) over 2 devices"):
        shard_state(state, fake, 3, 1)
