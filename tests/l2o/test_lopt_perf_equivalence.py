"""Golden outputs: the learned optimizers' updates and states stay numerically fixed.

`tests/l2o/data/golden_updates.npz` holds, for every case below, the flat updates of 5
steps and the final state leaves, computed by the first (reference) implementation of
`MLPOptimizer`, `LSTMOptimizer` and the loss guard. Shipped pretrained weights depend on
this function, so any rewrite for speed must reproduce it to float32 tolerance. The MLP
optimizer now keeps its accumulators per leaf; they are compared in the flat layout the
file was written in (`_flat_mlp_state`), with the same values.

Regenerate ONLY for an intended change of the math:
``python tests/l2o/test_lopt_perf_equivalence.py --write``.
"""

import math
import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import l2o
from l2o import LSTMOptimizer, MLPOptimizer
from l2o.mlp import MLPOptState
from l2o import GuardedOptimizer, GuardState

GOLDEN = pathlib.Path(__file__).parent / "data" / "golden_updates.npz"
NUM_STEPS = 5
# name -> (optimizer, theta source, params kind): theta "pretrained" / "init" / "random".
CASES = {
    "mlp_pretrained": (None, "pretrained", "nested"),
    "mlp_random": (MLPOptimizer(), "random", "nested"),
    "mlp_random_big_exp": (MLPOptimizer(exp_mult=0.3, step_mult=0.01), "random", "nested"),
    "mlp_all_wd_chunked": (
        MLPOptimizer(normalize_over="all", weight_decay=0.01, chunk_size=64, hidden_sizes=(16,)),
        "random",
        "nested",
    ),
    "mlp_no_nominal_chunked": (
        MLPOptimizer(nominal=False, chunk_size=64, hidden_sizes=(8, 16, 8)), "random", "nested"
    ),
    "mlp_clip_binds": (MLPOptimizer(), "random", "large"),
    "mlp_init": (MLPOptimizer(), "init", "nested"),
    "lstm_init": (LSTMOptimizer(), "init", "nested"),
    "lstm_random": (LSTMOptimizer(), "random", "nested"),
    "lstm_momentum_loss_chunked": (
        LSTMOptimizer(momentum_decay=0.9, use_loss=True, chunk_size=64, num_layers=3, hidden_size=8),
        "random",
        "nested",
    ),
    "lstm_large": (LSTMOptimizer(num_layers=1), "random", "large"),
    "guarded_mlp": (GuardedOptimizer(MLPOptimizer(nominal_lr=0.3), optax.adam(1e-2), shadow=False), "init", "nested"),
    "guarded_lstm": (GuardedOptimizer(LSTMOptimizer(), optax.sgd(1e-2), shadow=False), "random", "nested"),
}


def _params(kind):
    """Float32 pytree; "large" has a 12,288-coordinate leaf (per-tensor clip can bind)."""
    keys = jax.random.split(jax.random.key(7), 4)
    if kind == "nested":
        return {
            "dense": {"w": 0.3 * jax.random.normal(keys[0], (20, 16)), "b": jnp.zeros((16,))},
            "conv": 0.2 * jax.random.normal(keys[1], (3, 3, 2, 4)),
            "scale": jnp.float32(1.5),
        }
    return {"big": 0.1 * jax.random.normal(keys[2], (96, 128)), "small": jax.random.normal(keys[3], (7,))}


def _grads(params, step):
    """Per-leaf scales 1e-3 .. 1e2, one outlier coordinate per leaf; an inf at step 2."""
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(100 + step), len(leaves))
    out = []
    for i, (k, leaf) in enumerate(zip(keys, leaves)):
        g = (10.0 ** (i - 3 + step % 2)) * jax.random.normal(k, leaf.shape)
        flat = g.ravel()
        flat = flat.at[(step * 7) % flat.size].multiply(1e4)
        if step == 2 and i == 0:
            flat = flat.at[-1].set(jnp.inf)
        out.append(flat.reshape(leaf.shape))
    return jax.tree.unflatten(treedef, out)


def _theta(lopt, source, seed):
    theta = lopt.init_meta_params(jax.random.key(seed))
    if source == "init":
        return theta
    leaves, treedef = jax.tree.flatten(theta)
    keys = jax.random.split(jax.random.key(seed + 1), len(leaves))
    leaves = [0.25 * jax.random.normal(k, x.shape) for k, x in zip(keys, leaves)]
    theta = jax.tree.unflatten(treedef, leaves)
    if "log_lr" in theta:
        theta["log_lr"] = jnp.float32(math.log(1e-2))
    return theta


def _case(name):
    lopt, source, kind = CASES[name]
    if source == "pretrained":
        lopt, theta, _ = l2o.load_pretrained("mlp-image")
    else:
        theta = _theta(lopt, source, seed=len(name))
    return lopt, theta, _params(kind)


def _value_fn(params):
    """Smooth, non-convex comparison loss: sum x^2 / 2 + sin(3 x)."""
    return sum(jnp.sum(0.5 * x**2 + jnp.sin(3.0 * x)) for x in jax.tree.leaves(params))


def _flat_mlp_state(state):
    """An `MLPOptState` in the layout the golden file was written in: momenta (N, K) and
    second moment (N,), leaves concatenated in ``jax.tree.leaves`` order."""
    momenta = [np.asarray(m).reshape(np.shape(m)[0], -1).T for m in jax.tree.leaves(state.momenta)]
    second = [np.ravel(np.asarray(v)) for v in jax.tree.leaves(state.second_moment)]
    return state.replace(momenta=np.concatenate(momenta), second_moment=np.concatenate(second))


def run_case(name):
    """Flat updates of each step, (NUM_STEPS, N), and the final state's leaves."""
    lopt, theta, params = _case(name)
    state = lopt.init(theta, params, 20)
    guarded = isinstance(lopt, GuardedOptimizer)

    @jax.jit
    def step(theta, grads, state, params, loss):
        if guarded:
            return lopt.update(theta, grads, state, params, loss, next_loss_fn=_value_fn)
        return lopt.update(theta, grads, state, params, loss)

    updates_per_step = []
    for t in range(NUM_STEPS):
        grads = _grads(params, t)
        updates, state = step(theta, grads, state, params, jnp.float32(0.5 + t))
        updates_per_step.append(np.concatenate([np.ravel(u) for u in jax.tree.leaves(updates)]))
        params = jax.tree.map(lambda p, u: p + u, params, updates)
    if isinstance(state, GuardState):  # the per-step rule's fields (golden predates the shadow)
        state = tuple(state)[:7]
    state = jax.tree.map(lambda s: _flat_mlp_state(s) if isinstance(s, MLPOptState) else s,
                         state, is_leaf=lambda s: isinstance(s, MLPOptState))
    return np.stack(updates_per_step), [np.asarray(x) for x in jax.tree.leaves(state)]


def _write():
    arrays = {}
    for name in CASES:
        updates, state = run_case(name)
        arrays[f"{name}/updates"] = updates
        for i, leaf in enumerate(state):
            arrays[f"{name}/state_{i}"] = leaf
    GOLDEN.parent.mkdir(exist_ok=True)
    np.savez_compressed(GOLDEN, **arrays)


def _close(got, want, what):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    if not np.issubdtype(want.dtype, np.floating):
        np.testing.assert_array_equal(got, want, err_msg=what)
        return
    finite = np.isfinite(want)
    np.testing.assert_array_equal(np.isfinite(got), finite, err_msg=f"{what}: non-finite entries")
    np.testing.assert_array_equal(got[~finite], want[~finite], err_msg=what)
    scale = float(np.max(np.abs(want[finite]), initial=0.0))
    np.testing.assert_allclose(got[finite], want[finite], rtol=1e-5, atol=1e-6 * scale, err_msg=what)


@pytest.mark.parametrize("name", list(CASES))
def test_matches_golden(name):
    golden = np.load(GOLDEN)
    updates, state = run_case(name)
    want_updates = golden[f"{name}/updates"]
    assert np.all(np.isfinite(want_updates)) and np.any(want_updates != 0)
    _close(updates, want_updates, f"{name} updates")
    num_state = len([k for k in golden.files if k.startswith(f"{name}/state_")])
    assert len(state) == num_state, f"{name}: {len(state)} state leaves, golden has {num_state}"
    for i, leaf in enumerate(state):
        _close(leaf, golden[f"{name}/state_{i}"], f"{name} state leaf {i}")


def test_clip_case_really_clips():
    """In "mlp_clip_binds" a normalised gradient feature exceeds FEATURE_LIMIT (=100)."""
    params = _params("large")
    g = np.asarray(_grads(params, 0)["big"]).ravel()
    assert np.max(np.abs(g)) / np.sqrt(np.mean(g**2)) > 100.0
    assert params["big"].size > 100.0**2  # |x| / rms(x) <= sqrt(n): needed for the clip to bind


def test_flatten_and_leaf_index():
    """flatten == concatenation of raveled leaves; leaf_index maps rows to their leaf."""
    from l2o import flat

    params = _params("nested")
    leaves = jax.tree.leaves(params)
    want = np.concatenate([np.ravel(np.asarray(x, np.float32)) for x in leaves])
    np.testing.assert_array_equal(jax.jit(flat.flatten)(params), want)
    layout = flat.tree_layout(params)
    want_index = np.repeat(np.arange(len(leaves)), layout.sizes)
    rows = jnp.arange(layout.num_coordinates)
    np.testing.assert_array_equal(flat.leaf_index(rows, layout), want_index)
    single = flat.tree_layout({"w": jnp.zeros((3, 2))})
    np.testing.assert_array_equal(flat.leaf_index(jnp.arange(6), single), np.zeros(6))


if __name__ == "__main__":
    if "--write" in sys.argv:
        _write()
        print(f"wrote {GOLDEN}")
