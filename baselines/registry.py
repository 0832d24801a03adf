"""Registry of baseline optimizers: name -> :class:`BaselineSpec`.

A spec bundles a constructor taking hyper-parameters as keyword arguments (which may
be traced scalars, so a whole grid can be ``vmap``ped), the default tuning grid, and
the hook that maps ``(opt_state, params)`` to the parameters used for evaluation::

    spec = baselines.registry.get("lion")
    tx = spec.make(learning_rate=3e-4, weight_decay=1e-2)      # optax.lion

Hyper-parameter names are optax's (``learning_rate``, ``weight_decay``).
"""

from __future__ import annotations

import dataclasses
import itertools
import warnings
from typing import Any, Callable

import numpy as np

from baselines import optimizers


def log_grid(low: float, high: float, num: int) -> tuple[float, ...]:
    """``num`` log-spaced values from ``low`` to ``high`` inclusive (float64 -> float)."""
    if not (0 < low <= high) or num < 1:
        raise ValueError(
            f"log_grid needs 0 < low <= high and num >= 1, got low={low}, high={high}, "
            f"num={num}."
        )
    return tuple(float(x) for x in np.geomspace(low, high, num))


@dataclasses.dataclass(frozen=True)
class BaselineSpec:
    """A tunable baseline optimizer.

    Attributes:
      name: registry name.
      make: ``make(**hparams) -> optax.GradientTransformationExtraArgs``.
      grid: hyper-parameter name -> candidate values; the tuning grid is their product.
      defaults: hyper-parameters used when tuning is switched off.
      eval_params: ``eval_params(opt_state, params) -> params`` used for evaluation.
    """

    name: str
    make: Callable[..., Any]
    grid: dict[str, tuple[float, ...]]
    defaults: dict[str, float]
    eval_params: Callable[[Any, Any], Any] = optimizers.eval_params

    def grid_points(self) -> list[dict[str, float]]:
        """Every point of the product grid, as a list of ``{hparam: value}`` dicts."""
        names = sorted(self.grid)
        axes = [self.grid[n] for n in names]
        return [dict(zip(names, values)) for values in itertools.product(*axes)]

    def with_grid(self, **grid: tuple[float, ...]) -> "BaselineSpec":
        """A copy with some grid axes replaced, e.g. ``spec.with_grid(learning_rate=(1e-3, 1e-2))``.

        ``lr=`` is accepted for ``learning_rate`` with a DeprecationWarning.
        """
        if "lr" in grid and "learning_rate" in self.grid:
            warnings.warn("with_grid(lr=...) is deprecated; use learning_rate=... (optax's name).",
                          DeprecationWarning, stacklevel=2)
            grid = {("learning_rate" if k == "lr" else k): v for k, v in grid.items()}
        unknown = set(grid) - set(self.grid)
        if unknown:
            raise ValueError(
                f"{self.name} has hyper-parameters {sorted(self.grid)}, got unknown "
                f"{sorted(unknown)}."
            )
        return dataclasses.replace(
            self, grid={**self.grid, **{k: tuple(float(x) for x in v) for k, v in grid.items()}}
        )


def lookahead_adam(learning_rate, sync_period: int = 5, slow_step_size: float = 0.5):
    """``lookahead(optax.adam(learning_rate), sync_period, slow_step_size)``."""
    return optimizers.lookahead(optimizers.adam(learning_rate), sync_period, slow_step_size)


_SPECS: dict[str, BaselineSpec] = {
    "adam": BaselineSpec(
        "adam", optimizers.adam, {"learning_rate": log_grid(1e-4, 10**-0.5, 8)},
        {"learning_rate": 1e-3},
    ),
    "lion": BaselineSpec(
        "lion",
        optimizers.lion,
        {"learning_rate": log_grid(1e-5, 10**-1.5, 8), "weight_decay": (0.0, 1e-2, 1e-1)},
        {"learning_rate": 1e-4, "weight_decay": 1e-2},
    ),
    "lookahead": BaselineSpec(
        "lookahead", lookahead_adam, {"learning_rate": log_grid(1e-4, 10**-0.5, 8)},
        {"learning_rate": 1e-3},
    ),
    "sgd": BaselineSpec(
        "sgd", optimizers.sgd, {"learning_rate": log_grid(1e-3, 1.0, 7)},
        {"learning_rate": 1e-2},
    ),
}

# Half-decade learning-rate grids; Lion's is shifted 10x lower (sign updates are larger,
# Chen et al. 2023 recommend a 3-10x smaller learning rate than Adam's).
DEFAULT_BASELINES: tuple[str, ...] = ("adam", "lion", "lookahead")


def names() -> list[str]:
    """Names of all registered baselines."""
    return sorted(_SPECS)


def get(name: str) -> BaselineSpec:
    """The spec registered as ``name``; raises with the valid names otherwise."""
    if name not in _SPECS:
        raise KeyError(f"unknown baseline {name!r}; expected one of {names()}.")
    return _SPECS[name]
