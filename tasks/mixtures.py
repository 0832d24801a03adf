"""Named training mixtures: JSON-able lists of ``{family, weight, overrides[, augment]}``.

A mixture entry names a registered family (``tasks.registry``), its relative ``weight``
in the meta-gradient, keyword ``overrides`` of the family and, optionally, an ``augment``
spec for :func:`tasks.augment.apply`. A family fixes its parameter shapes, so the
architecture distribution of a mixture is its list of entries; activations, init scales
and data are drawn per task within an entry. Every entry uses only the embedded digits
data or synthetic problems (never the datasets of :mod:`tasks.heldout`)::

    entries = tasks.mixtures.get("wide")           # a fresh list of dicts (JSON-able)
    family = tasks.mixtures.build(entries[0])      # the entry's TaskFamily

``"wide"``: softmax MLP classifiers of 1-4 hidden layers and widths 16-256 (each task's
activation drawn from tanh, ReLU, GELU and sigmoid), a conv net, softmax regression, a
digits autoencoder, teacher-student regression, noisy quadratics and Rosenbrock. Wider
and deeper entries use smaller batches so that every entry costs about the same per
step (``benchmarks/task_cost.py`` measures them; results in ``docs/tasks.md``).
"""

from __future__ import annotations

import copy
from typing import Any, Mapping

ACTIVATIONS = ["tanh", "relu", "gelu", "sigmoid"]


def _mlp(hidden_sizes: list[int], batch_size: int = 128, weight: float = 1.0) -> dict:
    overrides = {"hidden_sizes": hidden_sizes, "activations": ACTIVATIONS}
    if batch_size != 128:
        overrides["batch_size"] = batch_size
    return {"family": "mlp-digits", "weight": weight, "overrides": overrides}


MIXTURES: dict[str, list[dict[str, Any]]] = {
    "wide": [
        _mlp([32]),
        _mlp([256], batch_size=64),
        _mlp([64, 64]),
        _mlp([128, 32], batch_size=64),
        _mlp([32, 32, 32]),
        _mlp([16, 16, 16, 16]),
        _mlp([64, 64, 64, 64], batch_size=64),
        {"family": "conv-digits", "weight": 1.0,
         "overrides": {"activations": ACTIVATIONS, "batch_size": 16}},
        {"family": "logreg-digits", "weight": 1.0, "overrides": {}},
        {"family": "ae-digits", "weight": 1.0, "overrides": {}},
        {"family": "teacher-regression", "weight": 1.0, "overrides": {}},
        {"family": "quadratic", "weight": 1.0, "overrides": {}},
        {"family": "rosenbrock", "weight": 1.0, "overrides": {}},
    ],
}


def names() -> list[str]:
    """Sorted names of the predefined mixtures."""
    return sorted(MIXTURES)


def get(name: str) -> list[dict[str, Any]]:
    """A deep copy of mixture ``name``'s entries (edit it freely)."""
    if name not in MIXTURES:
        raise KeyError(f"unknown mixture {name!r}; predefined mixtures are {names()}.")
    return copy.deepcopy(MIXTURES[name])


def build(entry: Mapping[str, Any], split: str = "train"):
    """The ``TaskFamily`` of one entry: the family with its overrides, then its ``augment``.

    JSON lists in ``overrides`` are passed as tuples. Raises what ``tasks.registry.get``
    and ``tasks.augment.apply`` raise for unknown names, overrides or specs.
    """
    from tasks import augment, registry

    overrides = {
        key: tuple(value) if isinstance(value, list) else value
        for key, value in dict(entry.get("overrides") or {}).items()
    }
    family = registry.get(entry["family"], split=split, **overrides)
    return augment.apply(family, entry.get("augment"))
