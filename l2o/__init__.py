"""Learned optimizers in JAX: coordinatewise LSTM, per-parameter MLP, loss guard, files."""

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

__all__ = [
    "GuardState",
    "GuardedOptimizer",
    "LSTMOptimizer",
    "LearnedOptimizer",
    "LoadedOptimizer",
    "MLPOptimizer",
    "OptaxSpec",
    "as_optax",
    "guard_stats",
    "list_pretrained",
    "load",
    "load_pretrained",
    "loss_guarded",
    "registry",
    "save",
]
