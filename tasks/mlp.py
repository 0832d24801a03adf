"""``mlp-digits``: fully connected classifiers on flattened images (flax linen).

Train variant (the reference setting): 64-32-10 on digits (input = 8*8 pixels, one
hidden layer of 32 units), tanh, batch 128, softmax cross-entropy, init multiplier
log-uniform in [0.5, 2]. Held-out variant: two hidden layers (64, 64), ReLU, other
seeds. Every option can be overridden, e.g. ``registry.get("mlp-digits",
dataset="mnist", hidden_sizes=(128,))``.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax

from tasks import registry
from tasks.base import TaskFamily
from tasks.classifier import (
    ClassifierCfg, ClassifierConfig, apply_activation, classifier_task, make_network,
    sample_classifier_cfg,
)
from tasks.sampling import check_positive_int, set_fields, variant_key


class MLP(nn.Module):
    """``x (B, ...) -> logits (B, num_classes)`` with ``hidden_sizes`` hidden layers."""

    hidden_sizes: tuple[int, ...]
    num_classes: int
    activations: tuple[str, ...]

    @nn.compact
    def __call__(self, x: jax.Array, activation: jax.Array) -> jax.Array:
        x = x.reshape(x.shape[0], -1)
        for width in self.hidden_sizes:
            x = apply_activation(self.activations, activation, nn.Dense(width)(x))
        return nn.Dense(self.num_classes)(x)


@dataclasses.dataclass(frozen=True)
class MLPConfig(ClassifierConfig):
    """:class:`ClassifierConfig` plus ``hidden_sizes`` (widths of the hidden layers)."""

    hidden_sizes: tuple[int, ...] = (32,)

    def __post_init__(self):
        super().__post_init__()
        sizes = (self.hidden_sizes,) if isinstance(self.hidden_sizes, int) else self.hidden_sizes
        sizes = tuple(check_positive_int("hidden_sizes[i]", s) for s in sizes)
        set_fields(self, hidden_sizes=sizes)


def build_mlp(config: MLPConfig, variant: str = "train") -> TaskFamily:
    """The MLP-classifier family for ``config`` (loads the dataset now)."""
    data = config.device_data()
    model = MLP(config.hidden_sizes, data.num_classes, config.activations)
    network = make_network(model, data.image_shape)
    in_dim = 1
    for s in data.image_shape:
        in_dim *= s
    widths = "-".join(str(w) for w in (in_dim, *config.hidden_sizes, data.num_classes))
    name = f"mlp-{config.dataset}/{widths}/{'|'.join(config.activations)}"

    def task(cfg: ClassifierCfg):
        return classifier_task(name, network, cfg, config, data)

    return TaskFamily(
        name=f"mlp-{config.dataset}",
        sample=lambda key: sample_classifier_cfg(variant_key(key, variant), config),
        task=task,
        split=variant,
    )


registry.register_config(
    "mlp-digits", build_mlp, MLPConfig(),
    MLPConfig(hidden_sizes=(64, 64), activations=("relu",)),
)
