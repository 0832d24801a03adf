"""A short real meta-training: the MLP optimizer on noisy quadratics (registry family)."""

from __future__ import annotations

import csv

import numpy as np

from meta_train.config import MetaTrainConfig
from meta_train.train import train


def test_meta_training_beats_the_untrained_optimizer_on_heldout_quadratics(tmp_path):
    config = MetaTrainConfig(
        family="quadratic", lopt="mlp", lopt_config={"hidden_sizes": [8]}, horizon=50,
        trunc_length=10, num_tasks=5, num_pairs=4, outer_steps=150, sigma=0.05,
        outer_lr=0.01, log_every=10, eval_every=0, ckpt_every=0, eval_tasks=16,
        out_dir=str(tmp_path / "run"),
    )
    result = train(config, progress=False)
    rows = list(csv.DictReader(open(result.metrics_path)))
    meta_losses = np.array([float(r["meta_loss"]) for r in rows])
    assert np.all(np.isfinite(meta_losses))
    assert sum(int(r["num_nonfinite"]) for r in rows) == 0
    # Log-loss relative to the initial loss: the last 50 steps sit well below the first 10.
    assert meta_losses[-5:].mean() < meta_losses[0] - 1.0, meta_losses
    # Held-out quadratics (dim 20, condition 100-1000, unseen in training).
    trained = result.final_eval["trained"]["final_test_loss"]
    initial = result.final_eval["initial"]["final_test_loss"]
    assert trained < 0.5 * initial, (trained, initial)
