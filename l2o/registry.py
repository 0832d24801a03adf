"""Learned optimizers by name, for configs and files: ``registry.get("mlp", **config)``.

``"lstm"`` and ``"mlp"`` are the architectures; ``"guarded"`` is `GuardedOptimizer`, whose
config names the architecture it guards and its fallback::

    registry.get("guarded", learned={"architecture": "mlp", "config": {"hidden_sizes": [8]}},
                 fallback={"name": "sgd", "learning_rate": 0.1})

Named configs (`PRESETS`, e.g. ``"mlp-2x8"``, ``"mlp-2x16"``) are an architecture with some
fields set: ``registry.get("mlp-2x8", weight_decay=0.01)`` is
``MLPOptimizer(hidden_sizes=(8, 8), weight_decay=0.01)``; they are written to files as
their architecture and full config.

`to_dict` / `from_dict` turn any registered optimizer into ``{"architecture", "config"}``
JSON and back (what `l2o.save` writes).
"""

from __future__ import annotations

import difflib
from types import MappingProxyType
from typing import Any

from l2o.base import LearnedOptimizer
from l2o.guarded import GuardedOptimizer
from l2o.lstm import LSTMOptimizer
from l2o.mlp import PRESETS as MLP_PRESETS
from l2o.mlp import MLPOptimizer

OPTIMIZERS = MappingProxyType({"guarded": GuardedOptimizer, "lstm": LSTMOptimizer,
                               "mlp": MLPOptimizer})
# name -> (architecture, config fields it sets)
PRESETS = MappingProxyType({name: ("mlp", dict(config)) for name, config in MLP_PRESETS.items()})


def names() -> list[str]:
    """Sorted registry names of every learned optimizer architecture."""
    return sorted(OPTIMIZERS)


def all_names() -> list[str]:
    """Every name `get` accepts: the architectures, then the named configs (`PRESETS`)."""
    return names() + sorted(PRESETS)


def get(name: str, **config: Any) -> LearnedOptimizer:
    """A learned optimizer: ``OPTIMIZERS[name].from_config(config)``, or a named config of
    `PRESETS` with ``config`` overriding its fields.

    Raises:
      KeyError: unknown ``name`` (the message lists the known ones).
      TypeError: a config key the optimizer does not have (message lists valid keys).
    """
    if name in PRESETS:
        architecture_name, preset = PRESETS[name]
        return OPTIMIZERS[architecture_name].from_config({**preset, **config})
    if name not in OPTIMIZERS:
        close = difflib.get_close_matches(str(name), all_names(), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise KeyError(f"unknown learned optimizer {name!r}; known: {all_names()}.{hint}")
    return OPTIMIZERS[name].from_config(config)


def architecture(lopt: Any) -> str:
    """The registry name of ``lopt``'s class; ``ValueError`` for an unregistered one."""
    for name, cls in OPTIMIZERS.items():
        if type(lopt) is cls:
            return name
    raise ValueError(
        f"{lopt!r} is not a registered learned optimizer ({names()}); only those can be "
        "written to and read from files."
    )


def to_dict(lopt: LearnedOptimizer) -> dict:
    """``{"architecture": registry name, "config": lopt.to_config()}`` (JSON)."""
    return {"architecture": architecture(lopt), "config": lopt.to_config()}


def from_dict(description: str | dict) -> LearnedOptimizer:
    """Inverse of `to_dict`; a bare registry name stands for its default config."""
    if isinstance(description, str):
        return get(description)
    if not isinstance(description, dict) or "architecture" not in description:
        raise ValueError(
            "a learned optimizer is described by a registry name or a dict "
            "{'architecture': NAME, 'config': {...}}; got " f"{description!r}.")
    unknown = sorted(set(description) - {"architecture", "config"})
    if unknown:
        raise ValueError(f"unknown key(s) {unknown} in {description!r}; expected "
                         "'architecture' and 'config'.")
    return get(description["architecture"], **description.get("config", {}))
