"""Validation and string coercion of config dataclasses, derived from their fields.

A field's annotation gives its type (``int``, ``float``, ``bool``, ``str``, ``dict``,
``list``, or ``X | None``), and `setting` metadata its bounds and choices, so nothing is listed twice::

    horizon: int = setting(200, minimum=1)
    sigma: float = setting(0.01, positive=True)
    strategy: str = setting("pes", choices=STRATEGIES)
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import types
import typing
from typing import Any


def setting(default: Any = dataclasses.MISSING, *, default_factory: Any = dataclasses.MISSING,
            minimum: int | None = None, positive: bool = False,
            choices: tuple | None = None) -> Any:
    """A dataclass field with the bounds `field_errors` checks."""
    metadata = {"minimum": minimum, "positive": positive, "choices": choices}
    return dataclasses.field(default=default, default_factory=default_factory, metadata=metadata)


def field_kind(cls: type, name: str) -> tuple[type, bool]:
    """``(base type, optional)`` of field ``name`` of ``cls`` from its annotation."""
    hint = typing.get_type_hints(cls)[name]
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args:
        base = next(a for a in args if a is not type(None))
        return base, True
    return hint, False


def field_errors(config: Any) -> tuple[list[str], list[str]]:
    """``(type errors, value errors)`` of a frozen config dataclass; coerces ints to floats.

    Value errors (bounds, choices) are only reported for fields of the right type.
    """
    type_errors, value_errors = [], []
    for f in dataclasses.fields(config):
        name, value = f.name, getattr(config, f.name)
        base, optional = field_kind(type(config), name)
        if value is None and optional:
            continue
        if base is bool:
            ok = isinstance(value, bool)
            problem = f"{name} must be true or false, got {value!r}"
        elif base is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
            problem = f"{name} must be an int, got {value!r} ({type(value).__name__})"
        elif base is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            problem = f"{name} must be a number, got {value!r} ({type(value).__name__})"
            if ok:
                object.__setattr__(config, name, float(value))
                value = float(value)
        elif base is str:
            ok = isinstance(value, str) and (optional or bool(value))
            problem = (f"{name} must be a string or null, got {value!r}" if optional
                       else f"{name} must be a non-empty string, got {value!r}")
        elif base is dict:
            ok = isinstance(value, dict)
            problem = f"{name} must be a dict, got {value!r}"
        elif base is list:
            ok = isinstance(value, (list, tuple))
            problem = f"{name} must be a list, got {value!r}"
            if ok:
                object.__setattr__(config, name, list(value))
        else:
            ok, problem = True, ""
        if not ok:
            type_errors.append(problem)
            continue
        meta = f.metadata
        if meta.get("minimum") is not None and value < meta["minimum"]:
            value_errors.append(f"{name} must be >= {meta['minimum']}, got {value}")
        if meta.get("positive") and not value > 0:
            value_errors.append(f"{name} must be > 0, got {value}")
        if meta.get("choices") is not None and value not in meta["choices"]:
            value_errors.append(f"unknown {name} {value!r}; valid: {list(meta['choices'])}")
    return type_errors, value_errors


def coerce(cls: type, key: str, raw: str) -> Any:
    """Parse the string ``raw`` as the type of field ``key`` of ``cls``."""
    base, optional = field_kind(cls, key)
    if optional and raw.lower() in ("none", "null", ""):
        return None
    if base in (int, float):
        try:
            return base(raw)
        except ValueError:
            kind = "an int" if base is int else "a number"
            raise ValueError(f"override {key}={raw!r}: expected {kind}.") from None
    if base is bool:
        lowered = raw.lower()
        if lowered in ("true", "1", "yes", "on"):
            return True
        if lowered in ("false", "0", "no", "off"):
            return False
        raise ValueError(f"override {key}={raw!r}: expected true or false.")
    if base is dict:
        value = parse_json_or_str(raw)
        if not isinstance(value, dict):
            raise ValueError(f"override {key}={raw!r}: expected a JSON object.")
        return value
    if base is list:
        value = parse_json_or_str(raw)
        if not isinstance(value, list):
            raise ValueError(f"override {key}={raw!r}: expected a JSON list.")
        return value
    return raw


def dict_fields(cls: type) -> tuple[str, ...]:
    """Names of the ``dict`` fields of ``cls`` (settable one entry at a time)."""
    return tuple(f.name for f in dataclasses.fields(cls) if field_kind(cls, f.name)[0] is dict)


def parse_json_or_str(raw: str) -> Any:
    """``raw`` as JSON, or the string itself when it is not JSON."""
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def json_form(value: Any) -> Any:
    """``value`` with tuples turned into lists (recursively); TypeError if not JSON-able."""
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise TypeError(f"key {key!r} is not a string")
        return {key: json_form(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_form(item) for item in value]
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    raise TypeError(f"{value!r} ({type(value).__name__}) is not a JSON value")


def tuple_form(value: Any) -> Any:
    """``value`` with lists turned into tuples (recursively), for dataclass family configs."""
    if isinstance(value, list):
        return tuple(tuple_form(item) for item in value)
    if isinstance(value, dict):
        return {key: tuple_form(item) for key, item in value.items()}
    return value


# Keys people reach for to size the ES population; here it is 2 * num_tasks * num_pairs.
_POPULATION_KEYS = ("population", "population_size", "popsize", "pop_size", "num_particles",
                    "num_perturbations")


def key_hints(unknown: list[str], valid: list[str]) -> str:
    """Sentences suggesting the intended field for each unknown key ('' if none)."""
    hints = []
    for key in unknown:
        if key.lower() in _POPULATION_KEYS:
            hints.append(f"{key!r} is not set directly: the population is 2 * num_tasks * "
                         "num_pairs antithetic particles (always even); set num_tasks and num_pairs.")
        else:
            close = difflib.get_close_matches(key, valid, n=1)
            if close:
                hints.append(f"Did you mean {close[0]!r} for {key!r}?")
    return "".join(" " + hint for hint in hints)
