"""``logreg-digits``: softmax (multinomial logistic) regression on flattened images.

    logits = x W + b,   W (H*W*C, K),   loss = mean cross-entropy (+ 0.5 l2 ||W, b||^2)

Train variant: batch 128, no L2. Held-out: batch 32 with L2 = 1e-3 and a wider
init-multiplier range (0.5..8), other seeds. The activation option is unused.
"""

from __future__ import annotations

import flax.linen as nn
import jax

from tasks import registry
from tasks.base import TaskFamily
from tasks.classifier import (
    ClassifierCfg, ClassifierConfig, classifier_task, make_network, sample_classifier_cfg,
)
from tasks.sampling import variant_key


class SoftmaxRegression(nn.Module):
    """``x (B, ...) -> x.reshape(B, -1) @ W + b`` of shape ``(B, num_classes)``."""

    num_classes: int

    @nn.compact
    def __call__(self, x: jax.Array, activation: jax.Array) -> jax.Array:
        del activation
        return nn.Dense(self.num_classes)(x.reshape(x.shape[0], -1))


def build_logreg(config: ClassifierConfig, variant: str = "train") -> TaskFamily:
    """The softmax-regression family for ``config`` (loads the dataset now)."""
    data = config.device_data()
    network = make_network(SoftmaxRegression(data.num_classes), data.image_shape)
    name = f"logreg-{config.dataset}/b{config.batch_size}/l2={config.l2:g}"

    def task(cfg: ClassifierCfg):
        return classifier_task(name, network, cfg, config, data)

    return TaskFamily(
        name=f"logreg-{config.dataset}",
        sample=lambda key: sample_classifier_cfg(variant_key(key, variant), config),
        task=task,
        split=variant,
    )


registry.register_config(
    "logreg-digits", build_logreg, ClassifierConfig(),
    ClassifierConfig(batch_size=32, l2=1e-3, init_scale_range=(0.5, 8.0)),
)
