"""Golden meta-training trajectory: a single-family config keeps its exact numbers.

`tests/meta_train/data/golden_single_family.npz` holds theta (flat) and the metrics of
4 outer steps of a small single-family PES run, and the leaf count of its state,
computed before mixtures, augmentation and sampled horizons existed. A config without
them must still build the plain `ESGradientEstimator` and reproduce those numbers (float32
tolerance, so that a faster but equivalent engine passes too).

Regenerate ONLY for an intended change of the math:
``PYTHONPATH=.:tests python tests/meta_train/test_golden_single_family.py --write``.
"""

import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np

import l2o
from meta_train.config import MetaTrainConfig
from meta_train.pes import ESGradientEstimator
from meta_train.train import build

from helpers.systems import TOY_FAMILY

GOLDEN = pathlib.Path(__file__).parent / "data" / "golden_single_family.npz"
NUM_STEPS = 4
METRICS = ("meta_loss", "grad_norm", "update_norm", "theta_norm", "num_resets")


def _run() -> dict:
    config = MetaTrainConfig(family="toy", lopt="mlp", lopt_config={"hidden_sizes": [4]},
                             horizon=8, trunc_length=4, num_tasks=2, num_pairs=2, sigma=0.05,
                             outer_lr=1e-2, seed=3)
    components = build(config, family=TOY_FAMILY, heldout=TOY_FAMILY,
                       lopt=l2o.MLPOptimizer(hidden_sizes=(4,)))
    estimator = components.estimator
    state = estimator.init(jax.random.fold_in(jax.random.PRNGKey(config.seed), 0),
                           components.theta_init)
    out = {"num_leaves": np.asarray(len(jax.tree.leaves(state)))}
    rows = []
    for _ in range(NUM_STEPS):
        state, metrics = estimator.step(state)
        rows.append([float(metrics[name]) for name in METRICS])
    theta = estimator.theta(state)
    out["theta"] = np.asarray(jnp.concatenate([jnp.ravel(x) for x in jax.tree.leaves(theta)]))
    out["metrics"] = np.asarray(rows, np.float64)
    out["estimator_is_plain"] = np.asarray(type(estimator) is ESGradientEstimator)
    return out


def test_single_family_run_matches_golden():
    golden = np.load(GOLDEN)
    got = _run()
    assert bool(got["estimator_is_plain"])
    assert int(got["num_leaves"]) == int(golden["num_leaves"])  # checkpoints stay compatible
    np.testing.assert_allclose(got["theta"], golden["theta"], rtol=1e-5,
                               atol=1e-6 * float(np.max(np.abs(golden["theta"]))))
    np.testing.assert_allclose(got["metrics"], golden["metrics"], rtol=1e-5, atol=1e-7)
    # The run moved theta, so matching it means something.
    assert float(golden["metrics"][:, 2].min()) > 0


if __name__ == "__main__" and "--write" in sys.argv:
    result = _run()
    result.pop("estimator_is_plain")
    np.savez(GOLDEN, **result)
    print(f"wrote {GOLDEN}: {({k: v.shape for k, v in result.items()})}")
