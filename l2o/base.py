"""`LearnedOptimizer`: the contract every learned optimizer in l2o fulfils.

A learned optimizer is a pair of pure functions parameterised by meta-parameters
``theta`` (a pytree): ``init(theta, params, num_steps) -> state`` and
``update(theta, grads, state, params, loss) -> (updates, state)``. Both are jittable
and vmappable over ``theta`` (a population) and over tasks. ``num_steps`` is the
training horizon the optimizer is told about (for its progress features).

Subclasses are frozen dataclasses (hashable static config, ``repr=False``) and implement
`init_meta_params`, `init`, `update` and `feature_names`; they declare what `update`
reads with `uses_loss` and `needs_next_loss_fn`. Description (``repr``, `summary`,
`num_meta_params`), the config as JSON (`to_config` / `from_config`), validation of
``theta`` and the optax form live here, once.

``as_optax(theta, num_steps)`` turns one (learned optimizer, theta) pair into an
``optax.GradientTransformationExtraArgs``; the current loss is passed as the keyword
extra argument ``value`` (optax's convention)::

    tx = lopt.as_optax(theta, num_steps=1000)
    state = tx.init(params)
    updates, state = tx.update(grads, state, params, value=loss)
    params = optax.apply_updates(params, updates)

Extra keyword arguments that an optimizer does not use (e.g. ``next_loss_fn``, which the
loss guard needs) are accepted and ignored, so a training loop may pass the same
extra args to every optimizer.
"""

from __future__ import annotations

import abc
import dataclasses
import warnings
from typing import Any, ClassVar

import jax

from l2o.flat import count_params
from l2o.optax_adapter import as_optax
from l2o.validation import check_meta_params

Params = Any
MetaParams = Any
OptState = Any


class LearnedOptimizer(abc.ABC):
    """Base class of every learned optimizer (LSTM, MLP, the guarded wrapper).

    Attributes:
      name: label of the optimizer (for the plain architectures, its registry name).
      needs_next_loss_fn: whether `update` takes ``next_loss_fn``, the loss of candidate
        params on the next step's minibatch (the loss guard does); the meta-training
        inner loop passes it exactly when this is set.
    """

    name: ClassVar[str]
    needs_next_loss_fn: ClassVar[bool] = False

    # ------------------------------------------------------------- to implement
    @abc.abstractmethod
    def init_meta_params(self, key: jax.Array) -> MetaParams:
        """Fresh meta-parameters ``theta``."""

    @abc.abstractmethod
    def init(self, theta: MetaParams, params: Params, num_steps: int | jax.Array) -> OptState:
        """Optimizer state for ``params`` over a horizon of ``num_steps`` steps."""

    @abc.abstractmethod
    def update(
        self, theta: MetaParams, grads: Params, state: OptState, params: Params,
        loss: jax.Array | None = None,
    ) -> tuple[Params, OptState]:
        """Updates (same pytree as ``params``; add them) and the next state."""

    @abc.abstractmethod
    def feature_names(self) -> list[str]:
        """Names of the inputs of the optimizer's network, in column order."""

    @property
    def uses_loss(self) -> bool:
        """Whether `update` reads its ``loss`` argument (then the optax form needs ``value``)."""
        return False

    # ------------------------------------------------------------- shared
    @property
    def needs_value_fn(self) -> bool:
        """Deprecated name of `needs_next_loss_fn`."""
        warnings.warn("needs_value_fn is deprecated; read needs_next_loss_fn.",
                      DeprecationWarning, stacklevel=2)
        return self.needs_next_loss_fn

    def to_config(self) -> dict:
        """The config as a JSON-able dict: ``type(self).from_config(d) == self``."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_config(cls, config: dict) -> "LearnedOptimizer":
        """Inverse of `to_config`; unknown keys raise ``TypeError`` listing the valid ones."""
        valid = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(config) - set(valid))
        if unknown:
            raise TypeError(
                f"{cls.__name__} has no config field(s) {unknown}; valid: {valid}.")
        return cls(**config)

    def num_meta_params(self) -> int:
        """Number of scalar meta-parameters (shape inference only, no compute)."""
        return count_params(jax.eval_shape(self.init_meta_params, jax.random.key(0)))

    def check_meta_params(self, theta: MetaParams) -> None:
        """Raise unless ``theta`` has the structure and shapes of `init_meta_params`."""
        check_meta_params(self, theta)

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self._description().items())
        return f"{type(self).__name__}({fields}, num_meta_params={self.num_meta_params()})"

    def summary(self) -> str:
        """Multi-line description: architecture, every config field, input features, size."""
        lines = [f"{type(self).__name__} (name {self.name!r})"]
        lines += [f"  {k}: {v!r}" for k, v in self._description().items()]
        lines.append("  features: " + ", ".join(self.feature_names()))
        lines.append(f"  meta-parameters: {self.num_meta_params():,}")
        return "\n".join(lines)

    def _description(self) -> dict:
        """Field name -> value shown by ``repr`` and `summary`."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def as_optax(self, theta: MetaParams, num_steps: int | None = None):
        """This optimizer with fixed ``theta`` as an optax transform taking ``value=``.

        ``num_steps`` (the training horizon of the progress features) is required; see
        `l2o.as_optax`.
        """
        return as_optax(self, theta, num_steps)
