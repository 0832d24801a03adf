"""Time of one training step per optimizer, as a ratio to Adam measured in the same run.

One step = forward + backward + optimizer update + apply, jitted with the training state
donated, on random data (batch 128 by default) for two models: the MLP 784-1024-1024-10
(1.86M parameters) and a small conv net (28x28x1, two convs + dense). Optimizers: Adam,
Lion, Lookahead(Adam), the MLP and LSTM learned optimizers at fresh meta-parameters, the
shipped generalists (`SHIPPED`, their own config and meta-parameters; they read the loss),
and the default MLP and LSTM guarded by Adam with the paper's per-step rule (`l2o.guard`,
``shadow=False``: two extra forward passes per step on the next minibatch) and with the
default paired runs (``shadowguarded_*``: the fallback run and the learned optimizer alone
beside the restarted learned run, two more forward + backward passes per step and one more
learned update). Timing:
`benchmarks.common.time_interleaved` (warm-up, rotated order, median over repeats of
blocks ending in ``block_until_ready``).

    python -m benchmarks.optimizer_step                    # CPU defaults, < 5 min on 2 cores
    python -m benchmarks.optimizer_step --repeats 9 --block-seconds 0.3     # accelerator

Targets (ratio to Adam on the 1.86M MLP): accelerator MLP (all sizes) <= 1.5, LSTM <= 3;
CPU MLP 2x32 <= 14, small MLPs 2x16 / 2x8 and the shipped MLP generalist <= 3, LSTM <= 50;
on both, the guard adds <= 1 Adam step on top of the unguarded optimizer.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable

if __package__ in (None, ""):  # run as a file: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax
import jax.numpy as jnp
import optax

import l2o
from baselines import optimizers as baseline_optimizers
from benchmarks import common
from benchmarks.models import Model, conv_classifier, mlp_classifier, random_batch
from l2o import GuardedOptimizer

# Shipped learned optimizers timed with their own config and meta-parameters.
SHIPPED: tuple[str, ...] = ("mlp-generalist-log", "mlp-generalist-2x16-best",
                            "mlp-generalist-2x16-hd", "lstm-generalist", "lstm-generalist-hd")
OPTIMIZERS: tuple[str, ...] = (
    "adam", "lion", "lookahead", "mlp", "mlp-2x16", "mlp-2x8", "lstm", *SHIPPED,
    "guarded_mlp", "guarded_lstm", "shadowguarded_mlp", "shadowguarded_lstm",
)


def _shipped(name: str) -> tuple[Any, Any]:
    loaded = l2o.load_pretrained(name)
    return loaded.lopt, loaded.theta


# Learned optimizers by benchmark name -> (optimizer, meta-parameters or None for fresh
# ones): the default configs, the small MLP configs and the shipped generalists.
LEARNED: dict[str, Callable[[], tuple[Any, Any]]] = {
    "mlp": lambda: (l2o.MLPOptimizer(), None),
    "mlp-2x16": lambda: (l2o.MLPOptimizer(hidden_sizes=(16, 16)), None),
    "mlp-2x8": lambda: (l2o.MLPOptimizer(hidden_sizes=(8, 8)), None),
    "lstm": lambda: (l2o.LSTMOptimizer(), None),
    **{name: (lambda name=name: _shipped(name)) for name in SHIPPED},
}
MODELS: tuple[str, ...] = ("mlp", "conv")
# (optimizer, max ratio to Adam) per platform; "guard_*" bounds (guarded - plain) / Adam.
TARGETS: dict[str, dict[str, float]] = {
    "gpu": {"mlp": 1.5, "mlp-2x16": 1.5, "mlp-2x8": 1.5, "lstm": 3.0, "guard_mlp": 1.0,
            "guard_lstm": 1.0, "mlp-generalist-log": 1.5, "lstm-generalist": 3.0},
    "cpu": {"mlp": 14.0, "mlp-2x16": 3.0, "mlp-2x8": 3.0, "lstm": 50.0, "guard_mlp": 1.0,
            "guard_lstm": 1.0, "mlp-generalist-log": 3.0, "lstm-generalist": 50.0},
}
# Reference ratios of the first (naive) implementation, for the table.
REFERENCE = {
    "gpu": {"adam_ms": 0.29, "lion": 0.57, "lookahead": 0.98, "mlp": 2.7, "lstm": 6.7},
    "cpu": {"adam_ms": 6.4, "mlp": 28.0, "lstm": 106.0},
}


def make_transform(name: str, key: jax.Array) -> optax.GradientTransformationExtraArgs:
    """The optimizer ``name`` (one of `OPTIMIZERS`) as an optax transform taking extra args.

    Learned optimizers use fresh meta-parameters from ``key`` (the step cost does not
    depend on their values), the shipped ones their own; guards use ``optax.adam(1e-3)``
    as fallback, ``guarded_*`` with the per-step rule and ``shadowguarded_*`` with the
    paired runs.
    """
    if name == "adam":
        return baseline_optimizers.adam(1e-3)
    if name == "lion":
        return baseline_optimizers.lion(1e-4, weight_decay=0.0)
    if name == "lookahead":
        return baseline_optimizers.lookahead(baseline_optimizers.adam(1e-3))
    guard, _, base = name.rpartition("_")  # "mlp" -> ("", "", "mlp")
    if base not in LEARNED or guard not in ("", "guarded", "shadowguarded"):
        raise ValueError(f"unknown optimizer {name!r}; expected one of {OPTIMIZERS}.")
    lopt, theta = LEARNED[base]()
    if guard:
        lopt = GuardedOptimizer(lopt, optax.adam(1e-3), shadow=guard == "shadowguarded")
    return lopt.as_optax(lopt.init_meta_params(key) if theta is None else theta, num_steps=1000)


def make_train_step(model: Model, tx) -> Callable:
    """Jitted ``step((params, opt_state), batch, next_batch) -> ((params, opt_state), loss)``.

    ``next_batch`` feeds ``next_loss_fn`` (the guard's comparison loss); other optimizers
    ignore it and XLA removes the unused forward. The carry is donated.
    """

    def step(carry, batch, next_batch):
        params, opt_state = carry
        loss, grads = jax.value_and_grad(model.loss)(params, *batch)
        updates, opt_state = tx.update(
            grads, opt_state, params, value=loss, next_loss_fn=lambda p: model.loss(p, *next_batch)
        )
        return (optax.apply_updates(params, updates), opt_state), loss

    return jax.jit(step, donate_argnums=0)


def make_runner(model: Model, name: str, batch_size: int, key: jax.Array) -> Callable[[], Any]:
    """Zero-argument callable doing one training step of ``model`` with optimizer ``name``."""
    k_init, k_opt, k_b1, k_b2 = jax.random.split(key, 4)
    tx = make_transform(name, k_opt)
    params = model.init(k_init)
    # Copies: a state may alias params (Lookahead's slow weights), and both are donated.
    carry = jax.tree.map(lambda x: jnp.array(x, copy=True), (params, tx.init(params)))
    state = {"carry": carry}
    batch, next_batch = random_batch(k_b1, model, batch_size), random_batch(k_b2, model, batch_size)
    step = make_train_step(model, tx)

    def run():
        state["carry"], loss = step(state["carry"], batch, next_batch)
        return loss

    return run


def check_targets(ratios: dict[str, float], platform: str) -> dict[str, dict[str, Any]]:
    """Compare the 1.86M-MLP ratios with `TARGETS` of ``"gpu"`` or ``"cpu"``.

    Returns target name -> ``{"value", "limit", "met"}``; ``guard_X`` is
    ``ratio(guarded_X) - ratio(X)`` (the guard's extra cost in Adam steps).
    """
    checks = {}
    for target, limit in TARGETS[platform].items():
        if target.startswith("guard_"):
            base = target.removeprefix("guard_")
            if base not in ratios or f"guarded_{base}" not in ratios:
                continue
            value = ratios[f"guarded_{base}"] - ratios[base]
        elif target in ratios:
            value = ratios[target]
        else:
            continue
        checks[target] = {"value": round(value, 3), "limit": limit, "met": bool(value <= limit)}
    return checks


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Time every optimizer on every model; print tables; return the results section."""
    info = common.device_info()
    platform = "cpu" if info["platform"] == "cpu" else "gpu"
    sizes = tuple(common.parse_ints(args.sizes, "--sizes"))
    builders = {"mlp": lambda: mlp_classifier(sizes), "conv": conv_classifier}
    names = [n.strip() for n in args.optimizers.split(",") if n.strip()]
    for name in names:
        if name not in OPTIMIZERS:
            raise ValueError(f"--optimizers: unknown {name!r}; expected some of {OPTIMIZERS}.")
    if "adam" not in names:
        names.insert(0, "adam")
    print(common.describe_device(info))
    section: dict[str, Any] = {"batch_size": args.batch_size, "models": {}}
    for model_name in [m.strip() for m in args.models.split(",") if m.strip()]:
        if model_name not in builders:
            raise ValueError(f"--models: unknown {model_name!r}; expected some of {MODELS}.")
        model = builders[model_name]()
        key = jax.random.PRNGKey(args.seed)
        num_params = sum(x.size for x in jax.tree.leaves(jax.eval_shape(model.init, key)))
        runners = {n: make_runner(model, n, args.batch_size, key) for n in names}
        iters = {n: common.calibrate_iters(r, args.block_seconds, args.max_iters)
                 for n, r in runners.items()}
        times = common.time_interleaved(runners, iters, args.repeats, warmup=0)
        adam = times["adam"]["median_s"]
        ratios = {n: t["median_s"] / adam for n, t in times.items()}
        reference = REFERENCE[platform]
        main_model = model_name == "mlp" and sizes == (784, 1024, 1024, 10)
        rows = [[n, 1e3 * times[n]["median_s"], 1e3 * times[n]["min_s"], ratios[n],
                 reference.get(n, 1.0 if n == "adam" else "-") if main_model else "-",
                 times[n]["iters"]]
                for n in names]
        print(f"\n{model.name} ({num_params:,} params), batch {args.batch_size}")
        print(common.format_table(
            ["optimizer", "ms/step", "min ms", "x Adam", "naive ref x", "iters"], rows))
        entry = {
            "num_params": int(num_params),
            "ms_per_step": {n: round(1e3 * t["median_s"], 4) for n, t in times.items()},
            "min_ms_per_step": {n: round(1e3 * t["min_s"], 4) for n, t in times.items()},
            "ratio_to_adam": {n: round(r, 3) for n, r in ratios.items()},
            "iters": iters,
            "repeats": args.repeats,
        }
        if model_name == "mlp":
            entry["targets"] = check_targets(ratios, platform)
            for target, check in entry["targets"].items():
                verdict = "met" if check["met"] else "MISSED"
                print(f"target {target} <= {check['limit']}: {check['value']:.2f} {verdict}")
        section["models"][model.name] = entry
    section["load_after"] = common.device_info()["loadavg"]
    return section


def parser() -> argparse.ArgumentParser:
    """Command-line flags of this benchmark."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="784,1024,1024,10", help="MLP layer widths")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--models", default="mlp,conv", help=f"some of {MODELS}")
    p.add_argument("--optimizers", default=",".join(OPTIMIZERS), help=f"some of {OPTIMIZERS}")
    p.add_argument("--repeats", type=int, default=5, help="timed blocks per optimizer")
    p.add_argument("--block-seconds", type=float, default=0.5, help="target length of a block")
    p.add_argument("--max-iters", type=int, default=200, help="max steps per block")
    p.add_argument("--seed", type=int, default=0)
    common.add_output_args(p)
    return p


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Entry point: run, print, merge into the device's results file."""
    args = parser().parse_args(argv)
    section = run(args)
    common.save_section(args, "optimizer_step", section)
    return section


if __name__ == "__main__":
    main()
