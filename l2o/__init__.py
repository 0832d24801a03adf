"""Learned optimizers in JAX: coordinatewise LSTM, per-parameter MLP, loss guard, files.

Names are loaded on first use (``l2o.MLPOptimizer`` imports `l2o.mlp` then), so that
``import l2o`` -- and the ``l2o --help`` of the command line -- does not import JAX.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

# Public name -> module that defines it ("" for a submodule of the same name).
_EXPORTS = {
    "GuardState": "l2o.guard_state",
    "GuardedOptimizer": "l2o.guarded",
    "LSTMOptimizer": "l2o.lstm",
    "LearnedOptimizer": "l2o.base",
    "LoadedOptimizer": "l2o.io",
    "MLPOptimizer": "l2o.mlp",
    "OptaxSpec": "l2o.optax_spec",
    "as_optax": "l2o.optax_adapter",
    "guard_stats": "l2o.guard_state",
    "list_pretrained": "l2o.io",
    "load": "l2o.io",
    "load_pretrained": "l2o.io",
    "loss_guarded": "l2o.guard",
    "registry": "",
    "save": "l2o.io",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # what static tools see; at run time `__getattr__` loads these
    from l2o import registry
    from l2o.base import LearnedOptimizer
    from l2o.guard import loss_guarded
    from l2o.guard_state import GuardState, guard_stats
    from l2o.guarded import GuardedOptimizer
    from l2o.io import LoadedOptimizer, list_pretrained, load, load_pretrained, save
    from l2o.lstm import LSTMOptimizer
    from l2o.mlp import MLPOptimizer
    from l2o.optax_adapter import as_optax
    from l2o.optax_spec import OptaxSpec


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'l2o' has no attribute {name!r}")
    module = importlib.import_module(_EXPORTS[name] or f"l2o.{name}")
    value = module if not _EXPORTS[name] else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
