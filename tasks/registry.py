"""Name -> task-family factories, one for the training and one for the held-out variant.

Families register two factories, ``train_factory(**overrides) -> TaskFamily`` and
``heldout_factory(**overrides) -> TaskFamily``. Building a family may load data (image
families do), so factories run only when :func:`get` is called, never at import time::

    family = tasks.registry.get("mlp-digits")                  # training distribution
    heldout = tasks.registry.get("mlp-digits", split="heldout")
    mnist = tasks.registry.get("mlp-digits", dataset="mnist")  # keyword overrides; "mlp-mnist"

Families registered from a config (`register_config`) are built once per distinct config:
two `get` calls with equal arguments return the same family object, so functions jitted
with a family as a static argument do not compile again for a rebuilt one.

The registry is an explicit mapping owned by this module; registration happens once,
when the family modules are imported by ``tasks/__init__.py``.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Callable, NamedTuple

from tasks.base import TaskFamily

FAMILY_SPLITS: tuple[str, ...] = ("train", "heldout")

Factory = Callable[..., TaskFamily]


class _Entry(NamedTuple):
    train: Factory
    heldout: Factory


_REGISTRY: dict[str, _Entry] = {}


def register(name: str, train_factory: Factory, heldout_factory: Factory) -> None:
    """Register a task family under ``name``.

    Args:
      name: registry key, e.g. ``"quadratic"``; must not be registered already.
      train_factory: ``(**overrides) -> TaskFamily`` for the training distribution.
      heldout_factory: ``(**overrides) -> TaskFamily`` for the held-out distribution.

    Raises:
      ValueError: if ``name`` is empty or already registered, or a factory is not callable.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"family name must be a non-empty string, got {name!r}.")
    if name in _REGISTRY:
        raise ValueError(
            f"task family {name!r} is already registered; pick another name "
            f"(registered: {names()})."
        )
    for label, factory in (("train_factory", train_factory), ("heldout_factory", heldout_factory)):
        if not callable(factory):
            raise ValueError(f"{label} for {name!r} must be callable, got {factory!r}.")
    _REGISTRY[name] = _Entry(train_factory, heldout_factory)


def config_factory(build: Callable[[Any, str], TaskFamily], config: Any, variant: str) -> Factory:
    """A factory ``(**overrides) -> build(dataclasses.replace(config, **overrides), variant)``.

    ``config`` is a frozen dataclass of family options; the factory's signature lists its
    fields as keyword-only parameters (defaults = this variant's values), so :func:`get`
    can validate overrides and :func:`overrides` can list them. The factory builds each
    distinct (hashable) config once and returns that family for equal configs.
    """
    if not dataclasses.is_dataclass(config):
        raise TypeError(f"config must be a dataclass instance, got {type(config).__name__}.")
    built: dict[Any, TaskFamily] = {}

    def factory(**overrides_: Any) -> TaskFamily:
        resolved = dataclasses.replace(config, **overrides_)
        if resolved not in built:
            built[resolved] = build(resolved, variant)
        return built[resolved]

    factory.__signature__ = inspect.Signature([  # type: ignore[attr-defined]
        inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=getattr(config, f.name))
        for f in dataclasses.fields(config)
        if f.init
    ])
    factory.__doc__ = f"{variant} variant: {config!r} with keyword overrides."
    return factory


def register_config(
    name: str, build: Callable[[Any, str], TaskFamily], train_config: Any, heldout_config: Any
) -> None:
    """Register ``name`` from a builder ``build(config, variant)`` and two dataclass configs."""
    register(
        name,
        config_factory(build, train_config, "train"),
        config_factory(build, heldout_config, "heldout"),
    )


def names() -> list[str]:
    """Sorted names of every registered task family."""
    return sorted(_REGISTRY)


def _accepted_overrides(factory: Factory) -> tuple[list[str], bool]:
    params = inspect.signature(factory).parameters.values()
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
    keywords = [
        p.name
        for p in params
        if p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    return keywords, takes_any


def overrides(name: str, split: str = "train") -> list[str]:
    """The keyword overrides that ``get(name, split, ...)`` accepts."""
    keywords, _ = _accepted_overrides(_factory(name, split))
    return keywords


def _factory(name: str, split: str) -> Factory:
    if name not in _REGISTRY:
        raise KeyError(
            f"unknown task family {name!r}; registered families are {names()}. "
            "Register new ones with tasks.registry.register(name, train_factory, heldout_factory)."
        )
    if split not in FAMILY_SPLITS:
        raise ValueError(
            f"split={split!r} is not a family split; expected one of {FAMILY_SPLITS} "
            "('train' for the meta-training distribution, 'heldout' for generalisation)."
        )
    entry = _REGISTRY[name]
    return entry.train if split == "train" else entry.heldout


def get(name: str, split: str = "train", **overrides_: object) -> TaskFamily:
    """Build the ``split`` variant of family ``name`` with keyword ``overrides_``.

    Raises:
      KeyError: unknown ``name`` (the message lists registered families).
      ValueError: ``split`` not in ``("train", "heldout")``.
      TypeError: an override the factory does not accept (the message lists valid ones).
    """
    factory = _factory(name, split)
    keywords, takes_any = _accepted_overrides(factory)
    unknown = sorted(set(overrides_) - set(keywords))
    if unknown and not takes_any:
        raise TypeError(
            f"task family {name!r} ({split}) got unknown override(s) {unknown}; "
            f"valid overrides are {sorted(keywords)}."
        )
    family = factory(**overrides_)
    if not isinstance(family, TaskFamily):
        raise TypeError(
            f"factory for {name!r} ({split}) returned {type(family).__name__}, expected TaskFamily."
        )
    return family
