"""Coordinatewise LSTM learned optimizer (Andrychowicz et al. 2016).

One LSTM, shared by every scalar coordinate, with a hidden and cell state per coordinate.
All N coordinates (every leaf, concatenated) run as one batch, so each layer is a single
(N, in + H) x (in + H, 4H) matmul. Per step:

    x   = preprocess(g)                          (N, 2): (log|g|/p, sign g) if |g| >= e^-p
                                                          else (-1, e^p g)
          [+ preprocess(m), m <- b m + (1-b) g]  with momentum_decay=b   (N, 2 more)
    z_l = [x_l, h_l] W_l + b_l [+ u W_l^u]       gates i, f, g, o;  x_1 = x, x_{l+1} = h_l
    c_l <- sigmoid(f) c_l + sigmoid(i) tanh(g);  h_l <- sigmoid(o) tanh(c_l)
    update = output_scale * (h_L w_out + b_out)

With ``use_loss=True`` a global input u = clip(log(loss), -25, 25) / 10 (the same for
every coordinate) is added; its contribution W^u u is folded into the first layer's bias.
``progress_scales`` (e.g. ``(1, 3, 10, 30)``; empty by default) adds the training-progress
inputs tanh(s t / T) shared by every coordinate, folded into the bias the same way.

Nominal term (``nominal_lr`` set; Harrison et al. 2022, as in `l2o.mlp`): the LSTM then
modulates a stable Adam step instead of producing the whole update. With Adam's
accumulators m, v (decays 0.9, 0.999; bias-corrected m_hat, v_hat) and a second output
head a = h_L w_lr + b_lr (zero at init)::

    update = -exp(log_lr + a) * m_hat / (sqrt(v_hat) + 1e-8) + output_scale * (h_L w_out + b_out)

``log_lr`` is a meta-parameter initialised to log(nominal_lr); ``lr_adapt`` adapts each
tensor's nominal learning rate within a run as in `l2o.mlp` (`l2o.hypergradient`). ``fan_in_scaling``
("none", "inverse_sqrt", "inverse"; muLO) multiplies each tensor's whole update by
``fan_in^-1/2`` or ``fan_in^-1`` (`l2o.features.fan_in`). Without the nominal term the
state's ``adam_m``/``adam_v`` are None, and the update is the LSTM's output alone;
then, because |h| < 1, the update is bounded by output_scale * (|w_out|_1 + |b_out|). On CPU the
rows run in blocks of ``chunk_size`` (see `l2o.flat.map_rows`), so the (rows, 4H) gate
activations stay in cache; state is stored coordinate-major, (N, L, H).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
from flax import struct

from l2o import features as F
from l2o import flat
from l2o import hypergradient as HG
from l2o.base import LearnedOptimizer
from l2o.validation import check_chunk_size, check_num_steps, check_update_inputs


def _sigmoid(x: jax.Array) -> jax.Array:
    """Logistic function as 0.5 tanh(x/2) + 0.5: one transcendental, cheaper on CPU."""
    return 0.5 * jnp.tanh(0.5 * x) + 0.5


@struct.dataclass
class LSTMOptState:
    """State of `LSTMOptimizer`: L layers, N coordinates, H hidden units.

    Attributes:
      step: int32 scalar, steps taken so far.
      num_steps: int32 scalar, training horizon (kept for a uniform interface).
      hidden: (N, L, H) float32 hidden states.
      cell: (N, L, H) float32 cell states.
      momentum: (N,) float32 gradient momentum (zeros unless momentum_decay is set).
      adam_m, adam_v: (N,) float32 accumulators of the nominal Adam term (None without it).
      lr_offsets: with ``lr_adapt``, (num_tensors,) float32 log learning-rate offsets of
        the nominal term (`l2o.hypergradient`); None otherwise.
    """

    step: jax.Array
    num_steps: jax.Array
    hidden: jax.Array
    cell: jax.Array
    momentum: jax.Array
    adam_m: jax.Array = None
    adam_v: jax.Array = None
    lr_offsets: jax.Array = None


@dataclasses.dataclass(frozen=True, repr=False)
class LSTMOptimizer(LearnedOptimizer):
    """Coordinatewise LSTM optimizer; frozen, hashable static config (see module doc)."""

    hidden_size: int = 20
    num_layers: int = 2
    preprocess_p: float = 10.0
    output_scale: float = 0.1
    momentum_decay: float | None = None
    use_loss: bool = False
    forget_bias: float = 1.0
    chunk_size: int | None = None
    progress_scales: tuple[float, ...] = ()
    nominal_lr: float | None = None
    fan_in_scaling: str = "none"
    lr_adapt: float = 0.0

    name: ClassVar[str] = "lstm"
    NOMINAL_BETAS: ClassVar[tuple[float, float]] = (0.9, 0.999)
    NOMINAL_EPS: ClassVar[float] = 1e-8
    EXP_LIMIT: ClassVar[float] = 20.0

    def __post_init__(self):
        if int(self.hidden_size) != self.hidden_size or self.hidden_size < 1:
            raise ValueError(f"hidden_size must be a positive integer; got {self.hidden_size!r}.")
        if int(self.num_layers) != self.num_layers or self.num_layers < 1:
            raise ValueError(f"num_layers must be a positive integer; got {self.num_layers!r}.")
        if not self.preprocess_p > 0:
            raise ValueError(f"preprocess_p must be > 0; got {self.preprocess_p!r}.")
        check_chunk_size(self.chunk_size)
        if self.momentum_decay is not None and not 0.0 <= self.momentum_decay < 1.0:
            raise ValueError(
                f"momentum_decay must be None or in [0, 1); got {self.momentum_decay!r}."
            )
        object.__setattr__(self, "progress_scales", tuple(float(s) for s in self.progress_scales))
        if any(not s > 0 for s in self.progress_scales):
            raise ValueError(f"progress_scales must be positive; got {self.progress_scales!r}.")
        if self.nominal_lr is not None and not self.nominal_lr > 0:
            raise ValueError(f"nominal_lr must be None or > 0; got {self.nominal_lr!r}.")
        F.check_fan_in_scaling(self.fan_in_scaling)
        HG.check_rate(self.lr_adapt, self.nominal_lr is not None)

    @property
    def uses_loss(self) -> bool:
        """Whether `update` reads its ``loss`` argument."""
        return bool(self.use_loss)

    @property
    def num_inputs(self) -> int:
        """Per-coordinate inputs of the first layer."""
        return 2 if self.momentum_decay is None else 4

    def feature_names(self) -> list[str]:
        """Names of the LSTM inputs, in column order (global inputs last)."""
        names = ["log|g|/p or -1", "sign(g) or e^p g"]
        if self.momentum_decay is not None:
            names += [f"log|m_{self.momentum_decay}|/p or -1", f"sign(m_{self.momentum_decay}) or e^p m"]
        if self.use_loss:
            names.append("log(loss)/10")
        names += [f"tanh({s:g} t/T)" for s in self.progress_scales]
        return names

    def init_meta_params(self, key: jax.Array) -> dict:
        """theta = {"layer_l": {"w": (in_l + H, 4H), "b": (4H,)[, "w_global": (1, 4H)]},
        "output": {"w": (H,), "b": ()}}; uniform(+-1/sqrt(H)) weights, forget-gate bias
        ``forget_bias`` (gate order i, f, g, o). ``progress_scales`` add
        ``layer_0.w_progress`` (S, 4H); the nominal term adds ``log_lr`` () and the zero
        head ``lr_head`` {"w": (H,), "b": ()}."""
        hidden = self.hidden_size
        bound = 1.0 / math.sqrt(hidden)
        keys = jax.random.split(key, self.num_layers + 2)
        theta = {}
        for layer in range(self.num_layers):
            fan_in = (self.num_inputs if layer == 0 else hidden) + hidden
            bias = jnp.zeros((4 * hidden,), jnp.float32).at[hidden : 2 * hidden].set(self.forget_bias)
            theta[f"layer_{layer}"] = {
                "w": jax.random.uniform(keys[layer], (fan_in, 4 * hidden), jnp.float32, -bound, bound),
                "b": bias,
            }
        if self.use_loss:
            theta["layer_0"]["w_global"] = jax.random.uniform(
                keys[-2], (1, 4 * hidden), jnp.float32, -bound, bound
            )
        if self.progress_scales:
            theta["layer_0"]["w_progress"] = jax.random.uniform(
                jax.random.fold_in(keys[-2], 1), (len(self.progress_scales), 4 * hidden),
                jnp.float32, -bound, bound)
        theta["output"] = {
            "w": jax.random.uniform(keys[-1], (hidden,), jnp.float32, -bound, bound),
            "b": jnp.zeros((), jnp.float32),
        }
        if self.nominal_lr is not None:
            theta["log_lr"] = jnp.asarray(math.log(self.nominal_lr), jnp.float32)
            theta["lr_head"] = {"w": jnp.zeros((hidden,), jnp.float32),
                                "b": jnp.zeros((), jnp.float32)}
        return theta

    def init(self, theta: dict, params: Any, num_steps: int | jax.Array) -> LSTMOptState:
        """Zero hidden/cell states, one row per coordinate of ``params``."""
        del theta
        check_num_steps(num_steps, "LSTMOptimizer.init")
        layout = flat.tree_layout(params)
        n = layout.num_coordinates
        zeros = jnp.zeros((n, self.num_layers, self.hidden_size), jnp.float32)
        # None without the nominal term: no extra leaves, the plain LSTM's state as before.
        adam = jnp.zeros((n,), jnp.float32) if self.nominal_lr is not None else None
        return LSTMOptState(
            step=jnp.zeros((), jnp.int32),
            num_steps=jnp.asarray(num_steps, jnp.int32),
            hidden=zeros,
            cell=zeros,
            momentum=jnp.zeros((n,), jnp.float32),
            adam_m=adam,
            adam_v=adam,
            lr_offsets=(jnp.zeros((len(layout.sizes),), jnp.float32) if self.lr_adapt else None),
        )

    def update(
        self, theta: dict, grads: Any, state: LSTMOptState, params: Any, loss: jax.Array = None
    ) -> tuple[Any, LSTMOptState]:
        """One LSTM step over all coordinates (see module doc); updates in params' dtypes.

        ``params`` only fixes the output structure/dtypes; ``loss`` is read only when
        ``use_loss`` is set.
        """
        layout = flat.tree_layout(params)
        check_update_inputs(self.name, grads, layout, state.hidden.shape[0])
        g = F.sanitize(flat.flatten(grads), F.GRAD_LIMIT)
        x = F.lstm_preprocess(g, self.preprocess_p)
        momentum = state.momentum
        if self.momentum_decay is not None:
            momentum = self.momentum_decay * momentum + (1.0 - self.momentum_decay) * g
            x = jnp.concatenate([x, F.lstm_preprocess(momentum, self.preprocess_p)], axis=1)

        biases = [theta[f"layer_{layer}"]["b"] for layer in range(self.num_layers)]
        if self.use_loss:
            if loss is None:
                raise ValueError(
                    f"{self!r} uses the loss as an input (use_loss=True) but update got "
                    "loss=None; pass the current scalar loss: update(theta, grads, state, "
                    "params, loss), or value=loss to its optax transform."
                )
            log_loss = jnp.log(jnp.maximum(jnp.asarray(loss, jnp.float32), 1e-30))
            global_input = F.sanitize(jnp.clip(log_loss, -25.0, 25.0) / 10.0, 3.0)
            biases[0] = biases[0] + global_input * theta["layer_0"]["w_global"][0]
        if self.progress_scales:
            progress = F.progress_features(state.step, state.num_steps, self.progress_scales)
            biases[0] = biases[0] + progress @ theta["layer_0"]["w_progress"]
        nominal = self.nominal_lr is not None

        def rows(x, hidden, cell):
            """LSTM stack on a block of rows: x (R, in), hidden/cell (R, L, H)."""
            new_hidden, new_cell = [], []
            for layer in range(self.num_layers):
                z = jnp.concatenate([x, hidden[:, layer]], axis=1) @ theta[f"layer_{layer}"]["w"]
                i, f, c_in, o = jnp.split(z + biases[layer], 4, axis=1)
                c = _sigmoid(f) * cell[:, layer] + _sigmoid(i) * jnp.tanh(c_in)
                x = _sigmoid(o) * jnp.tanh(c)
                new_hidden.append(x)
                new_cell.append(c)
            out = self.output_scale * (x @ theta["output"]["w"] + theta["output"]["b"])
            if nominal:  # second head: log-lr modulation of the nominal Adam step
                out = jnp.stack([out, x @ theta["lr_head"]["w"] + theta["lr_head"]["b"]], 1)
            return jnp.nan_to_num(out), jnp.stack(new_hidden, 1), jnp.stack(new_cell, 1)

        chunk_size = flat.resolve_chunk_size(self.chunk_size)
        out, hidden, cell = flat.map_rows(rows, x, state.hidden, state.cell, chunk_size=chunk_size)
        adam_m, adam_v, lr_offsets = state.adam_m, state.adam_v, state.lr_offsets
        if nominal:
            out, adam_m, adam_v, lr_offsets = self._nominal(theta, state, g, out[:, 0], out[:, 1],
                                                            tuple(layout.sizes))
        updates = flat.unflatten(out, layout)
        if self.fan_in_scaling != "none":
            updates = jax.tree.map(
                lambda u: (u * F.fan_in_multiplier(u.shape, self.fan_in_scaling)).astype(u.dtype),
                updates)
        new_state = LSTMOptState(state.step + 1, state.num_steps, hidden, cell, momentum,
                                 adam_m, adam_v, lr_offsets)
        return updates, new_state

    def _nominal(self, theta: dict, state: LSTMOptState, g: jax.Array, learned: jax.Array,
                 log_lr_mod: jax.Array, sizes: tuple[int, ...]) -> tuple[jax.Array, ...]:
        """``(update, adam_m, adam_v, lr_offsets)``: the learned term plus the modulated
        Adam step (times each tensor's exp(offset) with ``lr_adapt``)."""
        b1, b2 = self.NOMINAL_BETAS
        t = (state.step + 1).astype(jnp.float32)
        offsets, multiplier = state.lr_offsets, None
        if self.lr_adapt:
            if offsets is None:
                raise ValueError(f"the state has no lr_offsets but {self!r} adapts its learning "
                                 "rate (lr_adapt); make the state with this optimizer's init.")
            previous = F.adam_direction(state.adam_m, state.adam_v, jnp.maximum(t - 1.0, 1.0),
                                        b1, b2, self.NOMINAL_EPS)
            offsets, multiplier = HG.adapt_flat(offsets, g, previous, sizes, self.lr_adapt)
        adam_m = b1 * state.adam_m + (1.0 - b1) * g
        adam_v = b2 * state.adam_v + (1.0 - b2) * jnp.square(g)
        log_lr = jnp.clip(theta["log_lr"] + log_lr_mod, -self.EXP_LIMIT, self.EXP_LIMIT)
        step = jnp.exp(log_lr) * F.adam_direction(adam_m, adam_v, t, b1, b2, self.NOMINAL_EPS)
        if multiplier is not None:
            step = step * multiplier
        return jnp.nan_to_num(learned - step), adam_m, adam_v, offsets
