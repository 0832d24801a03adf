"""`MetaTrainConfig`: every knob of a meta-training run, validated at the boundary.

    config = MetaTrainConfig.from_json("run.json").with_overrides(["sigma=0.02", "outer_steps=100"])
    config = MetaTrainConfig(family="quadratic", outer_steps=200)
    config.recipe            # Recipe: the fields that determine theta
    config.run_settings      # RunSettings: how long and where it runs, logging, devices

A config is a `Recipe` (everything the trained theta depends on: families, optimizer,
estimator, horizon, tasks, seed, meta-objective) plus `RunSettings` (outer steps, output
directory, evaluation and logging periods, sharding, processes). A run resumes when its
recipe equals the saved one, whatever the run settings.

Types, bounds and choices come from each field's annotation and `setting` metadata.
Overrides are ``key=value`` strings; values are coerced to the field's type (ints, floats,
booleans ``true/false``, ``none`` for optional fields, JSON for ``lopt_config``), and
``lopt_config.NAME=VALUE`` sets one entry of the optimizer's config (JSON value, or the
raw string if it is not JSON); ``family_overrides`` / ``family_overrides.NAME=VALUE`` do the
same for the keyword overrides of the training task family, e.g.
``family_overrides.activations=["tanh","relu"]``.

Mixture meta-training (`meta_train.mixture`): ``mixture`` is a list of entries
``{"family", "weight", "overrides", "augment"}`` (`tasks.mixtures.check_entry`), e.g.
``--set 'mixture=[{"family": "quadratic"}, {"family": "rosenbrock", "weight": 2}]'`` or
``tasks.mixtures.get("wide")``; each entry is a group of ``num_tasks x num_pairs`` pairs.
``augment`` (single family) and each entry's ``augment`` take a `tasks.augment` spec;
``horizon_range=[min,max]`` samples each inner run's horizon log-uniformly.
"""

from __future__ import annotations

import dataclasses
import json
import os

from meta_train.config_fields import (
    coerce, dict_fields, field_errors, json_form, key_hints, parse_json_or_str, setting,
    tuple_form,
)
from meta_train.distributed import check_process_args
from meta_train.inner import META_LOSS_SPLITS
from meta_train.objective import META_LOSS_KINDS, TINY_RATIO
from meta_train.pes import FITNESS_SHAPINGS, STRATEGIES
from meta_train.selection import KEEP_CHOICES
from meta_train.sharding import mesh_shape
from meta_train.truncation import horizon_range_error, trunc_length_error

_HOW_TO_FIX = (" Fix the value(s) in the MetaTrainConfig arguments, the JSON config file or "
               "with --set KEY=VALUE.")


class _Validated:
    """Runs the field checks of a config dataclass, then `_relation_errors`."""

    def __post_init__(self):
        type_errors, value_errors = field_errors(self)
        if not type_errors:
            type_errors = self._normalise()
        label = f"invalid {type(self).__name__}: "
        if type_errors:
            raise TypeError(label + "; ".join(type_errors) + "." + _HOW_TO_FIX)
        if not value_errors:
            value_errors = self._relation_errors()
        if value_errors:
            raise ValueError(label + "; ".join(value_errors) + "." + _HOW_TO_FIX)

    def _normalise(self) -> list[str]:
        """Bring well-typed fields into canonical form; returns type errors."""
        return []

    def _relation_errors(self) -> list[str]:
        """Errors between well-typed fields that are each in range."""
        return []


@dataclasses.dataclass(frozen=True)
class Recipe(_Validated):
    """What determines the trained theta.

    Attributes:
      family: training task family (``tasks.registry``); meta-training uses its
        ``"train"`` split.
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
      seed: PRNG seed.
      meta_loss / meta_loss_split / max_ratio / min_ratio: meta-objective (see
        `meta_train.objective`; ``min_ratio`` floors the ``"log"`` kind).
      stagger: start tasks at staggered inner steps.
      mixture: None (train on ``family``) or a non-empty list of entries ``{"family",
        "weight", "overrides", "augment"}`` (`tasks.mixtures.check_entry`; stored in full
        form): each entry is a group of ``num_tasks x num_pairs`` antithetic pairs with
        its own inner states, and one outer step applies the weighted mean of the
        groups' estimates (`meta_train.mixture`). ``family`` / ``family_overrides`` /
        ``augment`` then do not apply to training.
      augment: a `tasks.augment` spec for the single training family, e.g.
        ``{"weight_scale": [1e-3, 1e3]}`` (stored in full form; ``{}``: none).
      horizon_range: None (every inner run lasts ``horizon`` steps) or ``[min, max]``:
        each run draws its horizon log-uniformly in that range, rounded to a multiple of
        ``trunc_length``, and the optimizer is told it as ``num_steps``. ``horizon`` stays
        the held-out evaluation's length and the span of the staggered starts.
      init_theta: None (fresh ``lopt.init_meta_params``) or where meta-training starts
        from: a shipped optimizer's name or a saved ``theta`` path whose architecture
        matches ``lopt``/``lopt_config`` (`meta_train.init_theta`). Use it to fine-tune,
        e.g. a shipped optimizer with ``lr_adapt`` switched on.
    """

    family: str = "mlp-digits"
    family_overrides: dict = setting(default_factory=dict)
    lopt: str = "mlp"
    lopt_config: dict = setting(default_factory=dict)
    strategy: str = setting("pes", choices=STRATEGIES)
    sigma: float = setting(0.01, positive=True)
    outer_lr: float = setting(3e-3, positive=True)
    outer_clip: float = setting(1.0, positive=True)
    fitness_shaping: str = setting("identity", choices=tuple(sorted(FITNESS_SHAPINGS)))
    horizon: int = setting(200, minimum=1)
    trunc_length: int = setting(20, minimum=1)
    num_tasks: int = setting(8, minimum=1)
    num_pairs: int = setting(8, minimum=1)
    seed: int = 0
    meta_loss: str = setting("log", choices=META_LOSS_KINDS)
    meta_loss_split: str = setting("train_batch", choices=META_LOSS_SPLITS)
    max_ratio: float = setting(10.0, positive=True)
    min_ratio: float = setting(TINY_RATIO, positive=True)
    stagger: bool = True
    mixture: list | None = None
    augment: dict = setting(default_factory=dict)
    horizon_range: list | None = None
    init_theta: str | None = None

    def _normalise(self) -> list[str]:
        errors = super()._normalise()
        try:
            object.__setattr__(self, "family_overrides", json_form(self.family_overrides))
        except TypeError as err:
            errors.append(f"family_overrides must be JSON-serialisable: {err}")
        return errors

    def _relation_errors(self) -> list[str]:
        errors = super()._relation_errors()
        if (isinstance(self.min_ratio, float) and isinstance(self.max_ratio, float)
                and not self.min_ratio < self.max_ratio):
            errors.append(f"min_ratio ({self.min_ratio!r}) must be below max_ratio "
                          f"({self.max_ratio!r})")
        problem = trunc_length_error(self.horizon, self.trunc_length)
        if problem:
            errors.append(problem)
        if self.horizon_range is not None:
            problem = horizon_range_error(self.horizon_range, self.trunc_length)
            if problem:
                errors.append(problem)
        if self.augment:
            from tasks import augment

            try:
                object.__setattr__(self, "augment", augment.check_spec(self.augment))
            except (TypeError, ValueError) as err:
                errors.append(f"augment: {str(err).rstrip('.')}")
        if self.mixture is not None:
            from tasks import mixtures

            try:
                object.__setattr__(self, "mixture", mixtures.check_entries(self.mixture))
            except ValueError as err:
                errors.append(str(err).rstrip("."))
            if self.family_overrides or self.augment:
                errors.append("family_overrides and augment apply to the single training "
                              "family; with a mixture give each entry its own 'overrides' and "
                              "'augment'")
        return errors


@dataclasses.dataclass(frozen=True)
class RunSettings(_Validated):
    """How long and where a run goes, what it logs and on which devices (not theta).

    Attributes:
      outer_steps: total outer steps (a resumed run may go further).
      heldout_family: task family of the held-out evaluation (its ``"heldout"`` split;
        default: of ``family``).
      eval_every / eval_tasks: held-out evaluation period (0 = only at the end) and size;
        every evaluation of a run uses the same held-out tasks and batches.
      keep: which theta the run returns and `scripts/pretrain.py` ships: ``"last"``, or
        ``"best"``, the one of lowest held-out ``mean_log_loss`` among the initial theta,
        the periodic evaluations and the last one (`meta_train.selection`; written as
        ``theta_best`` beside ``theta``).
      ckpt_every / log_every: checkpoint and metrics periods in outer steps (0 = never).
      out_dir: run directory (config, metrics, checkpoints, final theta).
      shard / num_devices: split the particle axis over devices (`meta_train.sharding`);
        ``num_devices=0`` uses the most devices (of all processes) that split the
        ``(2, num_tasks, num_pairs)`` particle layout (`sharding.valid_device_counts`).
        The device layout changes float rounding only; a bit-identical resume needs the
        same one.
      coordinator / num_processes / process_id: multi-process run via `jax.distributed`
        (``coordinator`` is ``"HOST:PORT"`` of process 0; None for one process).
    """

    outer_steps: int = setting(1500, minimum=0)
    heldout_family: str | None = None
    eval_every: int = setting(250, minimum=0)
    eval_tasks: int = setting(8, minimum=1)
    keep: str = setting("last", choices=KEEP_CHOICES)
    ckpt_every: int = setting(100, minimum=0)
    log_every: int = setting(10, minimum=0)
    out_dir: str = "runs/meta-train"
    shard: bool = True
    num_devices: int = setting(0, minimum=0)
    coordinator: str | None = None
    num_processes: int = 1
    process_id: int = 0

    def _relation_errors(self) -> list[str]:
        errors = super()._relation_errors()
        try:
            check_process_args(self.coordinator, self.num_processes, self.process_id)
        except ValueError as err:
            errors.append(str(err).rstrip("."))
        return errors


@dataclasses.dataclass(frozen=True)
class MetaTrainConfig(RunSettings, Recipe):
    """One meta-training run (see `meta_train.train.train`): a `Recipe` plus `RunSettings`.

    Fields are flat (``config.sigma``, ``config.out_dir``); `recipe` and `run_settings`
    give the two parts. See `Recipe` and `RunSettings` for every field.
    """

    def _relation_errors(self) -> list[str]:
        errors = super()._relation_errors()
        if not errors and self.num_devices:
            try:
                mesh_shape(self.num_devices, self.num_tasks, self.num_pairs)
            except ValueError as err:
                errors.append(str(err).rstrip("."))
        return errors

    @property
    def recipe(self) -> Recipe:
        """The fields that determine theta (a resumed run must have the same)."""
        return Recipe(**{f.name: getattr(self, f.name) for f in dataclasses.fields(Recipe)})

    @property
    def run_settings(self) -> RunSettings:
        """The fields that may change between a run and its resumption."""
        return RunSettings(**{f.name: getattr(self, f.name)
                              for f in dataclasses.fields(RunSettings)})

    # ---------------------------------------------------------------- names
    def check_names(self, lopt: bool = True, families: bool = True) -> None:
        """Raise `ValueError` if the optimizer / family names are not registered."""
        if lopt:
            import l2o

            lopts = l2o.registry.all_names()
            if self.lopt not in lopts:
                raise ValueError(f"unknown lopt {self.lopt!r}; valid: {lopts}.")
        known = known_families() if families else None
        for name in (self.family, self.heldout_family):
            if name is not None and known is not None and name not in known:
                raise ValueError(f"unknown task family {name!r}; valid: {known}.")
        if families:
            self.check_family_overrides()
            if self.mixture is not None:
                from tasks import mixtures

                mixtures.check_entry_names(self.mixture)

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
                f"{self.family!r}; valid: {sorted(valid)}.{key_hints(unknown, valid)}"
            )

    def family_kwargs(self) -> dict:
        """``family_overrides`` as keyword arguments of the family (JSON lists -> tuples)."""
        return {key: tuple_form(value) for key, value in self.family_overrides.items()}

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
                f"unknown config key(s) {unknown}; valid keys: {valid}.{key_hints(unknown, valid)}"
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
        nested_fields = dict_fields(type(self))
        nested = {name: dict(data[name]) for name in nested_fields}
        valid = [f.name for f in dataclasses.fields(self)]
        for item in overrides:
            if not isinstance(item, str) or "=" not in item:
                raise ValueError(f"override {item!r} is not of the form key=value.")
            key, raw = (part.strip() for part in item.split("=", 1))
            head, _, sub = key.partition(".")
            if head in nested_fields and sub:
                nested[head][sub] = parse_json_or_str(raw)
            elif key in valid:
                data[key] = coerce(type(self), key, raw)
                if key in nested_fields:
                    nested[key] = dict(data[key])
            else:
                raise ValueError(f"unknown config key {key!r} in override {item!r}; valid: "
                                 f"{valid}.{key_hints([key], valid)}")
        data.update(nested)
        return type(self).from_dict(data)



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
