"""Per-parameter MLP learned optimizer (Metz et al. 2022 small_fc_lopt style).

One small MLP, shared by every scalar coordinate, maps per-coordinate features to a step.
Per step, for the gradient g and parameters p of each tensor (leaf) of N coordinates:

    m_k <- b_k m_k + (1 - b_k) g              for each decay b_k in momentum_decays (K of them)
    v   <- b2 v + (1 - b2) g^2                second moment, b2 = second_moment_decay
    x    = [g, p, m_1..m_K, m_1/(sqrt(v)+eps) .. m_K/(sqrt(v)+eps)]      (N, 2 + 2K)
    x    = x / rms(x)                         per column, over each tensor (or over all tensors)
    s    = tanh(scale * t / T) for each progress scale                  (S,) shared by all
    [d, m, l] = MLP([x, s])                   relu hidden layers, (N, 3)

    update = -(exp(log_lr + l) * m_hat / (sqrt(v_hat) + eps)     # nominal Adam term
               + step_mult * d * exp(exp_mult * m)               # learned term
               + weight_decay * base_lr * p)

Options: ``normalize_update=True`` (Celo2) replaces the learned term of each tensor by
``step_mult * u / sqrt(mean_tensor(u^2) + 1e-12)`` with ``u = d * exp(exp_mult * m)``, so
it has RMS ``step_mult`` in every tensor whatever the network outputs; ``fan_in_scaling``
("none", "inverse_sqrt", "inverse"; muLO's muP-style scaling) multiplies the whole update
of a tensor (learned, nominal and weight-decay terms) by ``fan_in^-1/2`` or ``fan_in^-1``
(`fan_in`: product of all but the last axis of a >= 2-d tensor, 1 for vectors). The small
configs 2x8 and 2x16 are named in `PRESETS` (``l2o.registry.get("mlp-2x8")``).
``lr_adapt`` (a rate, 0 = off) multiplies the nominal term's learning rate of each tensor
by exp(s), with s moved every step by ``lr_adapt`` times the cosine between the new
gradient and the previous nominal direction (`l2o.hypergradient`): the step size of each
tensor adapts within a run, so one meta-learned ``log_lr`` need not suit every problem.
``loss_decays`` (e.g. ``(0.5, 0.9, 0.99)``; empty by default) adds loss features shared by
every coordinate, like the progress features (Celo / VeLO read the loss to set their own
step size): with l = log(loss), for each decay c the EMA e_c <- c e_c + (1 - c) l (started
at the first loss l_0), the features tanh(l - e_c) (recent rise or fall of the loss) and
tanh((l - l_0) / 5) (progress since the start). They are scale-free in the loss, and
``update`` then needs its ``loss`` argument (``uses_loss``; ``value=loss`` in optax form).

m_hat, v_hat are the bias-corrected momentum of decay ``nominal_beta1`` and v (Adam's
formula); ``log_lr`` is a meta-parameter initialised to log(nominal_lr); base_lr is
exp(log_lr) (or step_mult without the nominal term). The nominal term follows Harrison et
al. (2022): the network only modulates a stable base step. The last layer starts near zero,
so an untrained optimizer is Adam with learning rate ``nominal_lr`` (plus, with
``normalize_update``, a learned term of RMS ``step_mult``). The progress features
are the same for every coordinate, so their contribution to the first layer is folded into
its bias (one (S,) x (S, H) product per step, not N of them).

Cost: everything runs leaf by leaf on the leaves themselves (no flat (N,) vector, no
gather of per-tensor scales): the accumulators are updated elementwise, each leaf's
feature statistics are one reduction over it, and its features, MLP and output heads
run feature-major, W^T x with the coordinate axis last (faster CPU matmuls than x W;
same sums). Leaves larger than ``2 * chunk_size`` coordinates (default 16384 on CPU, see
`l2o.flat.map_rows`) run block by block, so their normalised (F, n) features and (32, n)
activations stay in cache; on accelerators (``chunk_size=None``) each leaf is one pass.
Small networks (every hidden layer at most `UNROLL_MAX_WIDTH` units, e.g. 2x8) are
instead written out as elementwise multiply-adds with the weights as scalars: XLA fuses a
leaf's whole network into one loop over its coordinates, with no (H, n) activation in
memory and no small-contraction matmul (about half the time of the matmul form for 2x8 and
2x16 on CPU; `benchmarks/results/engine.md`). Same sums in another order: float32 rounding.
``unroll`` (None: automatic as above) forces either form. 2x16 is not unrolled by default:
its hundreds of multiply-adds per leaf are hard on XLA's compiler (the unrolled 2x16 on
the 13-group mixture had not compiled after 30 minutes, and the held-out suite's training
loop with the 2x16 generalist ran out of memory compiling, over 12 GB, where the matmul
form took 0.7 GB). The meta-parameters are the same in both forms.
That path keeps each leaf in its own shape (so the new accumulators can overwrite a
donated state in place) and takes the feature statistics as batched dot products
(`l2o.features.row_sums_of_squares`), which XLA's CPU backend runs without materialising
the feature rows one by one: half the bytes moved per step of the per-row reductions.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
from flax import struct

from l2o import features as F
from l2o.features import FAN_IN_SCALINGS, fan_in  # noqa: F401  (re-exported)
from l2o import flat
from l2o import hypergradient as HG
from l2o.base import LearnedOptimizer
from l2o.validation import check_chunk_size, check_num_steps, check_update_inputs

FEATURE_LIMIT = 100.0  # clip of normalised features
EXP_LIMIT = 20.0  # clip of every exponent (step multipliers stay below e^20)
CPU_CHUNK = 16384  # coordinates per block on CPU (chunk_size=None)
UNROLL_MAX_WIDTH = 8  # networks no wider than this run as unrolled elementwise ops
UPDATE_RMS_EPS = 1e-12  # under the square root of the learned term's per-tensor mean square
# Named small configs (first-class, e.g. ``registry.get("mlp-2x8")``).
PRESETS = {"mlp-2x8": {"hidden_sizes": (8, 8)}, "mlp-2x16": {"hidden_sizes": (16, 16)},
           "mlp-2x32": {"hidden_sizes": (32, 32)}}


@struct.dataclass
class MLPOptState:
    """State of `MLPOptimizer`: K is the number of momentum decays.

    Attributes:
      step: int32 scalar, steps taken so far.
      num_steps: int32 scalar, training horizon T for the progress features.
      momenta: pytree like params, each leaf float32 ``(K, *leaf.shape)``: one momentum
        accumulator per decay.
      second_moment: pytree like params, float32 leaves of the params' shapes: the
        accumulator of g^2.
      loss_stats: with ``loss_decays``, float32 ``(len(loss_decays) + 1,)``: the EMAs of
        log(loss), then the first log(loss); None otherwise.
      lr_offsets: with ``lr_adapt``, pytree like params of float32 scalars: each tensor's
        log learning-rate offset (`l2o.hypergradient`); None otherwise.
    """

    step: jax.Array
    num_steps: jax.Array
    momenta: Any
    second_moment: Any
    loss_stats: Any = None
    lr_offsets: Any = None


def _check_decays(name: str, decays: tuple[float, ...]) -> None:
    if not decays or any(not (0.0 <= float(b) < 1.0) for b in decays):
        raise ValueError(f"{name} must be a non-empty tuple of decays in [0, 1); got {decays!r}.")


@dataclasses.dataclass(frozen=True, repr=False)
class MLPOptimizer(LearnedOptimizer):
    """Per-parameter MLP optimizer; frozen, hashable static config (see module doc)."""

    hidden_sizes: tuple[int, ...] = (32, 32)
    momentum_decays: tuple[float, ...] = (0.1, 0.5, 0.9, 0.99, 0.999)
    second_moment_decay: float = 0.999
    progress_scales: tuple[float, ...] = (1.0, 3.0, 10.0, 30.0, 100.0)
    step_mult: float = 1e-3
    exp_mult: float = 1e-3
    nominal: bool = True
    nominal_lr: float = 1e-2
    nominal_beta1: float = 0.9
    eps: float = 1e-8
    normalize_over: str = "tensor"
    weight_decay: float = 0.0
    output_init_scale: float = 1e-3
    chunk_size: int | None = None
    normalize_update: bool = False
    fan_in_scaling: str = "none"
    loss_decays: tuple[float, ...] = ()
    unroll: bool | None = None
    lr_adapt: float = 0.0

    name: ClassVar[str] = "mlp"

    def __post_init__(self):
        for field in ("hidden_sizes", "momentum_decays", "progress_scales", "loss_decays"):
            object.__setattr__(self, field, tuple(getattr(self, field)))
        if any(int(h) != h or h < 1 for h in self.hidden_sizes):
            raise ValueError(f"hidden_sizes must be positive integers; got {self.hidden_sizes!r}.")
        _check_decays("momentum_decays", self.momentum_decays)
        _check_decays("second_moment_decay", (self.second_moment_decay,))
        if self.loss_decays:
            _check_decays("loss_decays", self.loss_decays)
        if self.nominal and self.nominal_beta1 not in self.momentum_decays:
            raise ValueError(
                f"nominal_beta1={self.nominal_beta1} is not among momentum_decays="
                f"{self.momentum_decays}; add it there (the nominal Adam term reuses that "
                "momentum) or set nominal=False."
            )
        if self.nominal and not self.nominal_lr > 0:
            raise ValueError(f"nominal_lr must be > 0; got {self.nominal_lr}.")
        HG.check_rate(self.lr_adapt, self.nominal)
        check_chunk_size(self.chunk_size)
        F.check_fan_in_scaling(self.fan_in_scaling)
        if self.unroll not in (None, True, False):
            raise ValueError(f"unroll must be None (automatic), True or False; got {self.unroll!r}.")
        if self.normalize_over not in ("tensor", "all"):
            raise ValueError(
                f"normalize_over must be 'tensor' or 'all'; got {self.normalize_over!r}."
            )

    # ----------------------------------------------------------------- description
    @property
    def num_features(self) -> int:
        """Per-coordinate input features (before the shared progress features)."""
        return 2 + 2 * len(self.momentum_decays)

    @property
    def num_shared_features(self) -> int:
        """Features shared by every coordinate: progress, then loss features."""
        return len(self.progress_scales) + (len(self.loss_decays) + 1 if self.loss_decays else 0)

    @property
    def uses_loss(self) -> bool:
        """Whether `update` reads its ``loss`` argument (with ``loss_decays``)."""
        return bool(self.loss_decays)

    @property
    def unrolled(self) -> bool:
        """Whether the network runs as unrolled elementwise ops (see module doc): ``unroll``
        if set, else whether every hidden layer has at most `UNROLL_MAX_WIDTH` units."""
        if self.unroll is not None:
            return self.unroll
        return max(self.hidden_sizes) <= UNROLL_MAX_WIDTH

    @property
    def num_outputs(self) -> int:
        """Output heads: direction, log-magnitude and (with the nominal term) log-lr."""
        return 3 if self.nominal else 2

    def feature_names(self) -> list[str]:
        """Names of the network inputs, in column order."""
        names = ["grad", "param"]
        names += [f"momentum_{b}" for b in self.momentum_decays]
        names += [f"momentum_{b}/rms" for b in self.momentum_decays]
        names += [f"tanh({s}*t/T)" for s in self.progress_scales]
        if self.loss_decays:
            names += [f"tanh(log loss - ema_{c})" for c in self.loss_decays]
            names += ["tanh((log loss - log loss_0)/5)"]
        return names

    # ----------------------------------------------------------------- protocol
    def init_meta_params(self, key: jax.Array) -> dict:
        """theta = {"mlp": {"layer_i": {"w": (fan_in, fan_out), "b": (fan_out,)}}, "log_lr": ()}.

        Hidden layers use He-normal weights, the last layer N(0, output_init_scale^2).
        """
        sizes = (self.num_features + self.num_shared_features, *self.hidden_sizes, self.num_outputs)
        keys = jax.random.split(key, len(sizes) - 1)
        layers = {}
        for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            last = i == len(sizes) - 2
            scale = self.output_init_scale if last else math.sqrt(2.0 / fan_in)
            layers[f"layer_{i}"] = {
                "w": scale * jax.random.normal(keys[i], (fan_in, fan_out), jnp.float32),
                "b": jnp.zeros((fan_out,), jnp.float32),
            }
        theta = {"mlp": layers}
        if self.nominal:
            theta["log_lr"] = jnp.asarray(math.log(self.nominal_lr), jnp.float32)
        return theta

    def init(self, theta: dict, params: Any, num_steps: int | jax.Array) -> MLPOptState:
        """Zero accumulators for ``params`` (any float pytree) over ``num_steps`` steps."""
        del theta
        check_num_steps(num_steps, "MLPOptimizer.init")
        layout = flat.tree_layout(params)
        k = len(self.momentum_decays)
        leaves = [jnp.zeros(shape, jnp.float32) for shape in layout.shapes]
        return MLPOptState(
            step=jnp.zeros((), jnp.int32),
            num_steps=jnp.asarray(num_steps, jnp.int32),
            momenta=jax.tree.unflatten(layout.treedef, [jnp.zeros((k,) + x.shape) for x in leaves]),
            second_moment=jax.tree.unflatten(layout.treedef, leaves),
            loss_stats=(jnp.zeros((len(self.loss_decays) + 1,), jnp.float32)
                        if self.loss_decays else None),
            lr_offsets=(jax.tree.unflatten(layout.treedef, [jnp.zeros((), jnp.float32)] * len(leaves))
                        if self.lr_adapt else None),
        )

    def update(
        self, theta: dict, grads: Any, state: MLPOptState, params: Any, loss: jax.Array = None
    ) -> tuple[Any, MLPOptState]:
        """One step (see module doc); ``loss`` (the current scalar loss) is read only with
        ``loss_decays``. Updates come in params' dtypes."""
        layout = flat.tree_layout(params)
        second_moments = jax.tree.leaves(state.second_moment)
        state_shapes = tuple(tuple(x.shape) for x in second_moments)
        check_update_inputs(self.name, grads, layout,
                            sum(math.prod(shape) for shape in state_shapes), state_shapes)
        decays = jnp.asarray(self.momentum_decays, jnp.float32)[:, None]
        beta2 = self.second_moment_decay
        step = state.step + 1
        t = step.astype(jnp.float32)

        chunk_size = flat.resolve_chunk_size(self.chunk_size, CPU_CHUNK)
        unrolled = self.unrolled

        def features(g, p, m, v):
            """Raw feature columns of a block of R coordinates, feature-major (F, R); for
            the unrolled network the groups (g, p, m, m / rms) in the leaf's own shape."""
            inv_rms = 1.0 / (jnp.sqrt(v) + self.eps)
            if unrolled:
                return g, p, m, m * inv_rms
            return jnp.concatenate([g[None], p[None], m, m * inv_rms], axis=0)

        def sum_of_squares(x):
            if unrolled:
                g, p, m, m_rms = x
                return jnp.concatenate([F.row_sums_of_squares(g[None]),
                                        F.row_sums_of_squares(p[None]),
                                        F.row_sums_of_squares(m), F.row_sums_of_squares(m_rms)])
            return F.row_sums_of_squares(x)

        # Per leaf: new accumulators (elementwise) and the sums of squares of its features.
        # The unrolled network works in each leaf's own shape (the new accumulators can then
        # overwrite a donated state in place); the matmul form on flat (F, n) features. A
        # leaf that fits in one block keeps its features; a larger one recomputes them
        # block by block below.
        if self.lr_adapt and state.lr_offsets is None:
            raise ValueError(f"the state has no lr_offsets but {self!r} adapts its learning rate "
                             "(lr_adapt); make the state with this optimizer's init.")
        offsets = (jax.tree.leaves(state.lr_offsets) if self.lr_adapt
                   else [None] * len(second_moments))
        leaves, sums, new_offsets = [], [], []
        for grad, param, m, v, offset in zip(jax.tree.leaves(grads), jax.tree.leaves(params),
                                             jax.tree.leaves(state.momenta), second_moments,
                                             offsets):
            g = F.sanitize(jnp.asarray(grad, jnp.float32), F.GRAD_LIMIT)
            p = F.sanitize(jnp.asarray(param, jnp.float32), F.GRAD_LIMIT)
            if unrolled:
                leaf_decays = decays.reshape((-1,) + (1,) * g.ndim)
            else:
                g, p, v = jnp.ravel(g), jnp.ravel(p), jnp.ravel(v)
                m = m.reshape(decays.shape[0], -1)
                leaf_decays = decays
            if self.lr_adapt:  # the previous step's nominal direction, from the old state
                i = self.momentum_decays.index(self.nominal_beta1)
                previous = F.adam_direction(m[i], v, jnp.maximum(t - 1.0, 1.0),
                                            self.nominal_beta1, beta2, self.eps)
                offset = HG.adapt(offset, HG.agreement(g, previous), self.lr_adapt)
            new_offsets.append(offset)
            m = leaf_decays * m + (1.0 - leaf_decays) * g
            v = beta2 * v + (1.0 - beta2) * jnp.square(g)
            blocked = not unrolled and flat.is_blocked(g.shape[0], chunk_size)
            x = None if blocked else features(g, p, m, v)
            sums.append(sum_of_squares(features(g, p, m, v) if x is None else x))
            leaves.append((x, g, p, m, v))
        if self.normalize_over == "all" and len(leaves) > 1:
            scales = [jax.lax.rsqrt(sum(sums) / layout.num_coordinates + 1e-12)] * len(leaves)
        else:  # each leaf's statistics stay independent of the other leaves
            scales = [jax.lax.rsqrt(s / n + 1e-12) for s, n in zip(sums, layout.sizes)]

        progress = F.progress_features(state.step, state.num_steps, self.progress_scales)
        base_lr = jnp.asarray(self.step_mult, jnp.float32)
        if self.nominal:
            base_lr = jnp.exp(jnp.clip(theta["log_lr"], -EXP_LIMIT, EXP_LIMIT))
        layers = theta["mlp"]
        first = layers["layer_0"]
        loss_stats = state.loss_stats
        if self.loss_decays:
            shared, loss_stats = self._loss_features(state, loss)
            progress = jnp.concatenate([progress, shared])
        bias = first["b"] + progress @ first["w"][self.num_features :]

        def columns(scale, x, p, m, v, offset):
            """Step of R coordinates from their raw features x (F, R) (feature-major), the
            params p (R,) and the new accumulators m (K, R), v (R,); for the unrolled
            network x is `features`' groups and p, m, v keep the leaf's shape."""
            if unrolled:
                rows = [x[0], x[1], *x[2], *x[3]]  # g, p, the momenta, the momenta / rms
                rows = [F.sanitize(row * scale[i], FEATURE_LIMIT) for i, row in enumerate(rows)]
                out = self._apply_mlp_unrolled(layers, rows, bias)
            else:
                x = F.sanitize(x * scale[:, None], FEATURE_LIMIT)  # (F, R) normalised
                out = self._apply_mlp_features_major(layers, x, bias)
            magnitude = jnp.clip(self.exp_mult * out[1], -EXP_LIMIT, EXP_LIMIT)
            if self.normalize_update:  # the learned term is scaled per tensor afterwards
                learned = jnp.nan_to_num(out[0] * jnp.exp(magnitude))
                delta = jnp.zeros_like(learned)
            else:
                delta = self.step_mult * out[0] * jnp.exp(magnitude)
            if self.nominal:
                i = self.momentum_decays.index(self.nominal_beta1)
                lr = base_lr * jnp.exp(jnp.clip(out[2], -EXP_LIMIT, EXP_LIMIT))
                if offset is not None:
                    lr = lr * jnp.exp(offset)
                direction = F.adam_direction(m[i], v, t, self.nominal_beta1, beta2, self.eps)
                delta = delta + lr * direction
            if self.weight_decay:
                delta = delta + self.weight_decay * base_lr * p
            if self.normalize_update:
                return learned, delta
            return -jnp.nan_to_num(delta)

        updates, momenta, second_moment = [], [], []
        for scale, (x, g, p, m, v), offset, shape, dtype in zip(
                scales, leaves, new_offsets, layout.shapes, layout.dtypes):
            if x is None:
                block = lambda g, p, m, v, s=scale, o=offset: columns(  # noqa: E731
                    s, features(g, p, m, v), p, m, v, o)
                delta = flat.map_rows(block, g, p, m, v, chunk_size=chunk_size, axis=-1)
            else:
                delta = columns(scale, x, p, m, v, offset)
            if self.normalize_update:
                learned, rest = delta
                mean_square = F.row_sums_of_squares(learned[None])[0] / learned.size
                rms = jnp.sqrt(mean_square + UPDATE_RMS_EPS)
                delta = -jnp.nan_to_num(self.step_mult * (learned / rms) + rest)
            multiplier = F.fan_in_multiplier(shape, self.fan_in_scaling)
            if multiplier != 1.0:
                delta = delta * multiplier
            updates.append(delta.reshape(shape).astype(dtype))
            momenta.append(m.reshape((m.shape[0],) + shape))
            second_moment.append(v.reshape(shape))
        treedef = layout.treedef
        new_state = MLPOptState(step, state.num_steps, jax.tree.unflatten(treedef, momenta),
                                jax.tree.unflatten(treedef, second_moment), loss_stats,
                                jax.tree.unflatten(treedef, new_offsets) if self.lr_adapt else None)
        return jax.tree.unflatten(treedef, updates), new_state

    def _loss_features(self, state: MLPOptState, loss: jax.Array) -> tuple[jax.Array, jax.Array]:
        """The shared loss features of this step and the new ``loss_stats`` (module doc)."""
        if loss is None:
            raise ValueError(
                f"{self!r} reads the loss (loss_decays={self.loss_decays}) but update got "
                "loss=None; pass the current scalar loss: update(theta, grads, state, params, "
                "loss), or value=loss to its optax transform.")
        if state.loss_stats is None:
            raise ValueError(
                f"the state has no loss statistics but {self!r} reads the loss: it was made by "
                "an MLPOptimizer without loss_decays; make it with this optimizer's init.")
        log_loss = jnp.log(jnp.maximum(jnp.asarray(loss, jnp.float32), 1e-30))
        log_loss = F.sanitize(jnp.clip(log_loss, -70.0, 70.0), 70.0)  # a NaN loss counts as 1
        first = state.step == 0
        emas, initial = state.loss_stats[:-1], state.loss_stats[-1]
        emas = jnp.where(first, log_loss, emas)
        initial = jnp.where(first, log_loss, initial)
        decays = jnp.asarray(self.loss_decays, jnp.float32)
        shared = jnp.concatenate([jnp.tanh(log_loss - emas), jnp.tanh((log_loss - initial) / 5.0)[None]])
        emas = decays * emas + (1.0 - decays) * log_loss
        return shared, jnp.concatenate([emas, initial[None]])

    def _apply_mlp_unrolled(self, layers: dict, rows: list, bias: jax.Array) -> list:
        """relu MLP on F normalised (R,) feature rows -> ``num_outputs`` (R,) rows, written
        as scalar-weight multiply-adds (h_j = sum_i w_ij x_i + b_j) that XLA fuses into one
        elementwise loop. ``bias`` as in `_apply_mlp_features_major`."""
        w = layers["layer_0"]["w"]
        h = [sum(w[i, j] * row for i, row in enumerate(rows)) + bias[j]
             for j in range(w.shape[1])]
        for i in range(1, len(self.hidden_sizes) + 1):
            layer = layers[f"layer_{i}"]
            w, b = layer["w"], layer["b"]
            a = [jax.nn.relu(x) for x in h]
            h = [sum(w[k, j] * x for k, x in enumerate(a)) + b[j] for j in range(w.shape[1])]
        return h

    def _apply_mlp_features_major(self, layers: dict, x: jax.Array, bias: jax.Array) -> jax.Array:
        """relu MLP on feature-major (F, R) inputs -> (num_outputs, R).

        ``bias`` is the first layer's bias with the shared progress features folded in.
        Weights act as W^T x (same sums as x W): with the coordinate axis last the
        matmuls run faster on CPU than row-major (R, F) x (F, H).
        """
        num_layers = len(self.hidden_sizes) + 1
        w_first = layers["layer_0"]["w"][: self.num_features]
        # (F, H) x (F, R) -> (H, R): contract the feature axes, no transpose of x.
        h = jax.lax.dot_general(w_first, x, (((0,), (0,)), ((), ()))) + bias[:, None]
        for i in range(1, num_layers):
            layer = layers[f"layer_{i}"]
            h = jax.lax.dot_general(layer["w"], jax.nn.relu(h), (((0,), (0,)), ((), ())))
            h = h + layer["b"][:, None]
        return h
