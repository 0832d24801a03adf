"""Task augmentations: wrapper families that transform the tasks of another family.

Weight-scale reparameterisation (learned_optimization's ``ReparamWeights``, used by VeLO
and Celo with scales in [1e-3, 1e3]). Each task draws a positive scale ``s`` per tensor
(or one for the whole task, or one per scalar parameter), log-uniformly in
``scale_range``, and the optimizer sees parameters ``θ' = θ / s``::

    init'(key) = init(key) / s        loss'(θ', key) = loss(s ⊙ θ', key)
    ∇loss'(θ') = s ⊙ ∇loss(s ⊙ θ')    argmin' = argmin / s,  optimum' = optimum

The function a task computes is unchanged; only how sensitive the loss is to each
parameter (and how large the parameters are) changes, so an optimizer that is not
invariant to parameter scale must adapt its step size per tensor. The scales live in the
config (:class:`ScaledCfg`), so an augmented family is ``vmap``pable like any other. The
wrapped family's own config is the one it would draw from the same key::

    family = tasks.augment.apply(tasks.registry.get("mlp-digits"),
                                 {"weight_scale": [1e-3, 1e3]})
    family = tasks.augment.weight_scale(base, scale_range=(1e-2, 1e2), level="global")

Spec (JSON-able, for meta-training configs and mixture entries): ``None`` or ``{}`` for
no augmentation; ``{"weight_scale": [low, high]}``; or ``{"weight_scale": {"range":
[low, high], "level": "tensor" | "global" | "parameter", "probability": p}}`` where a
task is augmented with probability ``p`` (default 1) and keeps scale 1 otherwise.
"""

from __future__ import annotations

import difflib
import math
from typing import Any, Mapping

import jax
import jax.numpy as jnp
from flax import struct

from tasks.base import Task, TaskFamily
from tasks.sampling import check_range

LEVELS: tuple[str, ...] = ("tensor", "global", "parameter")
DEFAULT_SCALE_RANGE: tuple[float, float] = (1e-3, 1e3)
AUGMENTATIONS: tuple[str, ...] = ("weight_scale",)
_SCALE_KEYS: tuple[str, ...] = ("range", "level", "probability")
_SCALE_SALT = 0x5CA1E


@struct.dataclass
class ScaledCfg:
    """Config of a weight-scaled task: the wrapped family's ``base`` config and ``scales``,
    a pytree like the params whose leaves broadcast against them (``()`` per tensor or
    global level, the tensor's shape at the parameter level)."""

    base: Any
    scales: Any


def scale_task(task: Task, scales: Any) -> Task:
    """``task`` reparameterised by ``θ = scales ⊙ θ'`` (module doc); same name and metrics."""

    def to_base(params):
        return jax.tree.map(lambda p, s: p * s, params, scales)

    def metrics(params, key, split="test"):
        return task.metrics(to_base(params), key, split)

    argmin = task.argmin
    if argmin is not None:
        argmin = jax.tree.map(lambda p, s: p / s, argmin, scales)
    return Task(
        name=task.name,
        init=lambda key: jax.tree.map(lambda p, s: p / s, task.init(key), scales),
        loss=lambda params, key: task.loss(to_base(params), key),
        eval_loss=lambda params, key, split="test": task.eval_loss(to_base(params), key, split),
        metrics=None if task.metrics is None else metrics,
        optimum=task.optimum,
        argmin=argmin,
    )


def _check_options(scale_range: Any, level: Any, probability: Any):
    """Validated ``(scale_range, level, probability)`` of a weight-scale augmentation."""
    scale_range = check_range("weight_scale range", scale_range, positive=True)
    if level not in LEVELS:
        raise ValueError(f"weight_scale level must be one of {LEVELS}, got {level!r}.")
    if isinstance(probability, bool) or not isinstance(probability, (int, float)) or not (
            0.0 <= probability <= 1.0):
        raise ValueError(
            f"weight_scale probability must be a number in [0, 1], got {probability!r}.")
    return scale_range, level, float(probability)


def _label(scale_range: tuple[float, float], level: str, probability: float) -> str:
    low, high = scale_range
    extra = "" if level == "tensor" else f",{level}"
    extra += "" if probability == 1.0 else f",p={probability:g}"
    return f"+wscale[{low:g},{high:g}{extra}]"


def weight_scale(
    family: TaskFamily,
    scale_range: tuple[float, float] = DEFAULT_SCALE_RANGE,
    level: str = "tensor",
    probability: float = 1.0,
) -> TaskFamily:
    """``family`` with each task reparameterised by log-uniform weight scales (module doc).

    Args:
      family: the wrapped family (unchanged).
      scale_range: ``(low, high)`` with ``0 < low <= high``.
      level: ``"tensor"`` (one scale per parameter tensor), ``"global"`` (one per task) or
        ``"parameter"`` (one per scalar; the config then holds a scale per parameter).
      probability: fraction of tasks that are augmented; the others get scale 1.

    Returns:
      A ``TaskFamily`` named ``family.name + "+wscale[low,high]"`` (plus the level and
      probability when not the defaults), same split, configs :class:`ScaledCfg`.
    """
    if not isinstance(family, TaskFamily):
        raise TypeError(f"weight_scale wraps a TaskFamily, got {type(family).__name__}.")
    scale_range, level, probability = _check_options(scale_range, level, probability)
    log_low, log_high = (math.log(v) for v in scale_range)
    abstract = jax.eval_shape(lambda k: family.task(family.sample(k)).init(k), jax.random.key(0))
    leaves, treedef = jax.tree.flatten(abstract)
    shapes = [() if level != "parameter" else tuple(leaf.shape) for leaf in leaves]

    def sample(key):
        key_scale = jax.random.fold_in(key, _SCALE_SALT)
        size = sum(math.prod(shape) for shape in shapes) if level == "parameter" else len(leaves)
        unit = jax.random.uniform(key_scale, (size + 1,), jnp.float32)
        log_scale = log_low + unit[:size] * (log_high - log_low)
        log_scale = jnp.where(unit[size] < probability, log_scale, 0.0)
        if level == "global":
            log_scale = jnp.broadcast_to(log_scale[0], (len(leaves),))
        offsets = [0]
        for shape in shapes:
            offsets.append(offsets[-1] + math.prod(shape))
        scales = [jnp.exp(log_scale[a:b]).reshape(shape)
                  for a, b, shape in zip(offsets[:-1], offsets[1:], shapes)]
        return ScaledCfg(base=family.sample(key), scales=jax.tree.unflatten(treedef, scales))

    def task(cfg: ScaledCfg):
        return scale_task(family.task(cfg.base), cfg.scales)

    return TaskFamily(
        name=family.name + _label(scale_range, level, probability),
        sample=sample, task=task, split=family.split,
    )


def _unknown(kind: str, given: list[str], valid: tuple[str, ...]) -> str:
    hints = []
    for name in given:
        close = difflib.get_close_matches(name, valid, n=1)
        if close:
            hints.append(f"{name!r}: did you mean {close[0]!r}?")
    hint = (" " + " ".join(hints)) if hints else ""
    return f"unknown {kind} {given}; valid: {list(valid)}.{hint}"


def check_spec(spec: Mapping[str, Any] | None) -> dict[str, Any]:
    """Validate an augmentation spec; returns it in full JSON form (``{}`` for none).

    ``{"weight_scale": [1e-3, 1e3]}`` becomes ``{"weight_scale": {"range": [0.001,
    1000.0], "level": "tensor", "probability": 1.0}}``. Raises ``ValueError`` (with a
    did-you-mean hint for misspelt keys) or ``TypeError`` for anything else.
    """
    if spec is None:
        return {}
    if not isinstance(spec, Mapping):
        raise TypeError(f"an augmentation spec is a dict like {{'weight_scale': [1e-3, 1e3]}} "
                        f"or None, got {type(spec).__name__}: {spec!r}.")
    unknown = sorted(set(spec) - set(AUGMENTATIONS))
    if unknown:
        raise ValueError(_unknown("augmentation(s)", unknown, AUGMENTATIONS))
    if "weight_scale" not in spec:
        return {}
    value = spec["weight_scale"]
    options = dict(value) if isinstance(value, Mapping) else {"range": value}
    bad = sorted(set(options) - set(_SCALE_KEYS))
    if bad:
        raise ValueError(_unknown("weight_scale option(s)", bad, _SCALE_KEYS))
    scale_range, level, probability = _check_options(
        options.get("range", DEFAULT_SCALE_RANGE), options.get("level", "tensor"),
        options.get("probability", 1.0))
    return {"weight_scale": {"range": list(scale_range), "level": level,
                             "probability": probability}}


def apply(family: TaskFamily, spec: Mapping[str, Any] | None) -> TaskFamily:
    """``family`` transformed by the augmentations of ``spec`` (``family`` itself if none).

    See the module doc for the spec; errors as in :func:`check_spec`.
    """
    spec = check_spec(spec)
    if "weight_scale" in spec:
        options = spec["weight_scale"]
        family = weight_scale(family, tuple(options["range"]), options["level"],
                              options["probability"])
    return family


