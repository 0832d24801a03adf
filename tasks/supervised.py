"""Supervised tasks: a network fitted to ``(input, target)`` minibatches by one of two losses.

Every family that trains a network on data (image classifiers, autoencoders, regression
heads, the tabular problems) builds its :class:`~tasks.base.Task` with
:func:`supervised_task` from three pieces: ``init(key) -> params``,
``apply(params, x) -> outputs`` and ``gather(key, split, batch_size) -> (x, y)``.

Losses (``loss=``):

- ``"cross_entropy"``: ``y`` int32 labels ``(B,)``, outputs logits ``(B, K)``; loss
  ``mean_b -log softmax(outputs_b)[y_b]``; ``metrics`` adds ``accuracy``.
- ``"mse"``: ``y`` float ``(B, K)``, outputs ``(B, K)``; loss
  ``mean_{b,k} (outputs_bk - y_bk)^2`` (an autoencoder passes ``y = x``).

The training loss of a task is the loss of a ``batch_size`` minibatch of the train split
plus ``0.5 * l2 * ||params||^2``; ``eval_loss`` and ``metrics`` use ``eval_batch_size``
examples of the requested split (the whole split, in order, when it has at most that many)
and no L2 term.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from tasks.base import Task, check_split

LOSSES: tuple[str, ...] = ("cross_entropy", "mse")


def check_loss(loss: str) -> str:
    """Validate a loss name; returns it unchanged."""
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}.")
    return loss


class ArrayData(NamedTuple):
    """A dataset on device as float inputs and targets (labels or regression targets).

    Attributes:
      train_x, test_x: float32 ``(N, ...)`` inputs of each split.
      train_y, test_y: int32 ``(N,)`` labels or float32 ``(N, K)`` targets.
    """

    train_x: jax.Array
    train_y: jax.Array
    test_x: jax.Array
    test_y: jax.Array


def gather_arrays(data: ArrayData, key: jax.Array, split: str, batch_size: int):
    """``(x, y)`` of ``batch_size`` examples of ``split`` drawn with replacement by ``key``.

    When ``batch_size`` is at least the split's size the whole split is returned in order
    and ``key`` is unused (full-batch training and exact evaluation).
    """
    check_split(split)
    x, y = (data.train_x, data.train_y) if split == "train" else (data.test_x, data.test_y)
    if batch_size < x.shape[0]:
        index = jax.random.randint(key, (batch_size,), 0, x.shape[0])
        x, y = x[index], y[index]
    return x, y


def softmax_cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Mean over the batch of ``-log softmax(logits)[label]``; logits ``(B, K)``."""
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))


def mean_squared_error(outputs: jax.Array, targets: jax.Array) -> jax.Array:
    """Mean over the batch and output units of ``(outputs - targets)^2``."""
    return jnp.mean((outputs - targets) ** 2)


def supervised_task(
    name: str,
    *,
    init: Callable[[jax.Array], Any],
    apply: Callable[[Any, jax.Array], jax.Array],
    gather: Callable[[jax.Array, str, int], tuple[jax.Array, jax.Array]],
    loss: str,
    batch_size: int,
    eval_batch_size: int,
    l2: float = 0.0,
) -> Task:
    """A :class:`Task` fitting ``apply`` to ``gather``'s batches with ``loss`` (module doc)."""
    check_loss(loss)
    classify = loss == "cross_entropy"
    data_loss = softmax_cross_entropy if classify else mean_squared_error

    def train_loss(params, key):
        x, y = gather(key, "train", batch_size)
        value = data_loss(apply(params, x), y)
        if l2 == 0.0:
            return value
        sq_norm = sum(jnp.sum(p**2) for p in jax.tree.leaves(params))
        return value + 0.5 * l2 * sq_norm

    def metrics(params, key, split="test"):
        x, y = gather(key, split, eval_batch_size)
        outputs = apply(params, x)
        out = {"loss": data_loss(outputs, y)}
        if classify:
            out["accuracy"] = jnp.mean((jnp.argmax(outputs, -1) == y).astype(jnp.float32))
        return out

    def eval_loss(params, key, split="test"):
        return metrics(params, key, split)["loss"]

    return Task(name=name, init=init, loss=train_loss, eval_loss=eval_loss, metrics=metrics)
