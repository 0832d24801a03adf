"""Learned optimizers by name, for configs and files: ``registry.get("mlp", **config)``."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from l2o.lstm import LSTMOptimizer
from l2o.mlp import MLPOptimizer

OPTIMIZERS = MappingProxyType({cls.name: cls for cls in (LSTMOptimizer, MLPOptimizer)})


def names() -> list[str]:
    """Sorted registry names of every learned optimizer architecture."""
    return sorted(OPTIMIZERS)


def get(name: str, **config: Any) -> Any:
    """A learned optimizer instance: ``OPTIMIZERS[name](**config)``.

    Raises:
      KeyError: unknown ``name`` (the message lists the known ones).
      TypeError: a config key the architecture does not have (message lists valid keys).
    """
    if name not in OPTIMIZERS:
        raise KeyError(f"unknown learned optimizer {name!r}; known: {names()}.")
    cls = OPTIMIZERS[name]
    valid = [f for f in cls.__dataclass_fields__]
    unknown = sorted(set(config) - set(valid))
    if unknown:
        raise TypeError(f"{name!r} optimizer has no config field(s) {unknown}; valid: {valid}.")
    return cls(**config)
