"""The two abstractions every other package consumes: `Task` and `TaskFamily`.

A `Task` is one optimization problem: parameters, a stochastic training loss that
draws its own minibatch from device-resident data, and an evaluation loss on a data
split. A `TaskFamily` is a distribution over tasks: `sample(key)` draws a config (a
pytree of arrays) and `task(cfg)` turns it into a `Task`. Every task of one family has
the same parameter shapes, so batches of configs can be `jax.vmap`ped::

    family = tasks.registry.get("quadratic")
    cfgs = jax.vmap(family.sample)(jax.random.split(key, 8))
    params = jax.vmap(lambda c, k: family.task(c).init(k))(cfgs, keys)
    losses = jax.vmap(lambda c, p, k: family.task(c).loss(p, k))(cfgs, params, keys)

`task(cfg)` is cheap and pure: call it inside traced code (the closures capture `cfg`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Literal

import jax

Params = Any
Cfg = Any
Split = Literal["train", "test"]
SPLITS: tuple[str, ...] = ("train", "test")


def check_split(split: str) -> str:
    """Validate a data-split name at the Python level (splits are static under jit).

    Returns ``split`` unchanged; raises ``ValueError`` naming the valid splits otherwise.
    """
    if split not in SPLITS:
        raise ValueError(
            f"split={split!r} is not a data split; expected one of {SPLITS} "
            "(use 'train' for training data, 'test' for held-out images)."
        )
    return split


@dataclasses.dataclass(frozen=True)
class Task:
    """One optimization problem.

    Attributes:
      name: human-readable identifier, e.g. ``"quadratic/d10"``.
      init: ``init(key) -> params`` — a pytree of float32 arrays.
      loss: ``loss(params, key) -> scalar`` — training loss on a minibatch drawn with
        ``key`` (deterministic tasks ignore the key).
      eval_loss: ``eval_loss(params, key, split) -> scalar`` — loss on a minibatch of
        ``split`` ("train" or "test", static), drawn with ``key``.
      metrics: optional ``metrics(params, key, split) -> dict[str, scalar]`` with extra
        evaluation numbers (e.g. ``{"accuracy": ...}`` for classifiers).
      optimum: optional known minimum loss value (e.g. of a quadratic), or None.
      argmin: optional known minimiser (a params pytree at which ``loss`` attains
        ``optimum``), or None. Added after the first release, with a default, so
        existing constructors keep working.
    """

    name: str
    init: Callable[[jax.Array], Params]
    loss: Callable[[Params, jax.Array], jax.Array]
    eval_loss: Callable[[Params, jax.Array, str], jax.Array]
    metrics: Callable[[Params, jax.Array, str], dict] | None = None
    optimum: Any = None
    argmin: Any = None


@dataclasses.dataclass(frozen=True)
class TaskFamily:
    """A distribution over tasks with identical parameter shapes.

    Attributes:
      name: registry name, e.g. ``"mlp-digits"``.
      sample: ``sample(key) -> cfg`` — a pytree of arrays (jit/vmap-able).
      task: ``task(cfg) -> Task`` — pure; callable on traced cfgs.
      split: ``"train"`` or ``"heldout"`` — which variant of the family this is.
    """

    name: str
    sample: Callable[[jax.Array], Cfg]
    task: Callable[[Cfg], Task]
    split: str = "train"

    def sample_task(self, key: jax.Array) -> Task:
        """Draw one config and build its task (convenience, not vmapped)."""
        return self.task(self.sample(key))
