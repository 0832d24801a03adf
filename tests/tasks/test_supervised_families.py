"""ae-digits and teacher-regression: exact MSE formulas, data, training; the 'wide' mixture."""

import jax
import numpy as np
import optax
import pytest

from tasks import mixtures, registry
from tasks.data import load_dataset


def _forward(params, x, activation):
    """NumPy forward pass of tasks.mlp.MLP (Dense_i kernels and biases)."""
    layers = sorted(params, key=lambda name: int(name.split("_")[1]))
    for i, name in enumerate(layers):
        x = x @ np.asarray(params[name]["kernel"], np.float64) + np.asarray(params[name]["bias"])
        if i < len(layers) - 1:
            x = activation(x)
    return x


def _relu(x):
    return np.maximum(x, 0.0)


def test_autoencoder_loss_matches_reference():
    digits = load_dataset("digits")
    family = registry.get("ae-digits", split="heldout")  # 64-64-16-64-64, relu
    task = family.task(family.sample(jax.random.key(0)))
    params = jax.tree.map(lambda p: p + 0.05, task.init(jax.random.key(1)))
    assert [params[f"Dense_{i}"]["kernel"].shape for i in range(4)] == [
        (64, 64), (64, 16), (16, 64), (64, 64)]
    pixels = digits.train_images.astype(np.float64) / 255.0

    def normalised(images):
        return ((images.astype(np.float64) / 255.0 - pixels.mean()) / pixels.std()).reshape(
            len(images), -1)

    key = jax.random.key(2)
    index = np.asarray(jax.random.randint(key, (128,), 0, len(pixels)))
    x = normalised(digits.train_images[index])
    expected = np.mean((_forward(params, x, _relu) - x) ** 2)
    np.testing.assert_allclose(jax.jit(task.loss)(params, key), expected, rtol=1e-4)
    x_test = normalised(digits.test_images)  # the whole test split, key-independent
    metrics = jax.jit(task.metrics, static_argnums=2)(params, jax.random.key(9), "test")
    assert set(metrics) == {"loss"}
    np.testing.assert_allclose(metrics["loss"],
                               np.mean((_forward(params, x_test, _relu) - x_test) ** 2), rtol=1e-4)


def test_teacher_regression_data_and_loss():
    family = registry.get("teacher-regression", noise_range=(1e-6, 1e-6),
                          activations=("tanh",), num_train=256, num_test=64)
    sample = jax.jit(family.sample)
    cfg, again = sample(jax.random.key(3)), sample(jax.random.key(3))
    data = cfg.data
    assert data.train_x.shape == (256, 16) and data.train_y.shape == (256, 1)
    assert data.test_x.shape == (64, 16) and data.test_y.shape == (64, 1)
    np.testing.assert_array_equal(data.train_y, again.data.train_y)  # same key, same data
    other = sample(jax.random.key(4)).data
    assert not np.allclose(other.train_y, data.train_y)
    # targets standardised on the train split (noise 1e-6): mean 0, std 1
    np.testing.assert_allclose(np.mean(data.train_y), 0.0, atol=1e-5)
    np.testing.assert_allclose(np.std(data.train_y), 1.0, rtol=1e-4)
    np.testing.assert_allclose(np.std(np.asarray(data.train_x)), 1.0, atol=0.02)
    task = family.task(cfg)
    params = task.init(jax.random.key(5))
    key = jax.random.key(6)
    index = np.asarray(jax.random.randint(key, (128,), 0, 256))
    outputs = _forward(params, np.asarray(data.train_x, np.float64)[index], np.tanh)
    expected = np.mean((outputs - np.asarray(data.train_y)[index]) ** 2)
    np.testing.assert_allclose(jax.jit(task.loss)(params, key), expected, rtol=1e-4)
    full_train = _forward(params, np.asarray(data.train_x, np.float64), np.tanh)
    np.testing.assert_allclose(task.eval_loss(params, jax.random.key(0), "train"),
                               np.mean((full_train - np.asarray(data.train_y)) ** 2), rtol=1e-4)


@pytest.mark.parametrize("name", ["ae-digits", "teacher-regression"])
def test_adam_fits_new_families(name):
    """300 Adam steps cut the full-train MSE at least 4x (the tasks are learnable)."""
    family = registry.get(name, activations=("tanh",))
    task = family.task(family.sample(jax.random.key(0)))
    tx = optax.adam(1e-2)

    @jax.jit
    def train(params):
        def step(carry, t):
            params, state = carry
            grads = jax.grad(task.loss)(params, jax.random.key(t))
            updates, state = tx.update(grads, state)
            return (optax.apply_updates(params, updates), state), None

        (params, _), _ = jax.lax.scan(step, (params, tx.init(params)), np.arange(300))
        return params

    params = task.init(jax.random.key(1))
    before = float(task.eval_loss(params, jax.random.key(2), "train"))
    after = float(task.eval_loss(train(params), jax.random.key(2), "train"))
    assert after < before / 4, (before, after)


def test_activation_errors_name_the_choices():
    with pytest.raises(ValueError, match=r"activations must be a non-empty sequence of \["):
        registry.get("teacher-regression", activations=("swishy",))
    with pytest.raises(ValueError, match="teacher_activation must be one of"):
        registry.get("teacher-regression", teacher_activation="swishy")
    with pytest.raises(ValueError, match="num_train must be a positive integer, got 0"):
        registry.get("teacher-regression", num_train=0)


def test_wide_mixture_builds_on_training_data_only():
    entries = mixtures.get("wide")
    assert entries == mixtures.get("wide") and entries is not mixtures.get("wide")
    families = [mixtures.build(entry) for entry in entries]
    assert {f.split for f in families} == {"train"}
    names = [f.task(f.sample(jax.random.key(0))).name for f in families]
    assert len(set(names)) == len(names)
    # MLP depths 1-4, widths 16-256, four activations
    mlp = [e["overrides"] for e in entries if e["family"] == "mlp-digits"]
    assert {len(o["hidden_sizes"]) for o in mlp} == {1, 2, 3, 4}
    widths = {w for o in mlp for w in o["hidden_sizes"]}
    assert min(widths) == 16 and max(widths) == 256
    assert all(o["activations"] == ["tanh", "relu", "gelu", "sigmoid"] for o in mlp)
    datasets = {getattr(f, "name", "") for f in families}
    assert not any(d in str(datasets) for d in ("iris", "wine", "cancer", "diabetes", "moons"))
    augmented = mixtures.build({**entries[0], "augment": {"weight_scale": [1e-3, 1e3]}})
    assert augmented.name == "mlp-digits+wscale[0.001,1000]"
    with pytest.raises(KeyError, match="unknown mixture 'wid'"):
        mixtures.get("wid")
