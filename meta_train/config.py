"""`MetaTrainConfig`: every knob of a meta-training run, validated at the boundary.

    config = MetaTrainConfig.from_json("run.json").with_overrides(["sigma=0.02", "steps=100"])
    config = MetaTrainConfig(family="quadratic", outer_steps=200)

Overrides are ``key=value`` strings; values are coerced to the field's type (ints, floats,
booleans ``true/false``, ``none`` for optional fields, JSON for ``lopt_config``), and
``lopt_config.NAME=VALUE`` sets one entry of the optimizer's config (JSON value, or the
raw string if it is not JSON); ``family_overrides`` / ``family_overrides.NAME=VALUE`` do the
same for the keyword overrides of the training task family, e.g.
``family_overrides.activations=["tanh","relu"]``.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
from typing import Any

from meta_train.distributed import check_process_args
from meta_train.inner import META_LOSS_SPLITS
from meta_train.objective import META_LOSS_KINDS
from meta_train.pes import FITNESS_SHAPINGS, STRATEGIES
from meta_train.sharding import mesh_shape

_INT_FIELDS = ("horizon", "trunc_length", "num_tasks", "num_pairs", "outer_steps", "seed",
               "eval_every", "eval_tasks", "ckpt_every", "log_every", "num_devices",
               "num_processes", "process_id")
_POSITIVE_INTS = ("horizon", "trunc_length", "num_tasks", "num_pairs", "eval_tasks")
_NON_NEGATIVE_INTS = ("outer_steps", "eval_every", "ckpt_every", "log_every", "num_devices")
_FLOAT_FIELDS = ("sigma", "outer_lr", "outer_clip", "max_ratio")
_BOOL_FIELDS = ("stagger", "shard")
_STR_FIELDS = ("family", "lopt", "strategy", "fitness_shaping", "meta_loss",
               "meta_loss_split", "out_dir")
_OPTIONAL_STR_FIELDS = ("heldout_family", "coordinator")
_DICT_FIELDS = ("lopt_config", "family_overrides")  # also settable one entry at a time


@dataclasses.dataclass(frozen=True)
class MetaTrainConfig:
    """One meta-training run (see `meta_train.train.train`).

    Attributes:
      family / heldout_family: task family names (``tasks.registry``). Meta-training uses
        the ``"train"`` split of ``family``; evaluation the ``"heldout"`` split of
        ``heldout_family`` (default: of ``family``).
      family_overrides: keyword overrides of the training family
        (``tasks.registry.get(family, **family_overrides)``, names from
        ``tasks.registry.overrides(family)``), e.g. ``{"activations": ["tanh", "relu"]}``.
        Stored in JSON form (tuples become lists); JSON lists are passed to the family as
        tuples (`family_kwargs`). The held-out split is not overridden.
      lopt / lopt_config: learned optimizer name (``l2o.registry``) and its config.
      strategy: ``"pes"``, ``"tes"`` or ``"nres"``; sigma: perturbation std.
      outer_lr / outer_clip: Adam learning rate and global-norm gradient clip.
      fitness_shaping: evosax fitness shaping (``"identity"`` keeps PES unbiased).
      horizon / trunc_length: inner run length H and truncation K (K divides H).
      num_tasks / num_pairs: tasks per outer step and antithetic pairs per task.
      outer_steps: total outer steps; seed: PRNG seed.
      eval_every / eval_tasks: held-out evaluation period (0 = only at the end) and size.
      ckpt_every / log_every: checkpoint and metrics periods in outer steps (0 = never).
      meta_loss / meta_loss_split / max_ratio: meta-objective (see `meta_train.objective`).
      stagger: start tasks at staggered inner steps.
      out_dir: run directory (config, metrics, checkpoints, final theta).
      shard / num_devices: split the particle axis over devices (`meta_train.sharding`);
        ``num_devices=0`` uses the most devices (of all processes) that split the
        ``(2, num_tasks, num_pairs)`` particle layout (`sharding.valid_device_counts`).
      coordinator / num_processes / process_id: multi-process run via `jax.distributed`
        (``coordinator`` is ``"HOST:PORT"`` of process 0; None for one process).
    """

    family: str = "mlp-digits"
    heldout_family: str | None = None
    family_overrides: dict = dataclasses.field(default_factory=dict)
    lopt: str = "mlp"
    lopt_config: dict = dataclasses.field(default_factory=dict)
    strategy: str = "pes"
    sigma: float = 0.01
    outer_lr: float = 3e-3
    outer_clip: float = 1.0
    fitness_shaping: str = "identity"
    horizon: int = 200
    trunc_length: int = 20
    num_tasks: int = 8
    num_pairs: int = 8
    outer_steps: int = 1500
    seed: int = 0
    eval_every: int = 250
    eval_tasks: int = 8
    ckpt_every: int = 100
    log_every: int = 10
    meta_loss: str = "log"
    meta_loss_split: str = "train_batch"
    max_ratio: float = 10.0
    stagger: bool = True
    out_dir: str = "runs/meta-train"
    shard: bool = True
    num_devices: int = 0
    coordinator: str | None = None
    num_processes: int = 1
    process_id: int = 0

    def __post_init__(self):
        errors = []
        for name in _INT_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                errors.append(f"{name} must be an int, got {value!r} ({type(value).__name__})")
        for name in _FLOAT_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                errors.append(f"{name} must be a number, got {value!r} ({type(value).__name__})")
            else:
                object.__setattr__(self, name, float(value))
        for name in _BOOL_FIELDS:
            if not isinstance(getattr(self, name), bool):
                errors.append(f"{name} must be true or false, got {getattr(self, name)!r}")
        for name in _STR_FIELDS:
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                errors.append(f"{name} must be a non-empty string, got {getattr(self, name)!r}")
        for name in _OPTIONAL_STR_FIELDS:
            if getattr(self, name) is not None and not isinstance(getattr(self, name), str):
                errors.append(f"{name} must be a string or null, got {getattr(self, name)!r}")
        if not isinstance(self.lopt_config, dict):
            errors.append(f"lopt_config must be a dict, got {self.lopt_config!r}")
        if not isinstance(self.family_overrides, dict):
            errors.append(f"family_overrides must be a dict, got {self.family_overrides!r}")
        else:
            try:
                object.__setattr__(self, "family_overrides", _json_form(self.family_overrides))
            except TypeError as err:
                errors.append(f"family_overrides must be JSON-serialisable: {err}")
        if errors:
            raise TypeError("invalid MetaTrainConfig: " + "; ".join(errors) + "." + _HOW_TO_FIX)
        for name in _POSITIVE_INTS:
            if getattr(self, name) < 1:
                errors.append(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in _NON_NEGATIVE_INTS:
            if getattr(self, name) < 0:
                errors.append(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("sigma", "outer_lr", "outer_clip", "max_ratio"):
            if not getattr(self, name) > 0:
                errors.append(f"{name} must be > 0, got {getattr(self, name)}")
        if not errors and self.horizon % self.trunc_length:
            divisors = [d for d in range(1, self.horizon + 1) if self.horizon % d == 0]
            errors.append(
                f"trunc_length={self.trunc_length} must divide horizon={self.horizon} "
                f"(divisors of {self.horizon}: {divisors})"
            )
        if not errors and self.num_devices:
            try:
                mesh_shape(self.num_devices, self.num_tasks, self.num_pairs)
            except ValueError as err:
                errors.append(str(err).rstrip("."))
        if not errors:
            try:
                check_process_args(self.coordinator, self.num_processes, self.process_id)
            except ValueError as err:
                errors.append(str(err).rstrip("."))
        for name, valid in (("strategy", STRATEGIES), ("meta_loss", META_LOSS_KINDS),
                            ("meta_loss_split", META_LOSS_SPLITS),
                            ("fitness_shaping", tuple(sorted(FITNESS_SHAPINGS)))):
            if getattr(self, name) not in valid:
                errors.append(f"unknown {name} {getattr(self, name)!r}; valid: {list(valid)}")
        if errors:
            raise ValueError("invalid MetaTrainConfig: " + "; ".join(errors) + "." + _HOW_TO_FIX)

    # ---------------------------------------------------------------- names
    def check_names(self, lopt: bool = True, families: bool = True) -> None:
        """Raise `ValueError` if the optimizer / family names are not registered."""
        if lopt:
            import l2o

            lopts = l2o.registry.names()
            if self.lopt not in lopts:
                raise ValueError(f"unknown lopt {self.lopt!r}; valid: {lopts}.")
        known = known_families() if families else None
        for name in (self.family, self.heldout_family):
            if name is not None and known is not None and name not in known:
                raise ValueError(f"unknown task family {name!r}; valid: {known}.")
        if families:
            self.check_family_overrides()

    def check_family_overrides(self) -> None:
        """Raise `ValueError` if a ``family_overrides`` key is not an override of ``family``."""
        if not self.family_overrides:
            return
        try:
            from tasks import registry
        except ImportError:
            return
        if self.family not in registry.names():
            raise ValueError(f"unknown task family {self.family!r}; valid: {registry.names()}.")
        valid = registry.overrides(self.family)
        unknown = sorted(set(self.family_overrides) - set(valid))
        if unknown:
            raise ValueError(
                f"family_overrides has unknown key(s) {unknown} for task family "
                f"{self.family!r}; valid: {sorted(valid)}.{_key_hints(unknown, valid)}"
            )

    def family_kwargs(self) -> dict:
        """``family_overrides`` as keyword arguments of the family (JSON lists -> tuples)."""
        return {key: _tuple_form(value) for key, value in self.family_overrides.items()}

    # ---------------------------------------------------------------- (de)serialise
    def to_dict(self) -> dict:
        """Plain JSON-compatible dict of every field."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "MetaTrainConfig":
        """Config from a dict; unknown keys raise `ValueError` listing the valid ones."""
        if not isinstance(data, dict):
            raise TypeError(f"config must be a JSON object/dict, got {type(data).__name__}.")
        valid = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(valid))
        if unknown:
            raise ValueError(
                f"unknown config key(s) {unknown}; valid keys: {valid}.{_key_hints(unknown, valid)}"
            )
        return cls(**data)

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> "MetaTrainConfig":
        """Config from a JSON file (a single object with config keys)."""
        try:
            with open(path) as f:
                data = json.load(f)
        except FileNotFoundError:
            raise FileNotFoundError(f"config file {str(path)!r} does not exist.") from None
        except json.JSONDecodeError as err:
            raise ValueError(f"config file {str(path)!r} is not valid JSON: {err}.") from None
        return cls.from_dict(data)

    def to_json(self, path: str | os.PathLike) -> None:
        """Write the config as indented JSON."""
        with open(path, "w") as f:
            json.dump(self.to_dict(), f, indent=2, sort_keys=True)
            f.write("\n")

    def with_overrides(self, overrides: list[str] | tuple[str, ...]) -> "MetaTrainConfig":
        """A copy with ``key=value`` overrides applied (see module docstring)."""
        data = self.to_dict()
        nested = {name: dict(data[name]) for name in _DICT_FIELDS}
        valid = [f.name for f in dataclasses.fields(self)]
        for item in overrides:
            if not isinstance(item, str) or "=" not in item:
                raise ValueError(f"override {item!r} is not of the form key=value.")
            key, raw = (part.strip() for part in item.split("=", 1))
            head, _, sub = key.partition(".")
            if head in _DICT_FIELDS and sub:
                nested[head][sub] = _parse_json_or_str(raw)
            elif key in valid:
                data[key] = _coerce(key, raw)
                if key in _DICT_FIELDS:
                    nested[key] = dict(data[key])
            else:
                raise ValueError(f"unknown config key {key!r} in override {item!r}; valid: "
                                 f"{valid}.{_key_hints([key], valid)}")
        data.update(nested)
        return type(self).from_dict(data)


_HOW_TO_FIX = (" Fix the value(s) in the MetaTrainConfig arguments, the JSON config file or "
               "with --set KEY=VALUE.")
# Keys people reach for to size the ES population; here it is 2 * num_tasks * num_pairs.
_POPULATION_KEYS = ("population", "population_size", "popsize", "pop_size", "num_particles",
                    "num_perturbations")


def _key_hints(unknown: list[str], valid: list[str]) -> str:
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


def known_families() -> list[str] | None:
    """Registered task family names, or None when the tasks registry is unavailable."""
    try:
        from tasks import registry
    except ImportError:
        return None
    for attr in ("names", "list_families", "available"):
        if callable(getattr(registry, attr, None)):
            return sorted(getattr(registry, attr)())
    return None


def _parse_json_or_str(raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def _coerce(key: str, raw: str) -> Any:
    """Parse the string ``raw`` as the type of field ``key``."""
    try:
        if key in _INT_FIELDS:
            return int(raw)
        if key in _FLOAT_FIELDS:
            return float(raw)
    except ValueError:
        kind = "an int" if key in _INT_FIELDS else "a number"
        raise ValueError(f"override {key}={raw!r}: expected {kind}.") from None
    if key in _BOOL_FIELDS:
        lowered = raw.lower()
        if lowered in ("true", "1", "yes", "on"):
            return True
        if lowered in ("false", "0", "no", "off"):
            return False
        raise ValueError(f"override {key}={raw!r}: expected true or false.")
    if key in _OPTIONAL_STR_FIELDS:
        return None if raw.lower() in ("none", "null", "") else raw
    if key in _DICT_FIELDS:
        value = _parse_json_or_str(raw)
        if not isinstance(value, dict):
            raise ValueError(f"override {key}={raw!r}: expected a JSON object.")
        return value
    return raw


def _json_form(value: Any) -> Any:
    """``value`` with tuples turned into lists (recursively); TypeError if not JSON-able."""
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise TypeError(f"key {key!r} is not a string")
        return {key: _json_form(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_form(item) for item in value]
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    raise TypeError(f"{value!r} ({type(value).__name__}) is not a JSON value")


def _tuple_form(value: Any) -> Any:
    """``value`` with lists turned into tuples (recursively), for dataclass family configs."""
    if isinstance(value, list):
        return tuple(_tuple_form(item) for item in value)
    if isinstance(value, dict):
        return {key: _tuple_form(item) for key, item in value.items()}
    return value
