"""``teacher-regression``: an MLP student fitted to a random MLP teacher, mean squared error.

Each task draws its own finite dataset (so it can overfit, like a real one) and keeps it
in the config, so a batch of tasks is one ``vmap``:

    x ~ N(0, I_d)                                  (num_train + num_test inputs)
    t(x) = act_T(x W1 / sqrt(d) + b1) W2 / sqrt(h)  W1, b1, W2 ~ N(0, 1)
    y = (t(x) - mean) / std + noise_std * eps      mean, std of t over the train inputs

with ``noise_std`` log-uniform in ``noise_range``, so the best achievable test loss is
about ``noise_std^2`` and predicting the mean scores about 1. The student is an MLP
(:class:`tasks.mlp.MLP`, linear output of ``output_dim`` units) whose activation is drawn
per task from ``activations``; loss ``mean (student(x) - y)^2`` on minibatches of the train
split (:mod:`tasks.supervised`, ``loss="mse"``).

Train variant: 16 inputs, tanh teacher with 32 hidden units, student 16-64-1 (tanh, ReLU,
GELU or sigmoid), 1,024 train / 512 test points, batch 128. Held-out variant: 8 inputs,
teacher width 64, student 8-32-32-1 ReLU, other seeds.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from tasks import registry
from tasks.base import TaskFamily
from tasks.classifier import ACTIVATIONS, check_activations, make_network, network_task
from tasks.mlp import MLP
from tasks.sampling import (
    categorical_index, check_positive_int, check_range, log_uniform, set_fields, variant_key,
)
from tasks.supervised import ArrayData, gather_arrays

TRAIN_ACTIVATIONS = ("tanh", "relu", "gelu", "sigmoid")


@struct.dataclass
class TeacherCfg:
    """One task: ``init_scale`` and ``activation`` (student), ``noise_std``, its ``data``."""

    init_scale: jax.Array
    activation: jax.Array
    noise_std: jax.Array
    data: ArrayData


@dataclasses.dataclass(frozen=True)
class TeacherConfig:
    """Options of the teacher-student regression family.

    Attributes:
      input_dim, output_dim: sizes of the inputs and of the regression targets.
      teacher_hidden: hidden units of the teacher; teacher_activation: its activation.
      num_train, num_test: examples per split, drawn per task.
      noise_range: ``(low, high)``, the label-noise std is log-uniform in it.
      hidden_sizes: the student's hidden layers; activations: one is drawn per task.
      batch_size, eval_batch_size, init_scale_range, l2: as in
        :class:`tasks.classifier.ClassifierConfig`.
    """

    input_dim: int = 16
    output_dim: int = 1
    teacher_hidden: int = 32
    teacher_activation: str = "tanh"
    num_train: int = 1024
    num_test: int = 512
    noise_range: tuple[float, float] = (0.01, 0.3)
    hidden_sizes: tuple[int, ...] = (64,)
    activations: tuple[str, ...] = TRAIN_ACTIVATIONS
    batch_size: int = 128
    eval_batch_size: int = 2048
    init_scale_range: tuple[float, float] = (0.5, 2.0)
    l2: float = 0.0

    def __post_init__(self):
        ints = ("input_dim", "output_dim", "teacher_hidden", "num_train", "num_test",
                "batch_size", "eval_batch_size")
        sizes = (self.hidden_sizes,) if isinstance(self.hidden_sizes, int) else self.hidden_sizes
        if self.teacher_activation not in ACTIVATIONS:
            raise ValueError(f"teacher_activation must be one of {sorted(ACTIVATIONS)}, "
                             f"got {self.teacher_activation!r}.")
        if not float(self.l2) >= 0:
            raise ValueError(f"l2 must be >= 0, got {self.l2!r}.")
        set_fields(
            self, **{name: check_positive_int(name, getattr(self, name)) for name in ints},
            hidden_sizes=tuple(check_positive_int("hidden_sizes[i]", s) for s in sizes),
            activations=check_activations(self.activations), l2=float(self.l2),
            noise_range=check_range("noise_range", self.noise_range, positive=True),
            init_scale_range=check_range("init_scale_range", self.init_scale_range,
                                         positive=True),
        )


def sample_teacher_cfg(key: jax.Array, config: TeacherConfig) -> TeacherCfg:
    """Draw a teacher, its dataset and the student's options (two random calls)."""
    d, h, k = config.input_dim, config.teacher_hidden, config.output_dim
    n = config.num_train + config.num_test
    sizes = (n * d, d * h, h, h * k, n * k)
    key_unit, key_gauss = jax.random.split(key)
    unit = jax.random.uniform(key_unit, (3,), jnp.float32)
    gauss = jax.random.normal(key_gauss, (sum(sizes),), jnp.float32)
    x, w1, b1, w2, eps = jnp.split(gauss, np.cumsum(sizes)[:-1])
    x, eps = x.reshape(n, d), eps.reshape(n, k)
    hidden = ACTIVATIONS[config.teacher_activation](x @ w1.reshape(d, h) / math.sqrt(d) + b1)
    outputs = hidden @ w2.reshape(h, k) / math.sqrt(h)
    train = outputs[:config.num_train]
    outputs = (outputs - train.mean(0)) / jnp.maximum(train.std(0), 1e-6)
    noise_std = log_uniform(unit[2], config.noise_range)
    y = outputs + noise_std * eps
    split = config.num_train
    return TeacherCfg(
        init_scale=log_uniform(unit[0], config.init_scale_range),
        activation=categorical_index(unit[1], len(config.activations)),
        noise_std=noise_std,
        data=ArrayData(train_x=x[:split], train_y=y[:split], test_x=x[split:], test_y=y[split:]),
    )


def build_teacher(config: TeacherConfig, variant: str = "train") -> TaskFamily:
    """The teacher-student regression family for ``config`` (no data to load)."""
    model = MLP(config.hidden_sizes, config.output_dim, config.activations)
    network = make_network(model, (config.input_dim,))
    widths = "-".join(str(w) for w in (config.input_dim, *config.hidden_sizes, config.output_dim))
    name = f"teacher-regression/{widths}/{'|'.join(config.activations)}"

    def task(cfg: TeacherCfg):
        return network_task(
            name, network, cfg,
            gather=lambda key, split, size: gather_arrays(cfg.data, key, split, size),
            loss="mse", batch_size=config.batch_size, eval_batch_size=config.eval_batch_size,
            l2=config.l2,
        )

    return TaskFamily(
        name="teacher-regression",
        sample=lambda key: sample_teacher_cfg(variant_key(key, variant), config),
        task=task,
        split=variant,
    )


registry.register_config(
    "teacher-regression", build_teacher, TeacherConfig(),
    TeacherConfig(input_dim=8, teacher_hidden=64, hidden_sizes=(32, 32), activations=("relu",)),
)
