"""Meta-training an MLP optimizer with ``lr_adapt``: the per-tensor offsets ride in the
inner state through PES truncations and resets, and the saved optimizer keeps the option."""

from __future__ import annotations

import jax
import numpy as np

import l2o
from meta_train.train import build, train

from helpers.reliability import tiny_config


def test_meta_training_with_lr_adapt_moves_theta_and_saves_the_option(tmp_path):
    lopt_config = {"hidden_sizes": [4], "lr_adapt": 0.1, "fan_in_scaling": "inverse_sqrt"}
    config = tiny_config(tmp_path / "run", lopt_config=lopt_config)
    result = train(config, progress=False)
    start = build(config).theta_init
    moved = [float(abs(a - b).max()) for a, b in zip(jax.tree.leaves(result.theta),
                                                     jax.tree.leaves(start))]
    assert max(moved) > 0 and all(np.isfinite(moved))
    loaded = l2o.load(tmp_path / "run" / "theta")
    assert loaded.lopt.lr_adapt == 0.1
    state = loaded.lopt.init(loaded.theta, {"w": np.ones((3, 2), np.float32)}, 4)
    assert jax.tree.structure(state.lr_offsets) == jax.tree.structure({"w": 0})
