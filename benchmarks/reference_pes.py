"""A minimal PES written as one ``jit(vmap(scan))``: the yardstick of `benchmarks.engine`.

The same algorithm as `meta_train.pes.ESGradientEstimator` with strategy ``"pes"`` and
none of its machinery (no evosax, no system protocol, no staggering by unrolling):

    eps ~ sigma N(0, I)   f32[T, P, D]      antithetic: particles (+eps, -eps)
    xi  <- xi + [eps; -eps]                 f32[2, T, P, D], zeroed where a run restarted
    L_i  = mean over K inner steps of clip(log(loss_t / loss_0), log 1e-12, log 10)
    g    = 1/(N sigma^2) sum_i L_i xi_i     fitness clipped to +-1e4, NaN -> 1e4
    theta <- adam(zero_nans, clip_by_global_norm(1))(g)

Each particle holds one inner run of a task of ``family``: its params, optimizer state,
inner step and data key; a task's ``P`` pairs and both signs share the run's key (same
minibatches) and restart together, from a fresh task, when the run reaches ``H`` steps.
Runs start at inner steps ``t * H / T`` (staggered without advancing their params: only
the reset pattern matters for the cost).

The inner optimizer is a pair ``(init(params, num_steps), update(theta, grads, state,
params) -> (updates, state))``: `lopt_functions` wraps an l2o optimizer as is, and
`direct_mlp_functions` is a straightforward per-leaf implementation of
`l2o.MLPOptimizer`'s math (no flat vector), checked against it by the benchmark.
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.flatten_util import ravel_pytree

LOG_TINY, LOG_MAX_RATIO = math.log(1e-12), math.log(10.0)
FITNESS_CLIP = 1e4


class ReferenceState(NamedTuple):
    """Everything one outer step reads and writes."""

    theta: jax.Array  # f32[D]
    opt_state: Any  # outer adam
    xi: jax.Array  # f32[2, T, P, D]
    runs: Any  # per-particle runs, leading axes (2, T, P)
    key: jax.Array


def lopt_functions(lopt) -> tuple[Callable, Callable]:
    """``(init, update)`` of an l2o learned optimizer, as the reference calls them."""
    return ((lambda params, num_steps: lopt.init(None, params, num_steps)),
            (lambda theta, grads, state, params: lopt.update(theta, grads, state, params)))


def direct_mlp_functions(lopt) -> tuple[Callable, Callable]:
    """``(init, update)`` computing `l2o.MLPOptimizer`'s update leaf by leaf.

    State: per leaf, momenta of shape ``leaf.shape + (K,)`` and a second moment of the
    leaf's shape, plus the step counter and horizon. Requires per-tensor normalisation.
    """
    decays = jnp.asarray(lopt.momentum_decays, jnp.float32)
    b2, eps, nf = lopt.second_moment_decay, lopt.eps, lopt.num_features
    limit = 1e15

    def sanitize(x, bound):
        return jnp.clip(jnp.nan_to_num(x, nan=0.0, posinf=bound, neginf=-bound), -bound, bound)

    def init(params, num_steps):
        return {
            "step": jnp.zeros((), jnp.int32), "num_steps": jnp.asarray(num_steps, jnp.int32),
            "m": jax.tree.map(lambda p: jnp.zeros(p.shape + (len(decays),), jnp.float32), params),
            "v": jax.tree.map(lambda p: jnp.zeros(p.shape, jnp.float32), params),
        }

    def update(theta, grads, state, params):
        step = state["step"] + 1
        t = step.astype(jnp.float32)
        frac = state["step"].astype(jnp.float32) / jnp.maximum(state["num_steps"].astype(jnp.float32), 1.0)
        progress = jnp.tanh(jnp.asarray(lopt.progress_scales, jnp.float32) * frac)
        layers = theta["mlp"]
        bias0 = layers["layer_0"]["b"] + progress @ layers["layer_0"]["w"][nf:]
        base_lr = jnp.exp(jnp.clip(theta["log_lr"], -20.0, 20.0)) if lopt.nominal else lopt.step_mult
        nominal_index = lopt.momentum_decays.index(lopt.nominal_beta1) if lopt.nominal else 0

        def leaf(g, p, m, v):
            g = sanitize(g.astype(jnp.float32).reshape(-1), limit)
            p = sanitize(p.astype(jnp.float32).reshape(-1), limit)
            m = decays * m.reshape(-1, len(decays)) + (1.0 - decays) * g[:, None]
            v = b2 * v.reshape(-1) + (1.0 - b2) * g * g
            x = jnp.concatenate([g[:, None], p[:, None], m, m / (jnp.sqrt(v) + eps)[:, None]], 1)
            x = x * jax.lax.rsqrt(jnp.mean(x * x, axis=0) + 1e-12)
            h = sanitize(x, 100.0) @ layers["layer_0"]["w"][:nf] + bias0
            for i in range(1, len(lopt.hidden_sizes) + 1):
                h = jax.nn.relu(h) @ layers[f"layer_{i}"]["w"] + layers[f"layer_{i}"]["b"]
            delta = lopt.step_mult * h[:, 0] * jnp.exp(jnp.clip(lopt.exp_mult * h[:, 1], -20.0, 20.0))
            if lopt.nominal:
                m_hat = m[:, nominal_index] / (1.0 - lopt.nominal_beta1**t)
                v_hat = v / (1.0 - b2**t)
                lr = base_lr * jnp.exp(jnp.clip(h[:, 2], -20.0, 20.0))
                delta = delta + lr * m_hat / (jnp.sqrt(v_hat) + eps)
            if lopt.weight_decay:
                delta = delta + lopt.weight_decay * base_lr * p
            return -jnp.nan_to_num(delta), m, v

        outs = jax.tree.map(leaf, grads, params, state["m"], state["v"])
        treedef = jax.tree.structure(params)
        leaves = treedef.flatten_up_to(outs)
        shapes = [jnp.shape(p) for p in jax.tree.leaves(params)]
        updates = treedef.unflatten([u.reshape(s) for (u, _, _), s in zip(leaves, shapes)])
        m = treedef.unflatten([mm.reshape(s + (len(decays),)) for (_, mm, _), s in zip(leaves, shapes)])
        v = treedef.unflatten([vv.reshape(s) for (_, _, vv), s in zip(leaves, shapes)])
        return updates, {"step": step, "num_steps": state["num_steps"], "m": m, "v": v}

    return init, update


def make_reference(family, opt_init, opt_update, theta, *, num_tasks: int, num_pairs: int,
                   trunc_length: int, horizon: int, sigma: float = 0.01,
                   outer_lr: float = 3e-3) -> tuple[Callable, Callable]:
    """``(init(key) -> ReferenceState, step(state) -> (state, meta_loss))``, both jitted."""
    flat0, unravel = ravel_pytree(theta)
    outer = optax.chain(optax.zero_nans(), optax.clip_by_global_norm(1.0), optax.adam(outer_lr))
    shape = (2, num_tasks, num_pairs)
    num_particles = 2 * num_tasks * num_pairs

    def new_run(key, inner_step):
        k_cfg, k_init, k_data = jax.random.split(key, 3)
        cfg = family.sample(k_cfg)
        task = family.task(cfg)
        params = task.init(k_init)
        scale = jnp.abs(task.loss(params, jax.random.fold_in(k_data, 0)))
        scale = jnp.where(jnp.isfinite(scale) & (scale > 1e-8), scale, 1.0)
        return {"cfg": cfg, "params": params, "opt": opt_init(params, horizon),
                "t": jnp.asarray(inner_step, jnp.int32), "data_key": k_data, "scale": scale}

    def unroll(theta_flat, run, key):
        theta_tree = unravel(theta_flat)

        def body(run, _):
            task = family.task(run["cfg"])
            loss, grads = jax.value_and_grad(task.loss)(
                run["params"], jax.random.fold_in(run["data_key"], run["t"]))
            updates, opt = opt_update(theta_tree, grads, run["opt"], run["params"])
            params = jax.tree.map(lambda p, u: p + u, run["params"], updates)
            term = jnp.clip(jnp.log(jnp.maximum(loss / run["scale"], 1e-12)), LOG_TINY, LOG_MAX_RATIO)
            term = jnp.where(jnp.isfinite(loss), term, jnp.nan)
            return dict(run, params=params, opt=opt, t=run["t"] + 1), term

        run, terms = jax.lax.scan(body, run, None, length=trunc_length)
        reset = run["t"] >= horizon
        fresh = new_run(key, 0)
        run = jax.tree.map(lambda a, b: jnp.where(reset, a, b), fresh, run)
        return run, jnp.mean(terms), reset

    @jax.jit
    def init(key):
        k_runs, k_next = jax.random.split(key)
        starts = jnp.asarray([(t * (horizon // trunc_length) // num_tasks) * trunc_length
                              for t in range(num_tasks)], jnp.int32)
        runs = jax.vmap(new_run)(jax.random.split(k_runs, num_tasks), starts)
        runs = jax.tree.map(lambda x: jnp.broadcast_to(x[None, :, None], shape + x.shape[1:]), runs)
        xi = jnp.zeros(shape + flat0.shape, jnp.float32)
        return ReferenceState(flat0, outer.init(flat0), xi, runs, k_next)

    @jax.jit
    def step(state):
        key, k_eps, k_unroll = jax.random.split(state.key, 3)
        eps = sigma * jax.random.normal(k_eps, (num_tasks, num_pairs) + flat0.shape)
        eps = jnp.stack([eps, -eps])
        xi = state.xi + eps
        thetas = state.theta + eps
        per_pair = jax.vmap(unroll, in_axes=(0, 0, None))
        per_task = jax.vmap(per_pair, in_axes=(0, 0, 0))
        per_sign = jax.vmap(per_task, in_axes=(0, 0, None))
        runs, losses, resets = per_sign(thetas, state.runs, jax.random.split(k_unroll, num_tasks))
        fitness = jnp.where(jnp.isfinite(losses), jnp.clip(losses, -FITNESS_CLIP, FITNESS_CLIP), FITNESS_CLIP)
        grad = jnp.einsum("stp,stpd->d", fitness, xi) / (num_particles * sigma**2)
        updates, opt_state = outer.update(grad, state.opt_state, state.theta)
        xi = jnp.where(resets[..., None], 0.0, xi)
        new = ReferenceState(state.theta + updates, opt_state, xi, runs, key)
        return new, jnp.mean(fitness)

    return init, step
