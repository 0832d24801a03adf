"""Learned optimizers in JAX: coordinatewise LSTM, per-parameter MLP, optax adapter, files."""

from l2o import registry
from l2o.base import LearnedOptimizer
from l2o.io import list_pretrained, load, load_pretrained, save
from l2o.lstm import LSTMOptimizer
from l2o.mlp import MLPOptimizer
from l2o.optax_adapter import as_optax

__all__ = [
    "LearnedOptimizer",
    "LSTMOptimizer",
    "MLPOptimizer",
    "as_optax",
    "list_pretrained",
    "load",
    "load_pretrained",
    "registry",
    "save",
]
from l2o.guard import GuardedOptimizer, guard_stats, loss_guarded  # noqa: E402,F401
