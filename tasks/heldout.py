"""The held-out generalisation suite: problems no optimizer is meta-trained on.

Ten problems on scikit-learn's bundled datasets other than digits and its synthetic
generators (:mod:`tasks.tabular`), with architectures and losses outside the training
mixtures (5-6 hidden layers, a 512-wide layer, ELU/swish activations, MSE regression,
an autoencoder, full-batch convex logistic regression). Nothing here may be used for
meta-training or for choosing a recipe's options; ``baselines.suite`` runs it::

    tasks.heldout.names()                    # the problems, in suite order
    tasks.heldout.family("wine-deep-gelu")   # its TaskFamily (one task)
    tasks.heldout.describe("wine-deep-gelu") # dataset, architecture, loss, batch, sizes
"""

from __future__ import annotations

import difflib
from typing import Any

from tasks.base import TaskFamily
from tasks.tabular import TabularConfig, num_params, tabular_family

PROBLEMS: dict[str, TabularConfig] = {
    "iris-elu": TabularConfig("iris", "classify", (32, 32), "elu", batch_size=16),
    "wine-deep-gelu": TabularConfig("wine", "classify", (64,) * 5, "gelu", batch_size=32),
    "cancer-logreg": TabularConfig("breast_cancer", "classify", (), batch_size=None, l2=1e-3),
    "cancer-tanh": TabularConfig("breast_cancer", "classify", (128, 128), "tanh", batch_size=64),
    "cancer-autoencoder": TabularConfig("breast_cancer", "reconstruct", (16, 4, 16), "swish",
                                        batch_size=64),
    "diabetes-relu": TabularConfig("diabetes", "regress", (64, 64), "relu", batch_size=32),
    "diabetes-tanh": TabularConfig("diabetes", "regress", (256,), "tanh", batch_size=32),
    "moons-deep-relu": TabularConfig("moons", "classify", (128,) * 6, "relu", batch_size=64),
    "circles-wide": TabularConfig("circles", "classify", (512,), "sigmoid", batch_size=64),
    "friedman1-swish": TabularConfig("friedman1", "regress", (64, 64, 64), "swish",
                                     batch_size=64),
}

_LOSSES = {"classify": "softmax cross-entropy", "regress": "MSE (standardised target)",
           "reconstruct": "MSE reconstruction (autoencoder)"}


def names() -> list[str]:
    """The problem names, in suite order."""
    return list(PROBLEMS)


def lookup(problems: dict[str, Any], name: str, unknown: str) -> Any:
    """``problems[name]``, else ``KeyError("unknown <unknown> 'name'; the suite has [...]")``
    with the closest name suggested."""
    if name not in problems:
        close = difflib.get_close_matches(name, list(problems), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise KeyError(f"unknown {unknown} {name!r}; the suite has {list(problems)}.{hint}")
    return problems[name]


def get(name: str) -> TabularConfig:
    """The config of problem ``name``; ``KeyError`` with the valid names otherwise."""
    return lookup(PROBLEMS, name, "held-out problem")


def family(name: str) -> TaskFamily:
    """The ``TaskFamily`` of problem ``name`` (loads its data now)."""
    return tabular_family(get(name))


def describe(name: str) -> dict[str, Any]:
    """What problem ``name`` is: dataset, sizes, architecture, loss, batch and L2."""
    config = get(name)
    data = config.data()
    widths = "-".join(map(str, config.widths()))
    architecture = (f"linear {widths}" if not config.hidden_sizes
                    else f"MLP {widths} {config.activation}")
    return {
        "name": name,
        "dataset": config.dataset,
        "objective": config.objective,
        "loss": _LOSSES[config.objective] + (f" + {config.l2:g}/2 ‖θ‖²" if config.l2 else ""),
        "architecture": architecture,
        "num_params": num_params(config),
        "batch_size": "full" if config.batch_size is None else config.batch_size,
        "num_train": int(data.train_x.shape[0]),
        "num_test": int(data.test_x.shape[0]),
    }
