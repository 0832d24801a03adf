"""``conv-digits``: small convolutional classifiers (flax linen).

Architecture: 3x3 'SAME' convolutions with ``channels`` filters, the first with stride
1 and the others stride 2, each followed by the activation, then a dense layer to the
classes. On 8x8x1 digits the train variant (channels 8, 16; tanh; batch 128) maps
8x8x1 -> 8x8x8 -> 4x4x16 -> 10. Held-out: channels (16, 32), ReLU, other seeds.
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


class ConvNet(nn.Module):
    """``x (B, H, W, C) -> logits (B, num_classes)``."""

    channels: tuple[int, ...]
    num_classes: int
    activations: tuple[str, ...]

    @nn.compact
    def __call__(self, x: jax.Array, activation: jax.Array) -> jax.Array:
        for i, width in enumerate(self.channels):
            stride = 1 if i == 0 else 2
            x = nn.Conv(width, (3, 3), strides=(stride, stride), padding="SAME")(x)
            x = apply_activation(self.activations, activation, x)
        return nn.Dense(self.num_classes)(x.reshape(x.shape[0], -1))


@dataclasses.dataclass(frozen=True)
class ConvConfig(ClassifierConfig):
    """:class:`ClassifierConfig` plus ``channels`` (filters of each conv layer)."""

    channels: tuple[int, ...] = (8, 16)

    def __post_init__(self):
        super().__post_init__()
        channels = (self.channels,) if isinstance(self.channels, int) else self.channels
        set_fields(self, channels=tuple(check_positive_int("channels[i]", c) for c in channels))
        if not self.channels:
            raise ValueError("channels must name at least one conv layer, got ().")


def build_conv(config: ConvConfig, variant: str = "train") -> TaskFamily:
    """The conv-net family for ``config`` (loads the dataset now)."""
    data = config.device_data()
    model = ConvNet(config.channels, data.num_classes, config.activations)
    network = make_network(model, data.image_shape)
    name = (f"conv-{config.dataset}/c{'-'.join(map(str, config.channels))}"
            f"/{'|'.join(config.activations)}")

    def task(cfg: ClassifierCfg):
        return classifier_task(name, network, cfg, config, data)

    return TaskFamily(
        name=f"conv-{config.dataset}",
        sample=lambda key: sample_classifier_cfg(variant_key(key, variant), config),
        task=task,
        split=variant,
    )


registry.register_config(
    "conv-digits", build_conv, ConvConfig(),
    ConvConfig(channels=(16, 32), activations=("relu",)),
)
