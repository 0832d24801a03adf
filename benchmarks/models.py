"""Models and task families the benchmarks train, written with plain ``jax.numpy``.

* `mlp_classifier(sizes)`: relu MLP classifier; sizes (784, 1024, 1024, 10) has
  1,863,690 parameters, the ``optimizer_step`` benchmark's main model.
* `conv_classifier()`: 28x28x1 images, two 3x3 stride-2 convolutions (8, 16 channels,
  relu) and a dense layer to 10 classes (9,098 parameters).
* `synthetic_mlp_family()`: a `tasks.base.TaskFamily` with the shapes of the digits
  MLP task (64-32-10 tanh MLP, batch 128) on fixed random data labelled by a random
  linear teacher, so meta-training benchmarks need no dataset. `get_family("auto")`
  returns the registered ``mlp-digits`` family when it exists, else this one.

Losses are mean softmax cross-entropy over the batch: ``mean_i(logsumexp(z_i) - z_i[y_i])``.
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from tasks.base import Task, TaskFamily, check_split


class Model(NamedTuple):
    """A classifier: ``init(key) -> params`` and ``loss(params, x, y) -> scalar``."""

    name: str
    init: Callable[[jax.Array], Any]
    loss: Callable[[Any, jax.Array, jax.Array], jax.Array]
    input_shape: tuple[int, ...]
    num_classes: int


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Mean softmax cross-entropy of (B, C) logits against (B,) int labels."""
    picked = jnp.take_along_axis(logits, labels[:, None], axis=1)[:, 0]
    return jnp.mean(jax.nn.logsumexp(logits, axis=1) - picked)


def _dense_init(key: jax.Array, fan_in: int, fan_out: int, scale: float = 1.0) -> dict:
    w = jax.random.normal(key, (fan_in, fan_out), jnp.float32) * (scale / math.sqrt(fan_in))
    return {"w": w, "b": jnp.zeros((fan_out,), jnp.float32)}


def mlp_apply(params: list, x: jax.Array, activation: Callable = jax.nn.relu) -> jax.Array:
    """Logits of a dense stack: hidden layers ``activation(h @ w + b)``, linear last layer."""
    h = x.reshape(x.shape[0], -1)
    for layer in params[:-1]:
        h = activation(h @ layer["w"] + layer["b"])
    return h @ params[-1]["w"] + params[-1]["b"]


def mlp_classifier(sizes: tuple[int, ...] = (784, 1024, 1024, 10)) -> Model:
    """Relu MLP with layer widths ``sizes`` (input first, classes last)."""
    if len(sizes) < 2 or any(int(s) != s or s < 1 for s in sizes):
        raise ValueError(f"sizes must be >= 2 positive ints (input, ..., classes); got {sizes!r}.")

    def init(key):
        keys = jax.random.split(key, len(sizes) - 1)
        return [_dense_init(k, a, b) for k, a, b in zip(keys, sizes[:-1], sizes[1:])]

    def loss(params, x, y):
        return cross_entropy(mlp_apply(params, x), y)

    name = "mlp-" + "-".join(str(s) for s in sizes)
    return Model(name, init, loss, (sizes[0],), sizes[-1])


def _conv(x: jax.Array, w: jax.Array, b: jax.Array) -> jax.Array:
    out = jax.lax.conv_general_dilated(
        x, w, window_strides=(2, 2), padding="SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
    return jax.nn.relu(out + b)


def conv_classifier(channels: tuple[int, int] = (8, 16), image: int = 28) -> Model:
    """Two 3x3 stride-2 relu convolutions on (B, image, image, 1), then dense to 10 classes."""
    side = math.ceil(math.ceil(image / 2) / 2)

    def init(key):
        k1, k2, k3 = jax.random.split(key, 3)
        c1, c2 = channels
        return {
            "conv1": {"w": jax.random.normal(k1, (3, 3, 1, c1)) / 3.0, "b": jnp.zeros((c1,))},
            "conv2": {"w": jax.random.normal(k2, (3, 3, c1, c2)) / math.sqrt(9 * c1),
                      "b": jnp.zeros((c2,))},
            "dense": _dense_init(k3, side * side * c2, 10),
        }

    def loss(params, x, y):
        h = _conv(x, params["conv1"]["w"], params["conv1"]["b"])
        h = _conv(h, params["conv2"]["w"], params["conv2"]["b"])
        return cross_entropy(mlp_apply([params["dense"]], h), y)

    return Model(f"conv-{image}x{image}x1-{channels[0]}-{channels[1]}", init, loss,
                 (image, image, 1), 10)


def random_batch(key: jax.Array, model: Model, batch_size: int) -> tuple[jax.Array, jax.Array]:
    """Standard-normal inputs ``(batch_size, *input_shape)`` and uniform int labels."""
    kx, ky = jax.random.split(key)
    x = jax.random.normal(kx, (batch_size, *model.input_shape), jnp.float32)
    y = jax.random.randint(ky, (batch_size,), 0, model.num_classes)
    return x, y


def _teacher_data(seed: int, num_examples: int, dim: int, classes: int):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 1.0, (num_examples, dim)).astype(np.float32)
    teacher = rng.normal(size=(dim, classes)).astype(np.float32)
    y = np.argmax((x - 0.5) @ teacher + 0.5 * rng.normal(size=(num_examples, classes)), axis=1)
    return jnp.asarray(x), jnp.asarray(y.astype(np.int32))


def synthetic_mlp_family(
    sizes: tuple[int, ...] = (64, 32, 10), batch_size: int = 128, num_examples: int = 1024
) -> TaskFamily:
    """Digits-MLP-shaped family on fixed teacher-labelled data (see module doc).

    ``cfg = {"init_scale": f32[]}`` log-uniform in [0.5, 2]; params are tanh-MLP layers
    with N(0, init_scale^2 / fan_in) weights. Train and test splits are disjoint halves of
    ``2 * num_examples`` examples; minibatches are gathered by random index inside jit.
    """
    data = _teacher_data(0, 2 * num_examples, sizes[0], sizes[-1])
    splits = {
        "train": (data[0][:num_examples], data[1][:num_examples]),
        "test": (data[0][num_examples:], data[1][num_examples:]),
    }

    def sample(key):
        return {"init_scale": jnp.exp(jax.random.uniform(key, (), minval=-0.7, maxval=0.7))}

    def task(cfg):
        def init(key):
            keys = jax.random.split(key, len(sizes) - 1)
            return [_dense_init(k, a, b, cfg["init_scale"])
                    for k, a, b in zip(keys, sizes[:-1], sizes[1:])]

        def split_loss(params, key, split):
            x, y = splits[check_split(split)]
            index = jax.random.randint(key, (batch_size,), 0, x.shape[0])
            return cross_entropy(mlp_apply(params, x[index], jnp.tanh), y[index])

        return Task(
            name="synthetic-mlp/" + "-".join(map(str, sizes)),
            init=init,
            loss=lambda params, key: split_loss(params, key, "train"),
            eval_loss=split_loss,
        )

    return TaskFamily(name="synthetic-mlp", sample=sample, task=task)


def get_family(name: str = "auto") -> TaskFamily:
    """``"synthetic-mlp"``, a registered family name, or ``"auto"`` (``mlp-digits`` if
    registered, else ``synthetic-mlp``)."""
    from tasks import registry

    if name == "synthetic-mlp":
        return synthetic_mlp_family()
    if name == "auto":
        return registry.get("mlp-digits") if "mlp-digits" in registry.names() else synthetic_mlp_family()
    if name not in registry.names():
        raise ValueError(
            f"unknown family {name!r}; expected 'auto', 'synthetic-mlp' or one of "
            f"{registry.names()}."
        )
    return registry.get(name)
