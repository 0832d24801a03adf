"""Image-classifier families: exact loss/accuracy formulas, init, activations, training."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from tasks import registry
from tasks.data import load_dataset


def _numpy_cross_entropy(logits, labels):
    logits = logits - logits.max(-1, keepdims=True)
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    return -log_probs[np.arange(len(labels)), labels].mean()


def _normalised(images, train_images):
    pixels = train_images.astype(np.float64) / 255.0
    return (images.astype(np.float64) / 255.0 - pixels.mean()) / pixels.std()


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.mark.parametrize("split", ["train", "heldout"])
def test_logreg_loss_matches_reference(digits, split):
    family = registry.get("logreg-digits", split=split)
    cfg = family.sample(jax.random.key(3))
    task = family.task(cfg)
    params = task.init(jax.random.key(4))
    w, b = (np.asarray(params["Dense_0"][k], np.float64) for k in ("kernel", "bias"))
    key = jax.random.key(5)
    batch = 128 if split == "train" else 32
    index = np.asarray(jax.random.randint(key, (batch,), 0, 1437))
    x = _normalised(digits.train_images[index], digits.train_images).reshape(batch, -1)
    expected = _numpy_cross_entropy(x @ w + b, digits.train_labels[index])
    l2 = 0.0 if split == "train" else 1e-3
    expected += 0.5 * l2 * (np.sum(w**2) + np.sum(b**2))
    np.testing.assert_allclose(jax.jit(task.loss)(params, key), expected, rtol=1e-4)
    # the test split (360 images) is evaluated whole: key-independent, exact accuracy
    x_test = _normalised(digits.test_images, digits.train_images).reshape(360, -1)
    logits = x_test @ w + b
    metrics = jax.jit(task.metrics, static_argnums=2)
    m1, m2 = metrics(params, jax.random.key(0), "test"), metrics(params, jax.random.key(1), "test")
    np.testing.assert_allclose(m1["loss"], _numpy_cross_entropy(logits, digits.test_labels), rtol=1e-4)
    np.testing.assert_allclose(m1["accuracy"], np.mean(logits.argmax(-1) == digits.test_labels))
    np.testing.assert_array_equal(m1["loss"], m2["loss"])
    np.testing.assert_allclose(task.eval_loss(params, jax.random.key(0), "test"), m1["loss"])


def test_param_shapes_and_init_statistics():
    shapes = lambda fam: jax.tree.map(  # noqa: E731
        lambda p: p.shape, fam.task(fam.sample(jax.random.key(0))).init(jax.random.key(1)))
    assert shapes(registry.get("mlp-digits")) == {
        "Dense_0": {"kernel": (64, 32), "bias": (32,)},
        "Dense_1": {"kernel": (32, 10), "bias": (10,)}}
    heldout = shapes(registry.get("mlp-digits", split="heldout"))
    assert [heldout[f"Dense_{i}"]["kernel"] for i in range(3)] == [(64, 64), (64, 64), (64, 10)]
    conv = shapes(registry.get("conv-digits"))
    assert conv["Conv_0"]["kernel"] == (3, 3, 1, 8) and conv["Conv_1"]["kernel"] == (3, 3, 8, 16)
    assert conv["Dense_0"]["kernel"] == (4 * 4 * 16, 10)
    # kernels ~ init_scale * N(0, 1/fan_in), biases 0
    family = registry.get("mlp-digits", hidden_sizes=(256,), init_scale_range=(2.0, 2.0))
    params = family.task(family.sample(jax.random.key(0))).init(jax.random.key(1))
    kernel = np.asarray(params["Dense_0"]["kernel"])
    np.testing.assert_allclose(kernel.std(), 2.0 / 8.0, rtol=0.03)
    assert abs(kernel.mean()) < 0.01
    np.testing.assert_array_equal(params["Dense_0"]["bias"], 0.0)


def test_sampled_activation_selects_branch():
    mixed = registry.get("mlp-digits", activations=("tanh", "relu"))
    cfgs = jax.vmap(mixed.sample)(jax.random.split(jax.random.key(0), 16))
    assert set(np.asarray(cfgs.activation).tolist()) == {0, 1}
    single = {name: registry.get("mlp-digits", activations=(name,)) for name in ("tanh", "relu")}
    params = mixed.task(jax.tree.map(lambda c: c[0], cfgs)).init(jax.random.key(1))
    key = jax.random.key(2)
    batched = jax.jit(jax.vmap(lambda c: mixed.task(c).loss(params, key)))(cfgs)
    reference = {
        name: float(fam.task(jax.tree.map(lambda c: c[0], cfgs)).loss(params, key))
        for name, fam in single.items()
    }
    assert abs(reference["tanh"] - reference["relu"]) > 1e-3
    for index, loss in zip(np.asarray(cfgs.activation), np.asarray(batched)):
        np.testing.assert_allclose(loss, reference[("tanh", "relu")[index]], rtol=1e-5)


def test_minibatches_are_drawn_from_the_key():
    family = registry.get("mlp-digits")
    task = family.task(family.sample(jax.random.key(0)))
    params = task.init(jax.random.key(1))
    loss = jax.jit(task.loss)
    assert float(loss(params, jax.random.key(2))) == float(loss(params, jax.random.key(2)))
    assert float(loss(params, jax.random.key(2))) != float(loss(params, jax.random.key(3)))


def test_mlp_digits_reaches_90_percent_test_accuracy():
    """Reference setting (64-32-10, tanh, batch 128) trained with Adam for 300 steps."""
    family = registry.get("mlp-digits")
    task = family.task(family.sample(jax.random.key(0)))
    opt = optax.adam(1e-2)

    @jax.jit
    def train(key):
        params = task.init(key)

        def step(carry, k):
            p, s = carry
            grads = jax.grad(task.loss)(p, k)
            updates, s = opt.update(grads, s, p)
            return (optax.apply_updates(p, updates), s), None

        (params, _), _ = jax.lax.scan(step, (params, opt.init(params)), jax.random.split(key, 300))
        return task.metrics(params, key, "test"), task.metrics(task.init(key), key, "test")

    trained, initial = train(jax.random.key(7))
    assert float(initial["accuracy"]) < 0.4
    assert float(trained["accuracy"]) > 0.90, trained
    assert float(trained["loss"]) < 0.5 * float(initial["loss"])
