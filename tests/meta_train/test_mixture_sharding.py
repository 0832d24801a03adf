"""A mixture's particles sharded over 4 (virtual CPU) devices: equal to one device, exact resume."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import numpy as np
import optax
import pytest

import l2o
from meta_train.inner import LearnedOptimizerSystem
from meta_train.mixture import MixtureEstimator, group_estimator
from meta_train.mixture_sharding import ShardedMixture
from meta_train.sharding import particle_mesh

from helpers.devices import cpu_devices_env
from helpers.systems import TOY_FAMILY, TOY_MATRIX_FAMILY

HERE = Path(__file__).resolve().parent

FOUR_DEVICES = textwrap.dedent("""
    import dataclasses, json, sys
    sys.path.insert(0, sys.argv[1])
    import jax, numpy as np
    import l2o
    from helpers.systems import TOY_FAMILY, TOY_MATRIX_FAMILY
    from meta_train.config import MetaTrainConfig
    from meta_train.mixture_sharding import ShardedMixture
    from meta_train.train import build, make_runner, train
    assert jax.device_count() == 4, jax.devices()
    lopt = l2o.MLPOptimizer(hidden_sizes=(4,))
    base = MetaTrainConfig(family="toy", lopt="mlp", lopt_config={"hidden_sizes": [4]},
                           horizon=8, trunc_length=4, num_tasks=2, num_pairs=2, outer_steps=4,
                           sigma=0.05, outer_lr=1e-2, ckpt_every=2, log_every=1, eval_every=0,
                           eval_tasks=2, out_dir=sys.argv[2] + "/sharded",
                           mixture=[{"family": "toy", "weight": 2}, {"family": "toy-matrix"}])
    comps = lambda c: build(c, family=TOY_FAMILY, heldout=TOY_FAMILY, lopt=lopt,
                            families=(TOY_FAMILY, TOY_MATRIX_FAMILY))
    runner = make_runner(base, comps(base).estimator)
    assert isinstance(runner, ShardedMixture) and runner.mesh.devices.shape == (2, 2, 1)
    state = runner.init(jax.random.PRNGKey(0), comps(base).theta_init)
    shards = [g.es_state.pert_accum.addressable_shards[0].data.shape[0] for g in state.groups]
    sharded = train(base, progress=False, components=comps(base))
    single_cfg = dataclasses.replace(base, shard=False, out_dir=sys.argv[2] + "/single")
    single = train(single_cfg, progress=False, components=comps(single_cfg))
    short = dataclasses.replace(base, outer_steps=2, out_dir=sys.argv[2] + "/resumed")
    train(short, progress=False, components=comps(short))
    resumed = train(base, resume=sys.argv[2] + "/resumed", progress=False, components=comps(base))
    leaves = lambda tree: [np.asarray(x).tolist() for x in jax.tree.leaves(tree)]
    print(json.dumps({"shards": shards, "sharded": leaves(sharded.theta),
                      "single": leaves(single.theta), "resumed": leaves(resumed.theta),
                      "initial": leaves(comps(base).theta_init)}))
""")


@pytest.mark.slow
def test_four_device_mixture_matches_one_device(tmp_path):
    env = cpu_devices_env(4)
    out = subprocess.run([sys.executable, "-c", FOUR_DEVICES, str(HERE.parent), str(tmp_path)],
                         env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["shards"] == [2, 2]  # each group's 8 particles: 2 per device
    sharded, single, initial = result["sharded"], result["single"], result["initial"]
    moved = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
                for a, b in zip(sharded, initial))
    assert moved > 1e-3
    for a, b in zip(sharded, single):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert result["resumed"] == sharded


@pytest.mark.slow  # the four-device test covers the sharded path by default
def test_one_device_mesh_equals_the_plain_mixture():
    lopt = l2o.MLPOptimizer(hidden_sizes=(4,))
    theta = lopt.init_meta_params(jax.random.PRNGKey(0))
    groups = [group_estimator(LearnedOptimizerSystem(family=f, lopt=lopt, horizon=8), theta,
                              num_tasks=2, num_pairs=1, trunc_length=4, horizon=8)
              for f in (TOY_FAMILY, TOY_MATRIX_FAMILY)]
    mixture = MixtureEstimator(groups, [1.0, 1.0], outer_optimizer=optax.sgd(0.1))
    sharded = ShardedMixture(mixture, particle_mesh(2, 1, jax.devices()[:1]))
    a = mixture.init(jax.random.PRNGKey(3), theta)
    b = sharded.init(jax.random.PRNGKey(3), theta)
    for _ in range(2):
        a, _ = mixture.step(a)
        b, _ = sharded.step(b)
    for x, y in zip(jax.tree.leaves(mixture.theta(a)), jax.tree.leaves(sharded.theta(b))):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-6, atol=1e-7)
    restored = sharded.place(jax.device_get(b))
    assert int(restored.step) == 2
