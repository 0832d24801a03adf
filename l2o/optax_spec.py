"""`OptaxSpec`: an optax optimizer named by its constructor and arguments.

A transform object (``optax.adam(1e-3)``) is a pair of closures: it cannot be written to
JSON, and two equal calls give unequal objects (so a jitted function keyed on them
compiles twice). An `OptaxSpec` says the same thing as data::

    spec = OptaxSpec("adam", learning_rate=1e-3)      # == OptaxSpec.from_dict(spec.to_dict())
    tx = spec.build()                                   # optax.adam(learning_rate=1e-3)
    spec.to_dict()                                      # {"name": "adam", "learning_rate": 0.001}

``name`` is any public optax constructor that returns a ``GradientTransformation``
(``adam``, ``sgd``, ``lion``, ``adamw``, ...); the arguments are JSON scalars or lists.
"""

from __future__ import annotations

import difflib
from typing import Any

import optax

_SCALARS = (bool, int, float, str, type(None))


def _frozen(value: Any, where: str) -> Any:
    """``value`` with lists turned into tuples; TypeError unless it is JSON-like."""
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(v, where) for v in value)
    if isinstance(value, _SCALARS):
        return value
    raise TypeError(
        f"OptaxSpec argument {where} must be a number, string, bool, None or a list of "
        f"them (so the spec can be saved as JSON); got {type(value).__name__}."
    )


def _thawed(value: Any) -> Any:
    return [_thawed(v) for v in value] if isinstance(value, tuple) else value


class OptaxSpec:
    """An optax optimizer as ``(constructor name, keyword arguments)``; hashable, JSON-able.

    Raises at construction (``ValueError`` naming close optax names) when ``name`` is not
    a public optax constructor, and re-raises the constructor's own error when optax
    rejects the arguments.
    """

    __slots__ = ("name", "kwargs")

    def __init__(self, name: str, **kwargs: Any):
        if not isinstance(name, str) or name.startswith("_") or not callable(getattr(optax, name, None)):
            known = [n for n in dir(optax) if not n.startswith("_") and callable(getattr(optax, n))]
            close = difflib.get_close_matches(str(name), known, n=3)
            hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
            raise ValueError(f"{name!r} is not an optax optimizer constructor (optax.NAME).{hint}")
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "kwargs", tuple(sorted(
            (key, _frozen(value, f"{name}({key}=...)")) for key, value in kwargs.items())))
        tx = self.build()
        if not isinstance(tx, optax.GradientTransformation):
            raise ValueError(
                f"optax.{name}(...) returned a {type(tx).__name__}, not a "
                "GradientTransformation; name an optimizer such as 'adam' or 'sgd'.")

    def __setattr__(self, key, value):
        raise AttributeError("OptaxSpec is immutable")

    def build(self) -> optax.GradientTransformation:
        """``optax.NAME(**kwargs)``."""
        return getattr(optax, self.name)(**{k: _thawed(v) for k, v in self.kwargs})

    def to_dict(self) -> dict:
        """``{"name": NAME, **kwargs}`` (JSON)."""
        return {"name": self.name, **{k: _thawed(v) for k, v in self.kwargs}}

    @classmethod
    def from_dict(cls, data: dict) -> "OptaxSpec":
        """Inverse of `to_dict`; ``data`` must have a ``"name"`` key."""
        if not isinstance(data, dict) or "name" not in data:
            raise ValueError(
                f"an optax spec is a dict with a 'name' key and the constructor's keyword "
                f"arguments, e.g. {{'name': 'adam', 'learning_rate': 0.001}}; got {data!r}.")
        data = dict(data)
        return cls(data.pop("name"), **data)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, OptaxSpec) and (self.name, self.kwargs) == (other.name, other.kwargs)

    def __hash__(self) -> int:
        return hash((self.name, self.kwargs))

    def __repr__(self) -> str:
        args = "".join(f", {k}={_thawed(v)!r}" for k, v in self.kwargs)
        return f"OptaxSpec({self.name!r}{args})"
