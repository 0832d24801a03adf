"""`GuardedOptimizer`: a learned optimizer and its loss guard, as one `LearnedOptimizer`.

The guard's rule, its state and the optax form (`loss_guarded`) are in `l2o.guard`; this
is the same guard with the `LearnedOptimizer` interface, so the guard can sit inside the
meta-training loop: ``theta`` is the learned optimizer's, the state a `GuardState`, and
``update`` needs ``next_loss_fn`` (``needs_next_loss_fn`` tells the inner loop to pass it)::

    guarded = GuardedOptimizer(l2o.MLPOptimizer(), OptaxSpec("sgd", learning_rate=0.1))
    theta = guarded.init_meta_params(key)          # the MLP optimizer's theta
    l2o.save("runs/g/theta", guarded, theta)       # l2o.load gives the guarded one back

With the fallback given as an `OptaxSpec` (or its dict form) the optimizer is plain data:
it is saved by `l2o.save`, equal configs give equal (hashable) optimizers, and it is
registered as ``"guarded"``, so meta-training takes it from a config::

    l2o meta-train --lopt guarded --set lopt_config.learned=mlp \
        --set 'lopt_config.fallback={"name": "sgd", "learning_rate": 0.1}'

A fallback given as a transform object (``optax.sgd(0.1)``) works everywhere except in
files.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, ClassVar

import jax
import jax.numpy as jnp
import optax

from l2o.base import LearnedOptimizer
from l2o.guard import (
    DEFAULT_ALONE_RUN, DEFAULT_SETTINGS, check_alone_run, check_settings, check_transform,
    guarded_update, loss_guarded,
    resolve_next_loss_fn,
)
from l2o.guard_state import GuardState, init_guard_state
from l2o.optax_spec import OptaxSpec

Params = Any


@dataclasses.dataclass(frozen=True, repr=False)
class GuardedOptimizer(LearnedOptimizer):
    """A `LearnedOptimizer` plus its LGL2O guard, itself a `LearnedOptimizer`.

    Attributes:
      learned: the guarded learned optimizer (e.g. ``l2o.MLPOptimizer()``).
      fallback: the optimizer taking over when it predicts a lower loss: an `OptaxSpec`
        (a dict ``{"name": "adam", "learning_rate": 1e-3}`` is converted to one) or an
        optax transform object (not saveable).
      shadow: run the learned optimizer and the fallback alone side by side and follow
        the one ahead (`l2o.guard_paired`); ``False``: the per-step rule (`l2o.guard`).
      smoothing, switch_gap, reset_gap: the paired runs' constants (`loss_guarded`).
      alone_run: with ``shadow``, a third run of the learned optimizer alone, followed
        when it leads (`loss_guarded`).
    """

    learned: LearnedOptimizer
    fallback: OptaxSpec | optax.GradientTransformation = OptaxSpec("adam", learning_rate=1e-3)
    shadow: bool = True
    smoothing: float = DEFAULT_SETTINGS["smoothing"]
    switch_gap: float = DEFAULT_SETTINGS["switch_gap"]
    reset_gap: float = DEFAULT_SETTINGS["reset_gap"]
    alone_run: bool = DEFAULT_ALONE_RUN

    needs_next_loss_fn: ClassVar[bool] = True

    def __post_init__(self):
        if not isinstance(self.learned, LearnedOptimizer):
            raise TypeError(
                "GuardedOptimizer: learned must be a LearnedOptimizer (subclass of "
                f"l2o.LearnedOptimizer); got {type(self.learned).__name__}. To guard a "
                "plain optax transform use loss_guarded(tx, fallback)."
            )
        if isinstance(self.fallback, dict):
            object.__setattr__(self, "fallback", OptaxSpec.from_dict(self.fallback))
        if not isinstance(self.fallback, OptaxSpec):
            check_transform(self.fallback, "fallback")
        check_settings(self.smoothing, self.switch_gap, self.reset_gap)
        check_alone_run(self.alone_run)

    @property
    def fallback_transform(self) -> optax.GradientTransformation:
        """The fallback as an optax transform (built from its spec when it has one)."""
        if isinstance(self.fallback, OptaxSpec):
            return self.fallback.build()
        return self.fallback

    def to_config(self) -> dict:
        """JSON config: the learned optimizer's registry description, the fallback's spec."""
        from l2o import registry

        if not isinstance(self.fallback, OptaxSpec):
            raise TypeError(
                f"{self.name}: the fallback is an optax transform object, which cannot be "
                "written to a file; give it as a spec, e.g. GuardedOptimizer(lopt, "
                "OptaxSpec('adam', learning_rate=1e-3)) or fallback={'name': 'adam', "
                "'learning_rate': 1e-3}."
            )
        return {"learned": registry.to_dict(self.learned), "fallback": self.fallback.to_dict(),
                "shadow": self.shadow, "alone_run": self.alone_run, **self._settings()}

    def _settings(self) -> dict[str, float]:
        return check_settings(self.smoothing, self.switch_gap, self.reset_gap)

    @classmethod
    def from_config(cls, config: dict) -> "GuardedOptimizer":
        """Inverse of `to_config`; ``learned`` may be a registry name (default ``"mlp"``)."""
        from l2o import registry

        config = dict(config)
        learned = config.pop("learned", "mlp")
        if not isinstance(learned, LearnedOptimizer):
            learned = registry.from_dict(learned)
        return super().from_config({"learned": learned, **config})

    @property
    def name(self) -> str:
        """``"guarded-" + learned.name``."""
        return f"guarded-{self.learned.name}"

    @property
    def uses_loss(self) -> bool:
        """Whether ``update`` needs the current loss (as the learned optimizer does)."""
        return self.learned.uses_loss

    def feature_names(self) -> list[str]:
        """The learned optimizer's inputs (the guard adds none)."""
        return self.learned.feature_names()

    def init_meta_params(self, key: jax.Array) -> Any:
        """The learned optimizer's fresh ``theta`` (the guard has no meta-parameters)."""
        return self.learned.init_meta_params(key)

    def init(self, theta: Any, params: Params, num_steps: int | jax.Array) -> GuardState:
        """`GuardState` with the learned state for ``num_steps`` and a fresh fallback state."""
        learned_state = self.learned.init(theta, params, num_steps)
        fallback_state = optax.with_extra_args_support(self.fallback_transform).init(params)
        return init_guard_state(learned_state, fallback_state,
                                params if self.shadow else None, self.alone_run)

    def update(
        self,
        theta: Any,
        grads: Params,
        state: GuardState,
        params: Params,
        loss: jax.Array | None = None,
        next_loss_fn: Callable[[Params], jax.Array] | None = None,
        *,
        value_fn: Callable[[Params], jax.Array] | None = None,
    ) -> tuple[Params, GuardState]:
        """One guarded step (`l2o.guard.guarded_update`); ``next_loss_fn`` is required.

        ``loss`` (scalar, the loss at ``params``) goes to the learned optimizer and, as
        ``value``, to the fallback (with paired runs each gets the loss at its own point).
        ``value_fn`` is the deprecated name of ``next_loss_fn``.
        """
        next_loss_fn = resolve_next_loss_fn(next_loss_fn, value_fn, f"{self.name}.update")
        loss = jnp.zeros((), jnp.float32) if loss is None else jnp.asarray(loss, jnp.float32)
        fallback = optax.with_extra_args_support(self.fallback_transform)

        def learned_update(g, s, p, at_loss):
            return self.learned.update(theta, g, s, p, at_loss)

        def fallback_update(g, s, p, at_loss):
            return fallback.update(g, s, p, value=at_loss)

        return guarded_update(learned_update, fallback_update, grads, state, params, loss,
                              next_loss_fn, self._settings())

    def as_optax(self, theta: Any, num_steps: int | None = None) -> optax.GradientTransformationExtraArgs:
        """``loss_guarded(learned.as_optax(theta, num_steps), fallback, ...)``, same settings."""
        return loss_guarded(self.learned.as_optax(theta, num_steps), self.fallback_transform,
                            shadow=self.shadow, alone_run=self.alone_run, **self._settings())
