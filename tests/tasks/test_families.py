"""Every registered family: vmap over configs == a loop over them, held-out != train."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tasks import registry
from tasks.base import Task

NUM_CFGS = 8
FAMILY_SPLITS = [(name, split) for name in registry.names() for split in ("train", "heldout")]


def _shapes(tree):
    return jax.tree.map(lambda x: (tuple(x.shape), str(x.dtype)), tree)


@pytest.mark.parametrize("name, split", FAMILY_SPLITS)
def test_vmap_matches_loop(name, split):
    """Batched (vmap) sample/init/loss/eval/grad equal one-config-at-a-time evaluation
    (``lax.map``, a sequential loop over unbatched calls), in one compiled function."""
    family = registry.get(name, split=split)

    def one(key):
        cfg = family.sample(key)
        task = family.task(cfg)
        params = task.init(key)
        batch_key = jax.random.fold_in(key, 1)
        evals = jnp.stack([task.eval_loss(params, batch_key, s) for s in ("train", "test")])
        loss, grads = jax.value_and_grad(task.loss)(params, batch_key)
        return cfg, params, loss, evals, grads

    keys = jax.random.split(jax.random.key(42), NUM_CFGS)
    batched, looped = jax.jit(lambda k: (jax.vmap(one)(k), jax.lax.map(one, k)))(keys)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-5),
                 batched, looped)
    cfgs, params, losses, evals, grads = batched
    assert losses.shape == (NUM_CFGS,) and np.all(np.isfinite(losses))
    assert len(set(np.asarray(losses).tolist())) > 1  # distinct configs, distinct tasks
    assert np.all(np.isfinite(evals))
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(params))
    assert jax.tree.structure(grads) == jax.tree.structure(params)
    assert all(np.all(np.isfinite(g)) and np.any(g != 0) for g in jax.tree.leaves(grads))


@pytest.mark.parametrize("name", registry.names())
def test_heldout_differs_from_train(name):
    train, heldout = registry.get(name), registry.get(name, split="heldout")
    assert train.split == "train" and heldout.split == "heldout"
    key = jax.random.key(0)
    train_cfg, heldout_cfg = train.sample(key), heldout.sample(key)
    train_shapes = _shapes(jax.eval_shape(train.task(train_cfg).init, key))
    heldout_shapes = _shapes(jax.eval_shape(heldout.task(heldout_cfg).init, key))
    if name.startswith("logreg"):  # same shapes; batch size, L2 and init range differ
        assert train_shapes == heldout_shapes
        assert train.task(train_cfg).name != heldout.task(heldout_cfg).name
    else:
        assert train_shapes != heldout_shapes, "held-out sizes should differ"
    # other seeds too: the same key never gives the same config
    assert jax.tree.structure(train_cfg) == jax.tree.structure(heldout_cfg)
    diffs = jax.tree.map(lambda a, b: a.shape != b.shape or not np.array_equal(a, b),
                         train_cfg, heldout_cfg)
    assert any(jax.tree.leaves(diffs))


@pytest.mark.parametrize("name", registry.names())
def test_task_interface(name):
    family = registry.get(name)
    task = family.sample_task(jax.random.key(1))
    assert isinstance(task, Task) and task.name
    params = jax.eval_shape(task.init, jax.random.key(2))
    with pytest.raises(ValueError, match="expected one of"):
        jax.eval_shape(lambda p: task.eval_loss(p, jax.random.key(3), "validation"), params)
