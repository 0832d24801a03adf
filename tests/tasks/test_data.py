"""Datasets through tfds.data_source: digits split integrity, caching, mocks, errors."""

import hashlib

import numpy as np
import pytest
import tensorflow_datasets as tfds
from sklearn.datasets import load_digits

from tasks import data, registry


@pytest.fixture(scope="module")
def digits_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("tfds"))


@pytest.fixture(scope="module")
def digits(digits_dir):
    return data.load_dataset("digits", data_dir=digits_dir)


def _row_hashes(images, labels):
    return {hashlib.sha1(i.tobytes() + bytes([int(l)])).hexdigest() for i, l in zip(images, labels)}


def test_digits_shapes_and_values(digits):
    assert digits.train_images.shape == (1437, 8, 8, 1)
    assert digits.test_images.shape == (360, 8, 8, 1)
    assert digits.train_images.dtype == np.uint8 and digits.train_labels.dtype == np.int32
    assert digits.num_classes == 10 and digits.image_shape == (8, 8, 1)
    # every sklearn digit appears exactly once across the two splits, pixel-exact
    source = load_digits()
    expected = np.round(source.images * 255.0 / 16.0).astype(np.uint8)[..., None]
    both_images = np.concatenate([digits.train_images, digits.test_images])
    both_labels = np.concatenate([digits.train_labels, digits.test_labels])
    assert _row_hashes(both_images, both_labels) == _row_hashes(expected, source.target)
    # stratified: each class has 35..37 test images
    counts = np.bincount(digits.test_labels, minlength=10)
    assert counts.sum() == 360 and counts.min() >= 35 and counts.max() <= 37


def test_digits_splits_do_not_overlap(digits, digits_dir):
    train = _row_hashes(digits.train_images, digits.train_labels)
    test = _row_hashes(digits.test_images, digits.test_labels)
    assert len(train) == 1437 and len(test) == 360
    assert not train & test
    train_images = {i.tobytes() for i in digits.train_images}
    assert not train_images & {i.tobytes() for i in digits.test_images}
    # by source index, read straight from the array_record files
    index = {
        split: {int(r["index"]) for r in tfds.data_source(
            "l2o_digits", data_dir=digits_dir, split=split, download=False)}
        for split in ("train", "test")
    }
    assert not index["train"] & index["test"]
    assert index["train"] | index["test"] == set(range(1797))


def test_cached_and_read_only(digits, digits_dir):
    assert data.load_dataset("digits", data_dir=digits_dir) is digits
    with pytest.raises(ValueError):
        digits.train_images[0, 0, 0, 0] = 1


def test_env_var_selects_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path))
    assert data.resolve_data_dir() == str(tmp_path)
    assert data.resolve_data_dir("/elsewhere") == "/elsewhere"
    loaded = data.load_dataset("digits")
    assert loaded.train_images.shape == (1437, 8, 8, 1)
    assert (tmp_path / "l2o_digits").is_dir()


def test_missing_dataset_error_says_where_and_how(tmp_path):
    with pytest.raises(data.DatasetNotFoundError) as err:
        data.load_dataset("fashion_mnist", data_dir=str(tmp_path))
    message = str(err.value)
    assert str(tmp_path / "fashion_mnist") in message
    assert "tfds build fashion_mnist" in message and "array_record" in message
    assert isinstance(err.value, FileNotFoundError)
    # the family boundary surfaces the same error
    with pytest.raises(data.DatasetNotFoundError):
        registry.get("mlp-digits", dataset="fashion_mnist", data_dir=str(tmp_path))


def test_unknown_dataset_name():
    with pytest.raises(ValueError, match="cifar10"):
        data.load_dataset("imagenet")
    with pytest.raises(ValueError, match="dataset must be one of"):
        registry.get("conv-digits", dataset="svhn")


@pytest.mark.parametrize("name, shape", [("mnist", (28, 28, 1)), ("cifar10", (32, 32, 3))])
def test_mock_data_through_data_source(name, shape, tmp_path):
    with tfds.testing.mock_data(num_examples=12):
        loaded = data.load_dataset(name, data_dir=str(tmp_path))
    assert loaded.train_images.shape == (12, *shape) and loaded.test_images.shape == (12, *shape)
    assert loaded.image_shape == shape and loaded.num_classes == 10
    assert loaded.train_labels.min() >= 0 and loaded.train_labels.max() < 10
    # image families adapt their shapes to the dataset
    import jax

    family = registry.get("mlp-digits", dataset=name, data_dir=str(tmp_path), batch_size=4)
    task = family.task(family.sample(jax.random.key(0)))
    params = task.init(jax.random.key(1))
    assert params["Dense_0"]["kernel"].shape == (int(np.prod(shape)), 32)
    assert np.isfinite(float(task.loss(params, jax.random.key(2))))
