"""Particle-axis sharding: mesh layout rules, and sharded training equal to one device."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest
from jax.sharding import PartitionSpec

from meta_train.config import MetaTrainConfig
from meta_train.pes import ESGradientEstimator
from meta_train.sharding import (
    MESH_AXES, ShardedEstimator, mesh_shape, particle_mesh, resolve_num_devices,
    state_shardings, valid_device_counts,
)
from meta_train.toy import InfluenceBalancing
from meta_train.train import make_runner

from helpers.devices import cpu_devices_env

HERE = Path(__file__).resolve().parent


@pytest.mark.parametrize("devices, tasks, pairs, expected", [
    (1, 8, 8, (1, 1, 1)), (2, 8, 8, (2, 1, 1)), (4, 8, 8, (2, 2, 1)), (8, 8, 8, (2, 4, 1)),
    (16, 8, 8, (2, 8, 1)), (32, 8, 8, (2, 8, 2)), (128, 8, 8, (2, 8, 8)),
    (4, 2, 4, (2, 2, 1)), (8, 2, 4, (2, 2, 2)), (2, 1, 1, (2, 1, 1)), (6, 3, 2, (2, 3, 1)),
    (12, 3, 4, (2, 3, 2)), (4, 6, 1, (2, 2, 1)),
    (4, 1, 1, None), (3, 3, 1, None), (8, 6, 1, None), (0, 2, 2, None),
])
def test_mesh_shape_splits_sign_then_tasks_then_pairs(devices, tasks, pairs, expected):
    if expected is None:
        with pytest.raises(ValueError, match=rf"cannot split {2 * tasks * pairs} particles .* "
                                             rf"over {devices} devices; valid device counts"):
            mesh_shape(devices, tasks, pairs)
        return
    sign, t, p = mesh_shape(devices, tasks, pairs)
    assert (sign, t, p) == expected
    # Contiguous blocks of the flattened (2, tasks, pairs) axis == the 3-d blocks.
    flat = jnp.arange(2 * tasks * pairs).reshape(2, tasks, pairs)
    blocks = flat.reshape(sign, 2 // sign, t, tasks // t, p, pairs // p)
    per_device = blocks.transpose(0, 2, 4, 1, 3, 5).reshape(devices, -1)
    assert (per_device == jnp.arange(2 * tasks * pairs).reshape(devices, -1)).all()


def test_valid_device_counts():
    assert valid_device_counts(8, 8) == [1, 2, 4, 8, 16, 32, 64, 128]
    assert valid_device_counts(3, 1) == [1, 2, 6]
    assert valid_device_counts(6, 2) == [1, 2, 4, 6, 12, 24]


def test_resolve_num_devices_auto_and_explicit():
    assert resolve_num_devices(0, 8, 8, available=4) == 4
    assert resolve_num_devices(0, 8, 8, available=6) == 4
    assert resolve_num_devices(0, 3, 1, available=4) == 2  # 6 particles: 1, 2 or 6 devices
    assert resolve_num_devices(0, 3, 1, available=8) == 6
    assert resolve_num_devices(2, 3, 1, available=4) == 2
    with pytest.raises(ValueError, match="num_devices=8 but only 4 device"):
        resolve_num_devices(8, 8, 8, available=4)
    with pytest.raises(ValueError, match="cannot split 6 particles"):
        resolve_num_devices(4, 3, 1, available=4)


def test_config_rejects_indivisible_num_devices():
    with pytest.raises(ValueError, match=r"cannot split 6 particles .* valid device counts .*\[1, 2, 6\]"):
        MetaTrainConfig(num_tasks=3, num_pairs=1, num_devices=4)
    config = MetaTrainConfig().with_overrides(["num_devices=8", "shard=false"])
    assert (config.num_devices, config.shard) == (8, False)


def _estimator(num_tasks=4, num_pairs=2):
    theta = jnp.array([0.5], jnp.float32)
    return ESGradientEstimator(InfluenceBalancing(horizon=20), theta, num_tasks=num_tasks,
                               num_pairs=num_pairs, trunc_length=5, horizon=20), theta


def test_state_shardings_split_particles_and_replicate_theta():
    est, theta = _estimator()
    mesh = particle_mesh(4, 2, jax.devices()[:1])
    assert mesh.axis_names == MESH_AXES and mesh.devices.shape == (1, 1, 1)
    abstract = jax.eval_shape(est._init, jax.random.PRNGKey(0), theta)
    shardings = state_shardings(abstract, mesh, 4, 2)
    assert shardings.es_state.pert_accum.spec == PartitionSpec(MESH_AXES)
    assert shardings.es_state.inner_step_counter.spec == PartitionSpec(MESH_AXES)
    assert shardings.es_state.mean.spec == PartitionSpec()
    assert shardings.system_state.s.spec == PartitionSpec(*MESH_AXES)
    assert shardings.key.spec == PartitionSpec()


def test_one_device_mesh_step_equals_plain_step():
    est, theta = _estimator()
    sharded = ShardedEstimator(est, particle_mesh(4, 2, jax.devices()[:1]))
    a = est.init(jax.random.PRNGKey(0), theta)
    b = sharded.init(jax.random.PRNGKey(0), theta)
    for _ in range(3):
        a, ma = est.step(a)
        b, mb = sharded.step(b)
    assert float(sharded.theta(b)[0]) == pytest.approx(float(est.theta(a)[0]), rel=1e-6)
    assert float(mb["grad_norm"]) == pytest.approx(float(ma["grad_norm"]), rel=1e-5)
    assert int(b.step) == 3


def test_single_device_runner_is_the_estimator():
    est, _ = _estimator()
    config = MetaTrainConfig(num_tasks=4, num_pairs=2)
    assert make_runner(config, est) is est or jax.device_count() > 1
    assert make_runner(MetaTrainConfig(num_tasks=4, num_pairs=2, shard=False), est) is est


FOUR_DEVICES = textwrap.dedent("""
    import dataclasses, json, re, sys, time
    sys.path.insert(0, sys.argv[1])
    import jax, numpy as np
    import l2o
    from helpers.systems import TOY_FAMILY
    from meta_train.config import MetaTrainConfig
    from meta_train.sharding import ShardedEstimator
    from meta_train.train import build, make_runner, train
    assert jax.device_count() == 4, jax.devices()
    t0 = time.perf_counter()
    lopt = l2o.MLPOptimizer(hidden_sizes=(4,))
    base = MetaTrainConfig(family="toy", lopt="mlp", lopt_config={"hidden_sizes": [4]},
                           horizon=8, trunc_length=4, num_tasks=2, num_pairs=2, outer_steps=4,
                           sigma=0.05, outer_lr=1e-2, ckpt_every=2, log_every=1, eval_every=0,
                           eval_tasks=2, out_dir=sys.argv[2] + "/sharded")
    comps = lambda c: build(c, family=TOY_FAMILY, heldout=TOY_FAMILY, lopt=lopt)
    runner = make_runner(base, comps(base).estimator)
    assert isinstance(runner, ShardedEstimator) and runner.mesh.devices.shape == (2, 2, 1)
    sharded = train(base, progress=False, components=comps(base))
    t1 = time.perf_counter()
    state = runner.init(jax.random.PRNGKey(0), comps(base).theta_init)
    shard = state.es_state.pert_accum.addressable_shards[0].data.shape
    hlo = runner._compiled()[1].lower(state).compile().as_text()
    collectives = []
    for line in hlo.splitlines():
        op = re.search(r"= (.*?) (all-reduce|all-gather|all-to-all|collective-permute)\\(", line)
        if op:
            dims = re.findall(r"[fsu]\\d+\\[([\\d,]*)\\]", op.group(1))
            collectives.append([op.group(2), [[int(d) for d in x.split(",") if d] for x in dims]])
    t2 = time.perf_counter()
    single_cfg = dataclasses.replace(base, shard=False, out_dir=sys.argv[2] + "/single")
    single = train(single_cfg, progress=False, components=comps(single_cfg))
    t3 = time.perf_counter()
    short = dataclasses.replace(base, outer_steps=2, out_dir=sys.argv[2] + "/resumed")
    train(short, progress=False, components=comps(short))
    resumed = train(base, resume=sys.argv[2] + "/resumed", progress=False, components=comps(base))
    leaves = lambda tree: [np.asarray(x).tolist() for x in jax.tree.leaves(tree)]
    print(json.dumps({
        "shard": list(shard), "collectives": collectives,
        "theta_size": int(runner.estimator.es.num_dims),
        "sharded": leaves(sharded.theta), "single": leaves(single.theta),
        "resumed": leaves(resumed.theta), "initial": leaves(comps(base).theta_init),
        "provenance": json.loads(sharded.theta_path.with_suffix(".json").read_text())["provenance"],
        "seconds": [t1 - t0, t2 - t1, t3 - t2, time.perf_counter() - t3],
    }))
""")


def test_four_device_training_matches_one_device(tmp_path):
    env = cpu_devices_env(4)
    out = subprocess.run([sys.executable, "-c", FOUR_DEVICES, str(HERE.parent), str(tmp_path)],
                         env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    print("seconds (sharded train, HLO, single train, resume):", result["seconds"])
    # 2 signs x 2 tasks x 2 pairs = 8 particles over a (2, 2, 1) mesh: 2 particles each.
    assert result["shard"][0] == 2
    sharded, single, initial = result["sharded"], result["single"], result["initial"]
    assert len(sharded) == len(single) == len(initial) > 0
    moved = max(float(jnp.max(jnp.abs(jnp.asarray(a) - jnp.asarray(b))))
                for a, b in zip(sharded, initial))
    assert moved > 1e-3  # training changed theta, so the comparison below means something
    for a, b in zip(sharded, single):
        assert jnp.allclose(jnp.asarray(a), jnp.asarray(b), rtol=1e-5, atol=1e-6)
    assert result["resumed"] == sharded  # resume of a sharded run: bit-identical
    assert "x4" in result["provenance"]["train_device"]
    # The gradient is an all-reduce of a D-vector; nothing larger than the (N, D)
    # perturbations ever crosses devices (the inner-run states never do).
    size, particles = result["theta_size"], 8
    ops = result["collectives"]
    assert any(op == "all-reduce" and [size] in shapes for op, shapes in ops), ops
    for op, shapes in ops:
        for shape in shapes:
            assert int(jnp.prod(jnp.asarray(shape or [1]))) <= particles * size, (op, shape)
