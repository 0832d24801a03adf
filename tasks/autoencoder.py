"""``ae-digits``: fully connected autoencoders of flattened images, mean squared error.

The network maps the normalised image ``x`` (flattened to ``H*W*C`` values) through the
hidden layers back to ``H*W*C`` linear outputs ``x_hat``; the loss is
``mean_{b,i} (x_hat_bi - x_bi)^2`` (:mod:`tasks.supervised`, ``loss="mse"``), so a net
that outputs the mean image scores about 1.

Train variant: 64-32-64 on digits (one hidden layer of 32 units), the activation drawn
per task from tanh, ReLU, GELU and sigmoid, batch 128, init multiplier log-uniform in
[0.5, 2]. Held-out variant: a bottleneck 64-64-16-64-64, ReLU, other seeds. Every option
of :class:`tasks.mlp.MLPConfig` can be overridden, e.g.
``registry.get("ae-digits", hidden_sizes=(128, 8, 128))``.
"""

from __future__ import annotations

import math

from tasks import registry
from tasks.base import TaskFamily
from tasks.classifier import (
    ClassifierCfg, gather_batch, make_network, network_task, sample_classifier_cfg,
)
from tasks.mlp import MLP, MLPConfig
from tasks.sampling import variant_key

TRAIN_ACTIVATIONS = ("tanh", "relu", "gelu", "sigmoid")


def build_autoencoder(config: MLPConfig, variant: str = "train") -> TaskFamily:
    """The autoencoder family for ``config`` (loads the dataset now)."""
    data = config.device_data()
    num_pixels = math.prod(data.image_shape)
    model = MLP(config.hidden_sizes, num_pixels, config.activations)
    network = make_network(model, data.image_shape)
    widths = "-".join(str(w) for w in (num_pixels, *config.hidden_sizes, num_pixels))
    name = f"ae-{config.dataset}/{widths}/{'|'.join(config.activations)}"

    def gather(key, split, batch_size):
        images, _ = gather_batch(data, key, split, batch_size)
        flat = images.reshape(images.shape[0], -1)
        return flat, flat

    def task(cfg: ClassifierCfg):
        return network_task(name, network, cfg, gather=gather, loss="mse",
                            batch_size=config.batch_size,
                            eval_batch_size=config.eval_batch_size, l2=config.l2)

    return TaskFamily(
        name=f"ae-{config.dataset}",
        sample=lambda key: sample_classifier_cfg(variant_key(key, variant), config),
        task=task,
        split=variant,
    )


registry.register_config(
    "ae-digits", build_autoencoder,
    MLPConfig(hidden_sizes=(32,), activations=TRAIN_ACTIVATIONS),
    MLPConfig(hidden_sizes=(64, 16, 64), activations=("relu",)),
)
