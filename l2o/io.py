"""Learned-optimizer files: ``NAME.json`` (description) + ``NAME.msgpack`` (weights).

``NAME.json`` holds the format version, the architecture's registry name and full
config, its input features, the meta-training horizon, the meta-parameter shapes, the
weights file's name, size and sha256, and the provenance (the caller's ``meta`` -- task
families, steps, strategy, seed, wall time... -- plus date, package versions, device and
Python filled in automatically).
``NAME.msgpack`` is ``flax.serialization.to_bytes(theta)``. Both are written atomically
(temporary file + ``os.replace``), weights first, so a reader never sees a description
of weights that are not there yet.

    json_path, weights_path = l2o.save("runs/x/my_lopt", lopt, theta, {"steps": 1500},
                                       horizon=200)
    loaded = l2o.load("runs/x/my_lopt")         # a LoadedOptimizer
    loaded.lopt, loaded.theta, loaded.record, loaded.horizon
    lopt, theta, record = l2o.load_pretrained("mlp-image")   # still a 3-tuple
    tx = loaded.as_optax()                       # num_steps = the recorded horizon (warns)
"""

from __future__ import annotations

import datetime
import hashlib
import importlib.metadata
import importlib.resources
import json
import os
import platform
import warnings
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import serialization

from l2o import registry
from l2o.atomic import write_atomic
from l2o.base import LearnedOptimizer
from l2o.flat import count_params
from l2o.validation import check_meta_params

FORMAT_VERSION = 1
PACKAGES = ("jax", "jaxlib", "flax", "optax", "evosax", "numpy", "l2o")


def _base_path(path: str | os.PathLike) -> Path:
    """``dir/NAME`` from ``dir/NAME``, ``dir/NAME.json`` or ``dir/NAME.msgpack``."""
    path = Path(path)
    return path.with_suffix("") if path.suffix in (".json", ".msgpack") else path


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.generic, jax.Array, np.ndarray)):
        return np.asarray(obj).tolist()
    if isinstance(obj, (Path, datetime.date)):
        return str(obj)
    raise TypeError(f"meta value {obj!r} of type {type(obj).__name__} is not JSON-serialisable")


def _versions() -> dict:
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return versions


def _shapes(tree: Any) -> dict:
    return {
        jax.tree_util.keystr(path): [list(leaf.shape), str(leaf.dtype)]
        for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]
    }


class LoadedOptimizer(NamedTuple):
    """What `load` returns; unpacks as ``lopt, theta, record = l2o.load(path)``.

    Attributes:
      lopt: the learned optimizer (config from the file).
      theta: its meta-parameters.
      record: the parsed ``NAME.json`` (``record["provenance"]`` holds save's ``meta``).
    """

    lopt: LearnedOptimizer
    theta: Any
    record: dict

    @property
    def name(self) -> str:
        """The file's name (``NAME`` of ``NAME.json``)."""
        return self.record.get("name", "")

    @property
    def horizon(self) -> int | None:
        """Steps per inner run the optimizer was meta-trained at (None if not recorded)."""
        value = self.record.get("horizon")
        if value is None:  # files written before the horizon had its own key
            value = self.record.get("provenance", {}).get("horizon")
        return None if value is None else int(value)

    def as_optax(self, num_steps: int | None = None):
        """``lopt.as_optax(theta, num_steps)``; without ``num_steps``, the recorded horizon.

        Using the horizon warns (``UserWarning``) with the value used: the progress
        features assume the run is ``num_steps`` long, so pass your own run length when it
        differs. Raises ``ValueError`` naming ``num_steps`` when the file has no horizon.
        """
        if num_steps is None:
            if self.horizon is None:
                raise ValueError(
                    f"{self.name or 'this optimizer'} records no meta-training horizon; pass "
                    "as_optax(num_steps=...), the number of steps you will train for.")
            warnings.warn(
                f"{self.name}: as_optax() uses num_steps={self.horizon}, the meta-training "
                "horizon recorded in its file; pass num_steps= (your run length) to choose.",
                UserWarning, stacklevel=2)
            num_steps = self.horizon
        return self.lopt.as_optax(self.theta, num_steps)


def check_saveable(lopt: LearnedOptimizer) -> None:
    """Raise (``ValueError`` / ``TypeError``, saying why) unless `save` can write ``lopt``."""
    registry.to_dict(lopt)


def save(
    path: str | os.PathLike, lopt: LearnedOptimizer, theta: Any, meta: dict | None = None,
    *, horizon: int | None = None,
) -> tuple[Path, Path]:
    """Write ``lopt`` + ``theta`` as ``NAME.json`` + ``NAME.msgpack``; returns both paths.

    Args:
      path: ``dir/NAME`` (a ``.json``/``.msgpack`` suffix is dropped); ``dir`` is created.
      lopt: a registered learned optimizer (``l2o.registry.names()``).
      theta: its meta-parameters (shapes must match ``lopt.init_meta_params``).
      meta: JSON-serialisable provenance (task families, steps, strategy, seed, ...);
        its keys override the automatic ones (date, versions, device, python).
      horizon: steps per inner run of meta-training (what `LoadedOptimizer.as_optax`
        uses by default); default ``meta["horizon"]`` when present, else not recorded.
    """
    description = registry.to_dict(lopt)  # raises for what cannot be written
    meta = {} if meta is None else meta
    if not isinstance(meta, dict) or not all(isinstance(k, str) for k in meta):
        raise TypeError(f"meta must be a dict with str keys; got {meta!r}.")
    horizon = meta.get("horizon") if horizon is None else horizon
    if horizon is not None and (isinstance(horizon, bool) or int(horizon) != horizon or horizon < 1):
        raise ValueError(f"horizon must be a positive int (steps per inner run); got {horizon!r}.")
    check_meta_params(lopt, theta)
    theta = jax.device_get(theta)
    base = _base_path(path)
    base.parent.mkdir(parents=True, exist_ok=True)
    json_path = base.with_name(base.name + ".json")
    weights_path = base.with_name(base.name + ".msgpack")

    weights = serialization.to_bytes(theta)
    device = jax.devices()[0]
    provenance = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "versions": _versions(),
        "device": f"{device.platform}:{device.device_kind}",
        "python": platform.python_version(),
        **meta,
    }
    record = {
        "format_version": FORMAT_VERSION,
        "name": base.name,
        "architecture": description["architecture"],
        "config": description["config"],
        "features": lopt.feature_names(),
        "horizon": None if horizon is None else int(horizon),
        "num_meta_params": count_params(theta),
        "meta_param_shapes": _shapes(theta),
        "weights": {
            "file": weights_path.name,
            "bytes": len(weights),
            "sha256": hashlib.sha256(weights).hexdigest(),
        },
        "provenance": provenance,
    }
    text = json.dumps(record, indent=2, default=_json_default) + "\n"
    write_atomic(weights_path, weights)
    write_atomic(json_path, text.encode())
    return json_path, weights_path


def _fail(path: Path, problem: str, fix: str) -> ValueError:
    return ValueError(f"{path}: {problem}. {fix}")


def load(path: str | os.PathLike) -> LoadedOptimizer:
    """Read a pair written by `save`; returns a `LoadedOptimizer` ``(lopt, theta, record)``.

    ``record`` is the parsed ``NAME.json`` (``record["provenance"]`` holds save's
    ``meta``). Raises ``FileNotFoundError`` for a missing file and ``ValueError`` naming
    the file for: unreadable/truncated JSON, a newer format version, an unknown
    architecture or config, a weights file that is truncated, fails its sha256 check or
    is not msgpack, and meta-parameter shapes that do not match the architecture.
    """
    base = _base_path(path)
    json_path = base.with_name(base.name + ".json")
    if not json_path.is_file():
        raise FileNotFoundError(
            f"{json_path}: no such learned-optimizer description; pass the path given to "
            "l2o.save (dir/NAME, with or without .json)."
        )
    redo = "Re-save it with l2o.save or restore the file from its source."
    try:
        record = json.loads(json_path.read_text())
        version = record["format_version"]
        architecture, config = record["architecture"], record["config"]
        weights_file = record["weights"]["file"]
        weights_bytes, weights_sha = record["weights"]["bytes"], record["weights"]["sha256"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as err:
        problem = f"not a valid l2o description ({type(err).__name__}: {err})"
        raise _fail(json_path, problem + "; the file is truncated or corrupt", redo) from None
    if not isinstance(version, int) or version > FORMAT_VERSION:
        problem = f"format_version {version!r} is newer than this l2o reads ({FORMAT_VERSION})"
        raise _fail(json_path, problem, "Upgrade l2o (pip install -U l2o) to load it.")
    if architecture not in registry.OPTIMIZERS:
        problem = f"unknown architecture {architecture!r}; this l2o knows {registry.names()}"
        raise _fail(json_path, problem, "Upgrade l2o or load it with the package that wrote it.")
    try:
        lopt = registry.get(architecture, **config)
    except (KeyError, TypeError, ValueError) as err:
        problem = f"config not accepted by {architecture!r} ({err})"
        raise _fail(json_path, problem, "Upgrade l2o or fix the config.") from None

    weights_path = json_path.with_name(weights_file)
    if not weights_path.is_file():
        raise FileNotFoundError(f"{weights_path}: weights file named by {json_path} is missing. {redo}")
    data = weights_path.read_bytes()
    if len(data) != weights_bytes:
        problem = f"has {len(data)} bytes, {json_path.name} says {weights_bytes} (truncated or replaced)"
        raise _fail(weights_path, problem, redo)
    if hashlib.sha256(data).hexdigest() != weights_sha:
        problem = f"sha256 differs from the one in {json_path.name} (file modified or corrupt)"
        raise _fail(weights_path, problem, redo)
    try:
        raw = serialization.msgpack_restore(data)
    except Exception as err:  # msgpack raises several unrelated types on bad input
        problem = f"is not a flax msgpack file ({type(err).__name__}: {err})"
        raise _fail(weights_path, problem, redo) from None

    template = jax.eval_shape(lopt.init_meta_params, jax.random.key(0))
    expected, found = _shapes(template), _shapes(jax.tree.map(np.asarray, raw))
    if expected != found:
        leaves = sorted(set(expected) | set(found))
        diff = {k: (expected.get(k), found.get(k)) for k in leaves if expected.get(k) != found.get(k)}
        problem = f"meta-parameters do not match {lopt!r}: (expected, found) per leaf {diff}"
        fix = "The weights were saved for another config; re-save them with the config that made them."
        raise _fail(weights_path, problem, fix)
    theta = jax.tree.map(jnp.asarray, serialization.from_state_dict(template, raw))
    return LoadedOptimizer(lopt, theta, record)


def _pretrained_dir() -> Path:
    """Directory of the shipped ``NAME.json`` + ``NAME.msgpack`` pairs (package data)."""
    return Path(str(importlib.resources.files("l2o") / "pretrained"))


def list_pretrained() -> list[str]:
    """Sorted names of the learned optimizers shipped in ``l2o/pretrained/``."""
    directory = _pretrained_dir()
    return sorted(p.stem for p in directory.glob("*.json")) if directory.is_dir() else []


def load_pretrained(name: str) -> LoadedOptimizer:
    """`load` the shipped optimizer ``name``; unknown names raise listing the available ones."""
    available = list_pretrained()
    if name not in available:
        raise KeyError(f"no pretrained learned optimizer {name!r}; available: {available}.")
    return load(_pretrained_dir() / name)
