"""Atomic checkpoints of a whole training state pytree (msgpack + fsync + rename).

A checkpoint is ``flax.serialization.msgpack_serialize`` of ``{"leaves": {i: array},
"extra": {...}}``: the state's leaves in `jax.tree.leaves` order (PRNG key arrays stored
as their raw key data) and a small JSON-able dict (step, metrics offsets...). Restoring
needs a *template* state with the same structure (rebuilt from the run's config), so no
pickling of Python objects is involved and the restored arrays are bit-identical.
Writes go to a temporary file in the same directory, are fsynced, then ``os.replace``d
over the target, so a crash never leaves a truncated checkpoint behind.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import serialization

from l2o.atomic import write_atomic


def _is_key(x: Any) -> bool:
    return isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def save_checkpoint(path: str | os.PathLike, state: Any, extra: dict | None = None) -> None:
    """Save every leaf of ``state`` plus ``extra`` (msgpack-able scalars/strings) atomically."""
    leaves = jax.tree.leaves(jax.device_get(state))
    stored = {}
    for i, leaf in enumerate(leaves):
        if _is_key(leaf):
            leaf = jax.random.key_data(leaf)
        stored[str(i)] = np.asarray(leaf)
    payload = {"leaves": stored, "extra": dict(extra or {}), "num_leaves": len(leaves)}
    write_atomic(path, serialization.msgpack_serialize(payload))


def load_checkpoint(path: str | os.PathLike, template: Any) -> tuple[Any, dict]:
    """``(state, extra)`` restored into the structure of ``template``.

    Raises:
      FileNotFoundError: no checkpoint at ``path``.
      ValueError: the checkpoint's leaves do not match the template (different config).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {str(path)!r}; was the run checkpointed?")
    payload = serialization.msgpack_restore(path.read_bytes())
    leaves, treedef = jax.tree.flatten(template)
    if int(payload["num_leaves"]) != len(leaves):
        raise ValueError(
            f"checkpoint {str(path)!r} has {payload['num_leaves']} arrays but the run's state "
            f"has {len(leaves)}: it was written with a different config; resume with the "
            "run's own config.json."
        )
    restored = []
    for i, like in enumerate(leaves):
        value = np.asarray(payload["leaves"][str(i)])
        raw_like = jax.random.key_data(like) if _is_key(like) else np.asarray(like)
        if value.shape != raw_like.shape or value.dtype != raw_like.dtype:
            raise ValueError(
                f"checkpoint {str(path)!r} array {i} is {value.dtype}{list(value.shape)}, the "
                f"run's state expects {raw_like.dtype}{list(raw_like.shape)}: different config."
            )
        if _is_key(like):
            value = jax.random.wrap_key_data(value, impl=jax.random.key_impl(like))
        else:
            value = jax.numpy.asarray(value)
        restored.append(value)
    return jax.tree.unflatten(treedef, restored), dict(payload.get("extra", {}))
