"""Tabular problems on scikit-learn's bundled and synthetic datasets (no download).

These datasets are for **evaluation only** (the held-out suite, :mod:`tasks.heldout`):
nothing in meta-training uses them, so they measure generalisation to unseen data,
architectures and losses.

Data (:func:`load_tabular`): the dataset is split into train and test with a fixed seed
(stratified by class for classification), features are standardised with the train
split's mean and standard deviation, and regression targets likewise (so predicting the
mean scores an MSE of about 1). Synthetic generators use ``random_state=0``.

Families (:func:`tabular_family`): an MLP (:class:`tasks.mlp.MLP`; no hidden layer = a
linear model) trained with :mod:`tasks.supervised` on one of three objectives:
``"classify"`` (softmax cross-entropy on the class labels), ``"regress"`` (MSE on the
standardised targets) or ``"reconstruct"`` (an autoencoder, MSE on the standardised
features). A family has a single task (its config only fixes the init multiplier), so
seeds vary the initialisation and the minibatch order.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable

import jax.numpy as jnp
import numpy as np

from tasks.base import TaskFamily
from tasks.classifier import ClassifierCfg, check_activations, make_network, network_task
from tasks.mlp import MLP
from tasks.sampling import check_positive_int, set_fields
from tasks.supervised import ArrayData, gather_arrays


def _sklearn(loader: str, **kwargs) -> Callable[[], tuple[np.ndarray, np.ndarray]]:
    def load():
        import sklearn.datasets

        x, y = getattr(sklearn.datasets, loader)(**kwargs) if loader.startswith("make_") else (
            getattr(sklearn.datasets, loader)(return_X_y=True))
        return np.asarray(x, np.float64), np.asarray(y)

    return load


# name -> (kind, loader); "classification" labels are 0..K-1.
DATASETS: dict[str, tuple[str, Callable[[], tuple[np.ndarray, np.ndarray]]]] = {
    "iris": ("classification", _sklearn("load_iris")),
    "wine": ("classification", _sklearn("load_wine")),
    "breast_cancer": ("classification", _sklearn("load_breast_cancer")),
    "diabetes": ("regression", _sklearn("load_diabetes")),
    "moons": ("classification",
              _sklearn("make_moons", n_samples=1000, noise=0.25, random_state=0)),
    "circles": ("classification",
                _sklearn("make_circles", n_samples=1000, noise=0.1, factor=0.5, random_state=0)),
    "friedman1": ("regression",
                  _sklearn("make_friedman1", n_samples=1000, n_features=10, noise=1.0,
                           random_state=0)),
}
OBJECTIVES: tuple[str, ...] = ("classify", "regress", "reconstruct")


@dataclasses.dataclass(frozen=True, eq=False)
class TabularData:
    """A standardised, split tabular dataset (read-only float64/int NumPy arrays).

    Attributes:
      name, kind: dataset name and ``"classification"`` or ``"regression"``.
      train_x, test_x: ``(N, num_features)`` standardised features.
      train_y, test_y: int ``(N,)`` labels, or ``(N, 1)`` standardised targets.
      num_classes: classes (0 for regression).
    """

    name: str
    kind: str
    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    num_classes: int

    @property
    def num_features(self) -> int:
        """Number of input features."""
        return int(self.train_x.shape[1])


def _standardise(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean, std = train.mean(0), np.maximum(train.std(0), 1e-8)
    return (train - mean) / std, (test - mean) / std


@functools.cache
def load_tabular(name: str, test_fraction: float = 0.2, split_seed: int = 0) -> TabularData:
    """Dataset ``name`` split and standardised as in the module doc (cached per process)."""
    if name not in DATASETS:
        raise ValueError(f"unknown tabular dataset {name!r}; expected one of {sorted(DATASETS)}.")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction!r}.")
    from sklearn.model_selection import train_test_split

    kind, loader = DATASETS[name]
    x, y = loader()
    classify = kind == "classification"
    train_x, test_x, train_y, test_y = train_test_split(
        x, y, test_size=test_fraction, random_state=split_seed, stratify=y if classify else None)
    train_x, test_x = _standardise(train_x, test_x)
    if classify:
        train_y, test_y = train_y.astype(np.int32), test_y.astype(np.int32)
    else:
        train_y, test_y = _standardise(train_y[:, None], test_y[:, None])
    arrays = (train_x, train_y, test_x, test_y)
    for array in arrays:
        array.setflags(write=False)
    return TabularData(name, kind, *arrays, num_classes=int(y.max()) + 1 if classify else 0)


@dataclasses.dataclass(frozen=True)
class TabularConfig:
    """One tabular problem.

    Attributes:
      dataset: a key of ``DATASETS``.
      objective: ``"classify"``, ``"regress"`` or ``"reconstruct"`` (module doc).
      hidden_sizes: the MLP's hidden widths (``()``: a linear model).
      activation: name from ``tasks.classifier.ACTIVATIONS``.
      batch_size: training minibatch size; ``None`` trains on the full train split.
      l2: weight of ``0.5 * ||params||^2`` in the training loss.
      init_scale: multiplier of the LeCun-normal initial kernels.
      test_fraction, split_seed: the train/test split.
    """

    dataset: str
    objective: str
    hidden_sizes: tuple[int, ...] = (32,)
    activation: str = "relu"
    batch_size: int | None = 32
    l2: float = 0.0
    init_scale: float = 1.0
    test_fraction: float = 0.2
    split_seed: int = 0

    def __post_init__(self):
        if self.dataset not in DATASETS:
            raise ValueError(
                f"dataset must be one of {sorted(DATASETS)}, got {self.dataset!r}.")
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {self.objective!r}.")
        kind = DATASETS[self.dataset][0]
        if (self.objective, kind) in (("classify", "regression"), ("regress", "classification")):
            raise ValueError(f"objective {self.objective!r} does not fit the {kind} dataset "
                             f"{self.dataset!r}; use "
                             f"{'regress' if kind == 'regression' else 'classify'!r} or "
                             "'reconstruct'.")
        check_activations(self.activation)
        if self.batch_size is not None:
            check_positive_int("batch_size", self.batch_size)
        if not (float(self.l2) >= 0 and float(self.init_scale) > 0):
            raise ValueError(f"need l2 >= 0 and init_scale > 0, got l2={self.l2!r}, "
                             f"init_scale={self.init_scale!r}.")
        set_fields(self, hidden_sizes=tuple(
            check_positive_int("hidden_sizes[i]", s) for s in self.hidden_sizes))

    def data(self) -> TabularData:
        """The problem's dataset (loaded once per process)."""
        return load_tabular(self.dataset, self.test_fraction, self.split_seed)

    def widths(self) -> tuple[int, ...]:
        """Layer widths from input to output, e.g. ``(13, 64, 3)``."""
        data = self.data()
        outputs = {"classify": data.num_classes, "regress": 1,
                   "reconstruct": data.num_features}[self.objective]
        return (data.num_features, *self.hidden_sizes, outputs)


def _arrays(config: TabularConfig) -> ArrayData:
    data = config.data()
    if config.objective == "classify":
        train_y, test_y = jnp.asarray(data.train_y), jnp.asarray(data.test_y)
    elif config.objective == "regress":
        train_y, test_y = (jnp.asarray(a, jnp.float32) for a in (data.train_y, data.test_y))
    else:
        train_y, test_y = (jnp.asarray(a, jnp.float32) for a in (data.train_x, data.test_x))
    return ArrayData(train_x=jnp.asarray(data.train_x, jnp.float32), train_y=train_y,
                     test_x=jnp.asarray(data.test_x, jnp.float32), test_y=test_y)


def tabular_family(config: TabularConfig) -> TaskFamily:
    """The single-task family of ``config`` (split ``"heldout"``: evaluation only)."""
    arrays = _arrays(config)
    widths = config.widths()
    model = MLP(config.hidden_sizes, widths[-1], (config.activation,))
    network = make_network(model, (widths[0],))
    num_train = int(arrays.train_x.shape[0])
    batch_size = num_train if config.batch_size is None else min(config.batch_size, num_train)
    activation = f"/{config.activation}" if config.hidden_sizes else ""
    name = (f"{config.objective}-{config.dataset}/{'-'.join(map(str, widths))}{activation}"
            f"/b{batch_size}")
    eval_batch_size = max(num_train, int(arrays.test_x.shape[0]))
    loss = "cross_entropy" if config.objective == "classify" else "mse"

    def task(cfg: ClassifierCfg):
        return network_task(
            name, network, cfg,
            gather=lambda key, split, size: gather_arrays(arrays, key, split, size),
            loss=loss, batch_size=batch_size, eval_batch_size=eval_batch_size, l2=config.l2,
        )

    def sample(key):
        del key
        return ClassifierCfg(init_scale=jnp.float32(config.init_scale),
                             activation=jnp.int32(0))

    return TaskFamily(name=name, sample=sample, task=task, split="heldout")


def num_params(config: TabularConfig) -> int:
    """Parameters of the problem's MLP (kernels and biases)."""
    widths = config.widths()
    return sum(a * b + b for a, b in zip(widths[:-1], widths[1:]))

