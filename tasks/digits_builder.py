"""``l2o_digits``: scikit-learn's bundled 8x8 digits as an offline TFDS dataset.

A ``tfds.core.GeneratorBasedBuilder`` written in array_record format, so it is read
back with ``tfds.data_source`` and needs neither TensorFlow nor a network. The 1,797
images (16 gray levels) are rescaled to uint8 ``round(v * 255 / 16)``, shape (8, 8, 1),
and split once, deterministically and stratified by label, into 1,437 train and 360
test examples. Each example keeps its row ``index`` in ``sklearn.datasets.load_digits``
so the split can be audited. No image occurs twice in the source data, so the splits
share no image.

Importing this module registers the builder with TFDS (by class name -> ``l2o_digits``).
"""

from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

NUM_TEST = 360
SPLIT_SEED = 0


def digits_split_indices() -> dict[str, np.ndarray]:
    """Row indices of the train (1,437) and test (360) splits, stratified by label.

    Per class, rows are permuted with ``RandomState(SPLIT_SEED)`` and the first
    ``round(360 * class_count / 1797)`` (adjusted to total exactly 360) go to test.
    """
    from sklearn.datasets import load_digits

    labels = load_digits().target
    rng = np.random.RandomState(SPLIT_SEED)
    counts = np.bincount(labels)
    quota = np.floor(NUM_TEST * counts / counts.sum()).astype(int)
    remainder = NUM_TEST * counts / counts.sum() - quota
    quota[np.argsort(-remainder)[: NUM_TEST - quota.sum()]] += 1
    test = []
    for label, take in enumerate(quota):
        rows = rng.permutation(np.flatnonzero(labels == label))
        test.extend(rows[:take].tolist())
    test_idx = np.sort(np.asarray(test))
    train_idx = np.setdiff1d(np.arange(len(labels)), test_idx)
    return {"train": train_idx, "test": test_idx}


class L2oDigits(tfds.core.GeneratorBasedBuilder):
    """The scikit-learn digits, 8x8x1 uint8, 10 classes, 1,437 train / 360 test."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    # Set explicitly: TFDS would otherwise infer it through the `importlib_resources`
    # backport, which is not installed with Python >= 3.9. There is no checksums file
    # next to it, so nothing is ever downloaded.
    code_path = epath.Path(__file__)

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description="scikit-learn's bundled 8x8 handwritten digits (UCI optdigits test set).",
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Tensor(shape=(8, 8, 1), dtype=np.uint8),
                "label": tfds.features.ClassLabel(num_classes=10),
                "index": tfds.features.Scalar(dtype=np.int32),
            }),
            supervised_keys=("image", "label"),
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # nothing to download: the data ships with scikit-learn
        splits = digits_split_indices()
        return {split: self._generate_examples(rows) for split, rows in splits.items()}

    def _generate_examples(self, rows):
        from sklearn.datasets import load_digits

        digits = load_digits()
        images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
        for row in rows:
            yield int(row), {
                "image": images[row],
                "label": int(digits.target[row]),
                "index": np.int32(row),
            }
