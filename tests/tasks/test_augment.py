"""Weight-scale augmentation: same function at corresponding points, chain-rule gradients,
log-uniform scales in the cfg pytree (vmappable), JSON specs with clear errors."""

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tasks import augment, registry


@pytest.fixture(scope="module")
def mlp():
    return registry.get("mlp-digits")


def _tree_close(a, b, rtol, atol=0.0):
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=rtol, atol=atol), a, b)


def _pair(family, base, key, init_key, shift=0.0):
    """(cfg, augmented task, base task, θ, θ' = θ / s) of ``family = weight_scale(base)``."""
    cfg = family.sample(key)
    scaled, task = family.task(cfg), base.task(cfg.base)
    theta = jax.tree.map(lambda p: p + shift, task.init(init_key))
    return cfg, scaled, task, theta, jax.tree.map(lambda p, s: p / s, theta, cfg.scales)


@pytest.mark.parametrize("name", ["mlp-digits", "quadratic", "teacher-regression"])
def test_same_loss_and_chain_rule_gradients(name):
    base = registry.get(name)
    family = augment.weight_scale(base)

    @jax.jit
    def both(key, batch):
        # shift: nonzero biases
        cfg, scaled, task, theta, theta_scaled = _pair(family, base, key, jax.random.key(1), 0.1)
        values = [(f.loss(p, batch), f.eval_loss(p, batch, "test"), jax.grad(f.loss)(p, batch),
                   f.init(jax.random.key(1))) for f, p in ((scaled, theta_scaled), (task, theta))]
        argmin_loss = (None if task.argmin is None
                       else scaled.eval_loss(scaled.argmin, batch, "test"))
        return cfg, base.sample(key), values, argmin_loss, task.optimum

    cfg, base_cfg, (augmented, plain), argmin_loss, optimum = both(jax.random.key(7),
                                                                   jax.random.key(2))
    # the wrapped family's config is the one it draws from the same key
    _tree_close(cfg.base, base_cfg, rtol=0)
    np.testing.assert_allclose(augmented[0], plain[0], rtol=1e-5)  # training loss
    np.testing.assert_allclose(augmented[1], plain[1], rtol=1e-5)  # evaluation loss
    # d loss(s θ') / d θ' = s ⊙ ∇loss(θ)
    _tree_close(augmented[2], jax.tree.map(lambda g, s: s * g, plain[2], cfg.scales),
                rtol=2e-4, atol=1e-9)
    # initial params are the base ones divided by the scales
    _tree_close(augmented[3], jax.tree.map(lambda p, s: p / s, plain[3], cfg.scales), rtol=1e-6)
    if argmin_loss is not None:  # argmin' = argmin / s attains the same optimum
        np.testing.assert_allclose(argmin_loss, optimum, rtol=1e-4, atol=1e-4)


def test_sgd_step_is_a_per_tensor_learning_rate(mlp):
    """One SGD step of lr η on θ' moves θ = s θ' by -η s² ∇loss(θ)."""
    family = augment.weight_scale(mlp, (0.1, 10.0))
    lr, batch = 0.05, jax.random.key(3)

    @jax.jit
    def steps(key):
        cfg, scaled, task, theta, theta_scaled = _pair(family, mlp, key, jax.random.key(1))
        stepped = jax.tree.map(lambda p, g: p - lr * g, theta_scaled,
                               jax.grad(scaled.loss)(theta_scaled, batch))
        expected = jax.tree.map(lambda p, g, s: p - lr * s**2 * g, theta,
                                jax.grad(task.loss)(theta, batch), cfg.scales)
        return jax.tree.map(lambda p, s: p * s, stepped, cfg.scales), expected

    _tree_close(*steps(jax.random.key(0)), rtol=1e-4, atol=1e-7)


def test_metrics_pass_through(mlp):
    family = augment.weight_scale(mlp)

    @jax.jit
    def both(key):
        _, scaled, task, theta, theta_scaled = _pair(family, mlp, key, jax.random.key(5))
        return (scaled.metrics(theta_scaled, jax.random.key(6), "test"),
                task.metrics(theta, jax.random.key(6), "test"))

    got, want = both(jax.random.key(4))
    assert set(got) == {"loss", "accuracy"}
    np.testing.assert_allclose(got["accuracy"], want["accuracy"])
    np.testing.assert_allclose(got["loss"], want["loss"], rtol=1e-5)


def test_scales_are_log_uniform_per_tensor_and_vmappable(mlp):
    family = augment.weight_scale(mlp, (1e-3, 1e3))
    cfgs = jax.jit(jax.vmap(family.sample))(jax.random.split(jax.random.key(0), 2000))
    logs = np.log10(np.stack([np.asarray(s) for s in jax.tree.leaves(cfgs.scales)], -1))
    assert logs.shape == (2000, 4)  # 2 kernels + 2 biases, one scale each per task
    assert logs.min() >= -3 - 1e-5 and logs.max() <= 3 + 1e-5
    # uniform in log10 over [-3, 3]: mean 0, std 6 / sqrt(12), quartiles at -1.5 and 1.5
    np.testing.assert_allclose(logs.mean(0), 0.0, atol=0.15)
    np.testing.assert_allclose(logs.std(0), 6 / math.sqrt(12), rtol=0.05)
    np.testing.assert_allclose(np.quantile(logs, [0.25, 0.75]), [-1.5, 1.5], atol=0.15)
    assert abs(np.corrcoef(logs[:, 0], logs[:, 1])[0, 1]) < 0.1  # independent per tensor


def test_vmap_matches_loop_and_probability(mlp):
    family = augment.weight_scale(mlp, probability=0.5)
    assert family.name == "mlp-digits+wscale[0.001,1000,p=0.5]" and family.split == "train"

    def one(key):
        cfg = family.sample(key)
        task = family.task(cfg)
        params = task.init(key)
        return cfg, jax.value_and_grad(task.loss)(params, jax.random.fold_in(key, 1))

    keys = jax.random.split(jax.random.key(1), 8)
    batched, looped = jax.jit(lambda k: (jax.vmap(one)(k), jax.lax.map(one, k)))(keys)
    _tree_close(batched, looped, rtol=2e-5, atol=1e-6)
    cfgs = jax.jit(jax.vmap(family.sample))(jax.random.split(jax.random.key(2), 1000))
    unscaled = np.all([np.asarray(s) == 1.0 for s in jax.tree.leaves(cfgs.scales)], 0)
    assert 0.45 < unscaled.mean() < 0.55


def test_levels(mlp):
    key = jax.random.key(3)
    global_scales = augment.weight_scale(mlp, level="global").sample(key).scales
    values = [float(s) for s in jax.tree.leaves(global_scales)]
    assert len(set(values)) == 1 and values[0] != 1.0
    per_param = augment.weight_scale(mlp, level="parameter").sample(key).scales
    assert per_param["Dense_0"]["kernel"].shape == (64, 32)
    assert len(np.unique(np.asarray(per_param["Dense_0"]["kernel"]))) > 1000


def test_spec_json_round_trip(mlp):
    full = augment.check_spec({"weight_scale": [1e-2, 1e2]})
    assert full == {"weight_scale": {"range": [0.01, 100.0], "level": "tensor",
                                     "probability": 1.0}}
    assert augment.check_spec(json.loads(json.dumps(full))) == full
    assert augment.apply(mlp, full).name == "mlp-digits+wscale[0.01,100]"
    assert augment.apply(mlp, {"weight_scale": {"level": "global"}}).name == (
        "mlp-digits+wscale[0.001,1000,global]")
    assert augment.apply(mlp, None) is mlp and augment.apply(mlp, {}) is mlp


@pytest.mark.parametrize("spec, error, message", [
    ({"weight_scal": [1, 2]}, ValueError,
     "unknown augmentation(s) ['weight_scal']; valid: ['weight_scale']. 'weight_scal': "
     "did you mean 'weight_scale'?"),
    ({"weight_scale": {"levl": "global"}}, ValueError,
     "unknown weight_scale option(s) ['levl']; valid: ['range', 'level', 'probability']. "
     "'levl': did you mean 'level'?"),
    ({"weight_scale": [10, 1]}, ValueError,
     "weight_scale range must be finite with low <= high, got [10, 1]."),
    ({"weight_scale": [0, 1]}, ValueError,
     "weight_scale range must be positive (it is sampled log-uniformly), got [0, 1]."),
    ({"weight_scale": "wide"}, ValueError,
     "weight_scale range must be a (low, high) pair of numbers, got 'wide'."),
    ({"weight_scale": {"level": "layer"}}, ValueError,
     "weight_scale level must be one of ('tensor', 'global', 'parameter'), got 'layer'."),
    ({"weight_scale": {"probability": 1.5}}, ValueError,
     "weight_scale probability must be a number in [0, 1], got 1.5."),
    ([1e-3, 1e3], TypeError,
     "an augmentation spec is a dict like {'weight_scale': [1e-3, 1e3]} or None, got list: "
     "[0.001, 1000.0]."),
])
def test_spec_errors(mlp, spec, error, message):
    with pytest.raises(error) as info:
        augment.apply(mlp, spec)
    assert str(info.value) == message


def test_wraps_only_families():
    with pytest.raises(TypeError, match="weight_scale wraps a TaskFamily, got str"):
        augment.weight_scale("mlp-digits")


def test_augmented_family_trains_like_any_family(mlp):
    """An extreme per-tensor scaling still runs end to end (finite losses and grads)."""
    family = augment.weight_scale(mlp, (1e-3, 1e3))
    cfgs = jax.jit(jax.vmap(family.sample))(jax.random.split(jax.random.key(0), 4))

    def grad_norm(cfg):
        task = family.task(cfg)
        params = task.init(jax.random.key(1))
        loss, grads = jax.value_and_grad(task.loss)(params, jax.random.key(2))
        return loss, sum(jnp.sum(g**2) for g in jax.tree.leaves(grads))

    losses, norms = jax.jit(jax.vmap(grad_norm))(cfgs)
    assert np.all(np.isfinite(losses)) and np.all(np.isfinite(norms))
