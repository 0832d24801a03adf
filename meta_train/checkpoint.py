"""Atomic checkpoints of a whole training state pytree (msgpack + fsync + rename).

A checkpoint is ``flax.serialization.msgpack_serialize`` of ``{"leaves": {i: array},
"extra": {...}}``: the state's leaves in `jax.tree.leaves` order (PRNG key arrays stored
as their raw key data) and a small JSON-able dict (step, metrics offsets...). Restoring
needs a *template* state with the same structure (rebuilt from the run's config), so no
pickling of Python objects is involved and the restored arrays are bit-identical.
Writes go to a temporary file in the same directory, are fsynced, then ``os.replace``d
over the target, so a crash never leaves a truncated checkpoint behind. The checkpoint it
replaces is kept as `PREVIOUS` (``checkpoint.prev.msgpack``), one period older, for when the
latest one was damaged afterwards (a copy cut short, a full disk elsewhere).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import serialization

from l2o.atomic import write_atomic

CHECKPOINT = "checkpoint.msgpack"
PREVIOUS = "checkpoint.prev.msgpack"


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read; the message names it and what to do."""


def _is_key(x: Any) -> bool:
    return isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def keep_previous(path: str | os.PathLike) -> None:
    """Make `PREVIOUS` (same directory) a hard link to the checkpoint at ``path``, if any.

    Called before `save_checkpoint` replaces ``path``: until the new one is in place,
    both names hold the old checkpoint, so no moment is without a readable one.
    """
    path = Path(path)
    if not path.is_file():
        return
    tmp = path.with_name(f".{PREVIOUS}.link")
    if tmp.exists():
        tmp.unlink()
    try:
        os.link(path, tmp)
    except OSError:  # filesystems without hard links: copy
        tmp.write_bytes(path.read_bytes())
    os.replace(tmp, path.with_name(PREVIOUS))


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


def _read_payload(path: Path) -> dict:
    """The stored dict of checkpoint ``path``; `CheckpointError` if it cannot be unpacked."""
    try:
        payload = serialization.msgpack_restore(path.read_bytes())
        if not isinstance(payload, dict) or "leaves" not in payload:
            raise ValueError("not an l2o checkpoint")
        return payload
    except (ValueError, TypeError, KeyError) as err:  # msgpack: "Unpack failed: incomplete input"
        previous = path.with_name(PREVIOUS)
        todo = (f"rename {previous.name} (one checkpoint period older) to {path.name} to "
                "resume from it" if previous.is_file() and previous != path
                else "start the run again (l2o meta-train --overwrite)")
        raise CheckpointError(
            f"checkpoint {str(path)!r} is truncated or corrupt ({err}); {todo}.") from None


def checkpoint_step(path: str | os.PathLike) -> int:
    """The outer step stored in checkpoint ``path`` (`CheckpointError` if unreadable)."""
    extra = _read_payload(Path(path)).get("extra", {})
    return int(extra.get("step", 0))


def load_checkpoint(path: str | os.PathLike, template: Any) -> tuple[Any, dict]:
    """``(state, extra)`` restored into the structure of ``template``.

    Raises:
      FileNotFoundError: no checkpoint at ``path``.
      CheckpointError: the file is truncated or corrupt.
      ValueError: the checkpoint's leaves do not match the template (different config).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {str(path)!r}; was the run checkpointed?")
    payload = _read_payload(path)
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
