"""Tabular data (deterministic splits, standardisation) and the held-out suite problems."""

import jax
import numpy as np
import pytest

from tasks import heldout, registry, tabular


@pytest.mark.parametrize("name", sorted(tabular.DATASETS))
def test_split_is_deterministic_and_standardised(name):
    data = tabular.load_tabular(name)
    tabular.load_tabular.cache_clear()
    again = tabular.load_tabular(name)
    assert again is not data
    for a, b in ((data.train_x, again.train_x), (data.test_y, again.test_y)):
        np.testing.assert_array_equal(a, b)
    n_train, n_test = len(data.train_x), len(data.test_x)
    assert abs(n_test / (n_train + n_test) - 0.2) < 0.01
    np.testing.assert_allclose(data.train_x.mean(0), 0.0, atol=1e-10)
    np.testing.assert_allclose(data.train_x.std(0), 1.0, rtol=1e-8)
    assert not data.train_x.flags.writeable
    if data.kind == "classification":
        # stratified: every class's share of the test split is within one example
        for c in range(data.num_classes):
            share = np.mean(data.train_y == c) * n_test
            assert abs(np.sum(data.test_y == c) - share) <= 1
    else:
        assert data.train_y.shape == (n_train, 1)
        np.testing.assert_allclose([data.train_y.mean(), data.train_y.std()], [0, 1], atol=1e-10)
    other = tabular.load_tabular(name, split_seed=1)
    assert not np.array_equal(other.train_x, data.train_x)


def test_known_sizes():
    sizes = {n: (len(d.train_x), len(d.test_x), d.num_features, d.num_classes)
             for n, d in ((n, tabular.load_tabular(n)) for n in tabular.DATASETS)}
    assert sizes == {
        "iris": (120, 30, 4, 3), "wine": (142, 36, 13, 3), "breast_cancer": (455, 114, 30, 2),
        "diabetes": (353, 89, 10, 0), "moons": (800, 200, 2, 2), "circles": (800, 200, 2, 2),
        "friedman1": (800, 200, 10, 0)}


def test_suite_problems():
    names = heldout.names()
    assert len(names) >= 8 and len(set(names)) == len(names)
    described = [heldout.describe(n) for n in names]
    assert {d["dataset"] for d in described} >= {"iris", "wine", "breast_cancer", "diabetes"}
    assert {d["objective"] for d in described} == {"classify", "regress", "reconstruct"}
    assert [d["batch_size"] for d in described].count("full") == 1  # only the convex one
    assert heldout.describe("cancer-logreg") == {
        "name": "cancer-logreg", "dataset": "breast_cancer", "objective": "classify",
        "loss": "softmax cross-entropy + 0.001/2 ‖θ‖²", "architecture": "linear 30-2",
        "num_params": 62, "batch_size": "full", "num_train": 455, "num_test": 114}
    assert heldout.describe("wine-deep-gelu")["architecture"] == "MLP 13-64-64-64-64-64-3 gelu"
    # no suite dataset is a meta-training family
    assert not set(registry.names()) & set(names)
    with pytest.raises(KeyError, match="unknown held-out problem 'wine-deep'.*Did you mean "
                                       "'wine-deep-gelu'"):
        heldout.get("wine-deep")


def test_regression_loss_and_full_batch():
    family = heldout.family("diabetes-tanh")
    assert family.split == "heldout" and family.name == "regress-diabetes/10-256-1/tanh/b32"
    task = family.task(family.sample(jax.random.key(0)))
    params = task.init(jax.random.key(1))
    data = tabular.load_tabular("diabetes")
    w0, b0 = (np.asarray(params["Dense_0"][k], np.float64) for k in ("kernel", "bias"))
    w1, b1 = (np.asarray(params["Dense_1"][k], np.float64) for k in ("kernel", "bias"))
    key = jax.random.key(2)
    index = np.asarray(jax.random.randint(key, (32,), 0, 353))
    pred = np.tanh(data.train_x[index] @ w0 + b0) @ w1 + b1
    np.testing.assert_allclose(task.loss(params, key), np.mean((pred - data.train_y[index]) ** 2),
                               rtol=1e-4)
    test_pred = np.tanh(data.test_x @ w0 + b0) @ w1 + b1
    np.testing.assert_allclose(task.eval_loss(params, key, "test"),
                               np.mean((test_pred - data.test_y) ** 2), rtol=1e-4)
    # the convex problem trains on the whole split: the loss does not depend on the key
    convex = heldout.family("cancer-logreg")
    task = convex.task(convex.sample(jax.random.key(0)))
    params = task.init(jax.random.key(1))
    losses = [float(task.loss(params, jax.random.key(k))) for k in (5, 6)]
    assert losses[0] == losses[1]
    l2 = 0.5 * 1e-3 * sum(float(np.sum(np.asarray(p) ** 2)) for p in jax.tree.leaves(params))
    np.testing.assert_allclose(task.loss(params, key) - task.eval_loss(params, key, "train"), l2,
                               rtol=1e-3)


def test_autoencoder_targets_are_the_inputs():
    family = heldout.family("cancer-autoencoder")
    task = family.task(family.sample(jax.random.key(0)))
    zero = jax.tree.map(np.zeros_like, task.init(jax.random.key(1)))
    # a zero net outputs 0; standardised features have mean square 1 on the train split
    np.testing.assert_allclose(task.eval_loss(zero, jax.random.key(0), "train"), 1.0, rtol=1e-5)


@pytest.mark.parametrize("kwargs, message", [
    (dict(dataset="digits", objective="classify"), "dataset must be one of"),
    (dict(dataset="iris", objective="regress"),
     "objective 'regress' does not fit the classification dataset 'iris'; use 'classify' or "
     "'reconstruct'."),
    (dict(dataset="diabetes", objective="classify"), "use 'regress' or 'reconstruct'"),
    (dict(dataset="iris", objective="cluster"), "objective must be one of"),
    (dict(dataset="iris", objective="classify", activation="swishy"), "activations must be"),
    (dict(dataset="iris", objective="classify", batch_size=0), "batch_size must be a positive"),
])
def test_config_errors(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        tabular.TabularConfig(**kwargs)
