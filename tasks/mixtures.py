"""Named training mixtures: JSON-able lists of ``{family, weight, overrides[, augment]}``.

A mixture entry names a registered family (``tasks.registry``), its relative ``weight``
in the meta-gradient, keyword ``overrides`` of the family and, optionally, an ``augment``
spec for :func:`tasks.augment.apply`. A family fixes its parameter shapes, so the
architecture distribution of a mixture is its list of entries; activations, init scales
and data are drawn per task within an entry. Every entry uses only the embedded digits
data or synthetic problems (never the datasets of :mod:`tasks.heldout`)::

    entries = tasks.mixtures.get("wide")           # a fresh list of dicts (JSON-able)
    entries = tasks.mixtures.check_entries(entries)   # validated, in full form
    tasks.mixtures.check_entry_names(entries)      # families and override keys registered
    family = tasks.mixtures.build(entries[0])      # the entry's TaskFamily

``"wide"``: softmax MLP classifiers of 1-4 hidden layers and widths 16-256 (each task's
activation drawn from tanh, ReLU, GELU and sigmoid), a conv net, softmax regression, a
digits autoencoder, teacher-student regression, noisy quadratics and Rosenbrock. Wider
and deeper entries use smaller batches so that every entry costs about the same per
step (``benchmarks/task_cost.py`` measures them; results in ``docs/tasks.md``).
"""

from __future__ import annotations

import copy
import difflib
import math
from typing import Any, Mapping

ENTRY_KEYS: tuple[str, ...] = ("family", "weight", "overrides", "augment")
ACTIVATIONS = ["tanh", "relu", "gelu", "sigmoid"]


def _mlp(hidden_sizes: list[int], batch_size: int = 128, weight: float = 1.0) -> dict:
    overrides = {"hidden_sizes": hidden_sizes, "activations": ACTIVATIONS}
    if batch_size != 128:
        overrides["batch_size"] = batch_size
    return {"family": "mlp-digits", "weight": weight, "overrides": overrides}


MIXTURES: dict[str, list[dict[str, Any]]] = {
    "wide": [
        _mlp([32]),
        _mlp([256], batch_size=64),
        _mlp([64, 64]),
        _mlp([128, 32], batch_size=64),
        _mlp([32, 32, 32]),
        _mlp([16, 16, 16, 16]),
        _mlp([64, 64, 64, 64], batch_size=64),
        {"family": "conv-digits", "weight": 1.0,
         "overrides": {"activations": ACTIVATIONS, "batch_size": 16}},
        {"family": "logreg-digits", "weight": 1.0, "overrides": {}},
        {"family": "ae-digits", "weight": 1.0, "overrides": {}},
        {"family": "teacher-regression", "weight": 1.0, "overrides": {}},
        {"family": "quadratic", "weight": 1.0, "overrides": {}},
        {"family": "rosenbrock", "weight": 1.0, "overrides": {}},
    ],
}


def names() -> list[str]:
    """Sorted names of the predefined mixtures."""
    return sorted(MIXTURES)


def get(name: str) -> list[dict[str, Any]]:
    """A deep copy of mixture ``name``'s entries (edit it freely)."""
    if name not in MIXTURES:
        raise KeyError(f"unknown mixture {name!r}; predefined mixtures are {names()}."
                       + _did_you_mean(name, names()))
    return copy.deepcopy(MIXTURES[name])


def _did_you_mean(name: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(name, valid, n=1)
    return f" Did you mean {close[0]!r}?" if close else ""


def _json_form(value: Any, where: str) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _json_form(v, where) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_form(v, where) for v in value]
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    raise ValueError(f"{where} must be JSON values, got {value!r} ({type(value).__name__}).")


def check_entry(entry: Any, index: int = 0) -> dict[str, Any]:
    """One validated entry in full form: ``{"family", "weight", "overrides", "augment"}``.

    ``weight`` defaults to 1 and must be a finite number > 0; ``overrides`` defaults to
    ``{}``; ``augment`` is expanded by :func:`tasks.augment.check_spec` (``{}`` for none).
    Family names are not looked up here (see :func:`check_entry_names`). Raises
    ``ValueError`` with a one-line message naming the entry.
    """
    from tasks import augment

    where = f"mixture entry {index}"
    if not isinstance(entry, Mapping):
        raise ValueError(f"{where} must be an object like {{\"family\": \"mlp-digits\", "
                         f"\"weight\": 1.0}}, got {entry!r}.")
    unknown = sorted(set(entry) - set(ENTRY_KEYS))
    if unknown:
        hints = "".join(_did_you_mean(k, list(ENTRY_KEYS)) for k in unknown)
        raise ValueError(f"{where} has unknown key(s) {unknown}.{hints} Valid: "
                         f"{list(ENTRY_KEYS)}.")
    family = entry.get("family")
    if not isinstance(family, str) or not family:
        raise ValueError(f"{where} needs a \"family\" (a registered task family name), got "
                         f"{family!r}.")
    weight = entry.get("weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not (
            math.isfinite(weight) and weight > 0):
        raise ValueError(f"{where} ({family!r}) has weight {weight!r}; a weight must be a "
                         "finite number > 0 (its share of the meta-gradient).")
    overrides = entry.get("overrides") or {}
    if not isinstance(overrides, Mapping):
        raise ValueError(f"{where} ({family!r}) overrides must be an object of family "
                         f"options, got {overrides!r}.")
    try:
        spec = augment.check_spec(entry.get("augment"))
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where} ({family!r}) augment: {err}") from None
    return {"family": family, "weight": float(weight),
            "overrides": _json_form(overrides, f"{where} overrides"), "augment": spec}


def check_entries(entries: Any) -> list[dict[str, Any]]:
    """Every entry validated by :func:`check_entry`; the list must not be empty."""
    if not isinstance(entries, (list, tuple)):
        raise ValueError(f"a mixture is a list of {{family, weight, overrides, augment}} "
                         f"entries, got {type(entries).__name__}: {entries!r}.")
    if not entries:
        raise ValueError("the mixture is empty; give at least one {family, weight, overrides, "
                         "augment} entry (or no mixture to train on the single family).")
    return [check_entry(entry, i) for i, entry in enumerate(entries)]


def check_entry_names(entries: list[Mapping[str, Any]]) -> None:
    """Raise ``ValueError`` for an entry whose family is not registered (with a
    did-you-mean hint) or whose ``overrides`` have a key the family does not take."""
    from tasks import registry

    known = registry.names()
    for i, entry in enumerate(entries):
        family = entry["family"]
        if family not in known:
            raise ValueError(f"mixture entry {i}: unknown task family {family!r}."
                             f"{_did_you_mean(family, known)} Valid: {known}.")
        valid = registry.overrides(family)
        unknown = sorted(set(entry.get("overrides") or {}) - set(valid))
        if unknown:
            hints = "".join(_did_you_mean(k, valid) for k in unknown)
            raise ValueError(f"mixture entry {i} ({family!r}) overrides have unknown key(s) "
                             f"{unknown}.{hints} Valid: {sorted(valid)}.")


def build(entry: Mapping[str, Any], split: str = "train"):
    """The ``TaskFamily`` of one entry: the family with its overrides, then its ``augment``.

    JSON lists in ``overrides`` are passed as tuples. Raises what ``tasks.registry.get``
    and ``tasks.augment.apply`` raise for unknown names, overrides or specs.
    """
    from tasks import augment, registry

    overrides = {key: _tuple_form(value)
                 for key, value in dict(entry.get("overrides") or {}).items()}
    family = registry.get(entry["family"], split=split, **overrides)
    return augment.apply(family, entry.get("augment"))


def _tuple_form(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_tuple_form(item) for item in value)
    return value
