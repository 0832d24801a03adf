"""Problems drawn from the meta-training distribution, run like the held-out suite.

Options of a recipe may be chosen here, never on ``tasks.heldout``. Each problem is one
registry family with the overrides of a group of the generalist recipes
(``scripts/pretrain/mlp-generalist-*.json``), on the embedded digits data or synthetic data;
its one task is the family's first sample of the suite's key. Same interface as
``tasks.heldout`` (``names``, ``get``, ``family``, ``describe``), so ``baselines.suite``
runs either::

    baselines.suite.run_suite(rows, problem_set=tasks.training_problems)
    python scripts/heldout_ablation.py mlp-generalist-2x16-best 'adapt:lr_adapt=0.1' --training
"""

from __future__ import annotations

from typing import Any

from tasks import registry
from tasks.base import TaskFamily
from tasks.describe import describe as describe_family
from tasks.heldout import lookup

_ACTIVATIONS = ("tanh", "relu", "gelu", "sigmoid")
PROBLEMS: dict[str, tuple[str, dict[str, Any]]] = {
    "mlp-digits-32": ("mlp-digits", {"hidden_sizes": (32,), "activations": _ACTIVATIONS}),
    "mlp-digits-64x64": ("mlp-digits", {"hidden_sizes": (64, 64), "activations": _ACTIVATIONS}),
    "conv-digits": ("conv-digits", {"activations": _ACTIVATIONS, "batch_size": 16}),
    "logreg-digits": ("logreg-digits", {}),
    "ae-digits": ("ae-digits", {}),
    "teacher-regression": ("teacher-regression", {}),
}


def names() -> list[str]:
    """The problem names, in suite order."""
    return list(PROBLEMS)


def get(name: str) -> tuple[str, dict[str, Any]]:
    """``(registry family, overrides)`` of problem ``name``; ``KeyError`` with the valid
    names otherwise."""
    return lookup(PROBLEMS, name, "training problem")


def family(name: str) -> TaskFamily:
    """The ``TaskFamily`` of problem ``name``."""
    base, overrides = get(name)
    return registry.get(base, **overrides)


def describe(name: str) -> dict[str, Any]:
    """The family's description (`tasks.describe`) under the problem's name."""
    return {"name": name, **describe_family(family(name), name)}
