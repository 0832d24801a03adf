"""Shared machinery of the image-classifier families (MLP, conv-net, softmax regression).

Data lives on device as uint8 images and int32 labels; a minibatch is gathered inside
``jit`` by ``jax.random.randint`` indices and normalised after gathering:
``x = (pixel / 255 - mean) / std`` with the scalar mean/std of the training images.

The training loss of a task is the mean softmax cross-entropy of a minibatch of
``batch_size`` training images plus ``0.5 * l2 * ||params||^2``; ``eval_loss`` and
``metrics`` use ``eval_batch_size`` images of the requested split (the whole split, in
order, when it has at most that many images) and no L2 term.

A family config (``cfg``) is a :class:`ClassifierCfg`: an init-scale multiplier applied
to every initial parameter and the index of the activation function among the
config's ``activations`` (selected with ``jax.lax.switch``, so it can be vmapped).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from tasks.base import Task, check_split
from tasks.sampling import (
    categorical_index, check_positive_int, check_range, log_uniform, set_fields,
)
from tasks.supervised import supervised_task

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "sigmoid": jax.nn.sigmoid,
    "gelu": jax.nn.gelu,
    "elu": jax.nn.elu,
    "swish": jax.nn.swish,
}


def apply_activation(names: Sequence[str], index: jax.Array, x: jax.Array) -> jax.Array:
    """``ACTIVATIONS[names[index]](x)``; ``index`` may be traced (``lax.switch``)."""
    if len(names) == 1:
        return ACTIVATIONS[names[0]](x)
    return jax.lax.switch(index, [ACTIVATIONS[n] for n in names], x)


def check_activations(names: str | Sequence[str]) -> tuple[str, ...]:
    """Validate activation names (one name or a non-empty sequence of ``ACTIVATIONS`` keys)."""
    activations = (names,) if isinstance(names, str) else tuple(names)
    unknown = [a for a in activations if a not in ACTIVATIONS]
    if not activations or unknown:
        raise ValueError(
            f"activations must be a non-empty sequence of {sorted(ACTIVATIONS)}, got {names!r}.")
    return activations


class DeviceData(NamedTuple):
    """A dataset on device: uint8 ``(N, H, W, C)`` images, int32 ``(N,)`` labels per split."""

    train_images: jax.Array
    train_labels: jax.Array
    test_images: jax.Array
    test_labels: jax.Array
    mean: float
    std: float
    num_classes: int
    image_shape: tuple[int, int, int]


@functools.cache
def device_data(name: str, data_dir: str) -> DeviceData:
    """Load dataset ``name`` (see :func:`tasks.data.load_dataset`) onto the default device."""
    from tasks.data import load_dataset

    dataset = load_dataset(name, data_dir)
    pixels = dataset.train_images.astype(np.float64) / 255.0
    return DeviceData(
        train_images=jnp.asarray(dataset.train_images),
        train_labels=jnp.asarray(dataset.train_labels),
        test_images=jnp.asarray(dataset.test_images),
        test_labels=jnp.asarray(dataset.test_labels),
        mean=float(pixels.mean()),
        std=float(max(pixels.std(), 1e-3)),
        num_classes=dataset.num_classes,
        image_shape=dataset.image_shape,
    )


def gather_batch(data: DeviceData, key: jax.Array, split: str, batch_size: int):
    """Normalised float32 images ``(B, H, W, C)`` and labels ``(B,)`` of ``split``.

    Indices are ``randint(key, (batch_size,), 0, N)`` (with replacement); when
    ``batch_size >= N`` the whole split is returned in order and ``key`` is unused.
    """
    check_split(split)
    images = data.train_images if split == "train" else data.test_images
    labels = data.train_labels if split == "train" else data.test_labels
    if batch_size < images.shape[0]:
        index = jax.random.randint(key, (batch_size,), 0, images.shape[0])
        images, labels = images[index], labels[index]
    x = (images.astype(jnp.float32) / 255.0 - data.mean) / data.std
    return x, labels


@struct.dataclass
class ClassifierCfg:
    """Per-task config: ``init_scale`` (float32 scalar), ``activation`` (int32 index)."""

    init_scale: jax.Array
    activation: jax.Array


@dataclasses.dataclass(frozen=True)
class ClassifierConfig:
    """Options shared by the image-classifier families.

    Attributes:
      dataset: "digits" (default, offline), "mnist", "fashion_mnist" or "cifar10".
      data_dir: TFDS data directory (None: ``$L2O_DATA_DIR`` or the default cache).
      batch_size: training minibatch size.
      eval_batch_size: images per ``eval_loss``/``metrics`` call (whole split if larger).
      init_scale_range: ``(low, high)``; the init multiplier is log-uniform in it.
      activations: names from ``ACTIVATIONS``; each task draws one uniformly.
      l2: weight of ``0.5 * ||params||^2`` in the training loss.
    """

    dataset: str = "digits"
    data_dir: str | None = None
    batch_size: int = 128
    eval_batch_size: int = 2048
    init_scale_range: tuple[float, float] = (0.5, 2.0)
    activations: tuple[str, ...] = ("tanh",)
    l2: float = 0.0

    def __post_init__(self):
        from tasks.data import DATASETS

        if self.dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {sorted(DATASETS)}, got {self.dataset!r}.")
        if not float(self.l2) >= 0:
            raise ValueError(f"l2 must be >= 0, got {self.l2!r}.")
        set_fields(
            self, activations=check_activations(self.activations), l2=float(self.l2),
            batch_size=check_positive_int("batch_size", self.batch_size),
            eval_batch_size=check_positive_int("eval_batch_size", self.eval_batch_size),
            init_scale_range=check_range("init_scale_range", self.init_scale_range, positive=True),
        )

    def device_data(self) -> DeviceData:
        """This config's dataset on device (loaded once per process and directory)."""
        from tasks.data import resolve_data_dir

        return device_data(self.dataset, resolve_data_dir(self.data_dir))


def sample_classifier_cfg(key: jax.Array, config: ClassifierConfig) -> ClassifierCfg:
    """Draw an init multiplier (log-uniform) and an activation index (uniform)."""
    unit = jax.random.uniform(key, (2,), jnp.float32)
    return ClassifierCfg(
        init_scale=log_uniform(unit[0], config.init_scale_range),
        activation=categorical_index(unit[1], len(config.activations)),
    )


class Network(NamedTuple):
    """A flax model with the shapes of its parameters, computed once per family.

    ``init_stds`` holds, per parameter leaf, the LeCun-normal standard deviation
    ``1 / sqrt(fan_in)`` of a kernel (``fan_in`` = product of all but the last axis) or
    0 for a bias (initialised to zero).
    """

    model: object
    treedef: object
    shapes: tuple[tuple[int, ...], ...]
    init_stds: tuple[float, ...]


def make_network(model, image_shape: tuple[int, ...]) -> Network:
    """Trace ``model.init`` abstractly (no compile) on a ``(1, *image_shape)`` input."""
    dummy = jax.ShapeDtypeStruct((1, *image_shape), jnp.float32)
    abstract = jax.eval_shape(
        lambda x: model.init(jax.random.key(0), x, jnp.int32(0))["params"], dummy)
    leaves, treedef = jax.tree.flatten(abstract)
    shapes = tuple(tuple(leaf.shape) for leaf in leaves)
    stds = tuple(
        float(1.0 / np.sqrt(np.prod(shape[:-1]))) if len(shape) >= 2 else 0.0 for shape in shapes
    )
    return Network(model, treedef, shapes, stds)


def init_params(network: Network, key: jax.Array, init_scale: jax.Array):
    """Parameters with kernels ``init_scale * N(0, 1/fan_in)`` and zero biases.

    All kernels come from a single ``jax.random.normal`` draw (one RNG op to compile).
    """
    sizes = [int(np.prod(s)) if std > 0 else 0 for s, std in zip(network.shapes, network.init_stds)]
    gauss = jax.random.normal(key, (max(sum(sizes), 1),), jnp.float32)
    leaves, offset = [], 0
    for shape, std, size in zip(network.shapes, network.init_stds, sizes):
        if size == 0:
            leaves.append(jnp.zeros(shape, jnp.float32))
        else:
            leaves.append(gauss[offset:offset + size].reshape(shape) * (std * init_scale))
            offset += size
    return jax.tree.unflatten(network.treedef, leaves)


def network_task(name: str, network: Network, cfg, *, gather, loss: str, batch_size: int,
                 eval_batch_size: int, l2: float = 0.0) -> Task:
    """A :func:`tasks.supervised.supervised_task` training ``network.model``
    (``apply(vars, x, activation)``) from ``cfg.init_scale`` and ``cfg.activation``."""
    return supervised_task(
        name,
        init=lambda key: init_params(network, key, cfg.init_scale),
        apply=lambda params, x: network.model.apply({"params": params}, x, cfg.activation),
        gather=gather, loss=loss, batch_size=batch_size, eval_batch_size=eval_batch_size, l2=l2,
    )


def classifier_task(
    name: str,
    network: Network,
    cfg: ClassifierCfg,
    config: ClassifierConfig,
    data: DeviceData,
) -> Task:
    """A cross-entropy :func:`network_task` on ``data``'s images."""
    return network_task(
        name, network, cfg, gather=functools.partial(gather_batch, data),
        loss="cross_entropy", batch_size=config.batch_size,
        eval_batch_size=config.eval_batch_size, l2=config.l2,
    )
