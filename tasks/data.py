"""Image datasets as in-memory numpy arrays, read through ``tfds.data_source``.

No TensorFlow: every dataset is read from TFDS's array_record files. The default,
``"digits"``, is built offline on first use from scikit-learn's bundled digits (see
``tasks/digits_builder.py``); ``"mnist"``, ``"fashion_mnist"`` and ``"cifar10"`` are
read the same way when they have been prepared (in array_record format) in the data
directory. The data directory is, in order: the ``data_dir`` argument, the
``L2O_DATA_DIR`` environment variable, ``~/.cache/l2o/tensorflow_datasets``.

Loaded datasets are cached per ``(name, data_dir)`` for the life of the process.
"""

from __future__ import annotations

import dataclasses
import functools
import os

import numpy as np

DEFAULT_DATA_DIR = os.path.join("~", ".cache", "l2o", "tensorflow_datasets")
DATA_DIR_ENV = "L2O_DATA_DIR"

# user-facing name -> TFDS builder name
DATASETS: dict[str, str] = {
    "digits": "l2o_digits",
    "mnist": "mnist",
    "fashion_mnist": "fashion_mnist",
    "cifar10": "cifar10",
}


class DatasetNotFoundError(FileNotFoundError):
    """A dataset is not prepared (as array_record) in the data directory."""


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    """A labelled image dataset held in memory (read-only numpy arrays).

    Attributes:
      name: user-facing name, e.g. ``"digits"``.
      train_images / test_images: uint8 ``(N, H, W, C)``.
      train_labels / test_labels: int32 ``(N,)`` in ``[0, num_classes)``.
      num_classes: number of classes.
      image_shape: ``(H, W, C)``.
    """

    name: str
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    num_classes: int
    image_shape: tuple[int, int, int]


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> str:
    """The data directory: ``data_dir``, else ``$L2O_DATA_DIR``, else the default cache."""
    chosen = data_dir if data_dir is not None else os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR
    return os.path.abspath(os.path.expanduser(os.fspath(chosen)))


def _read_all(source) -> list[dict]:
    """Every record of a TFDS data source, in order, read in chunks."""
    size, chunk, records = len(source), 4096, []
    for start in range(0, size, chunk):
        keys = list(range(start, min(start + chunk, size)))
        try:
            records.extend(source.__getitems__(keys))
        except TypeError:  # data sources without batched reads (e.g. tfds mocks)
            records.extend(source[k] for k in keys)
    return records


def _missing_message(name: str, builder_name: str, data_dir: str, cause: Exception) -> str:
    folder = os.path.join(data_dir, builder_name)
    if not os.path.isdir(folder):
        reason = f"{folder} does not exist"
    else:
        detail = str(cause).splitlines()[0] if str(cause) else type(cause).__name__
        reason = f"{folder} exists but TFDS cannot read it as array_record: {detail}"
    return (
        f"dataset {name!r} is not prepared in array_record format under {data_dir} "
        f"({reason}). To fix: on a machine with internet and TensorFlow Datasets, run\n"
        f"    tfds build {builder_name} --data_dir <DIR> --file_format array_record\n"
        f"then copy <DIR>/{builder_name} into {data_dir} (or pass data_dir=<DIR> or set "
        f"${DATA_DIR_ENV}=<DIR>)."
    )


def _load_split(name: str, builder_name: str, data_dir: str, split: str):
    import tensorflow_datasets as tfds

    try:
        source = tfds.data_source(builder_name, data_dir=data_dir, split=split, download=False)
    except Exception as err:  # TFDS raises several types for "not there" / "wrong format"
        raise DatasetNotFoundError(_missing_message(name, builder_name, data_dir, err)) from err
    records = _read_all(source)
    if not records:
        raise DatasetNotFoundError(f"dataset {name!r} split {split!r} in {data_dir} is empty.")
    images = np.stack([np.asarray(r["image"], np.uint8) for r in records])
    if images.ndim == 3:  # (N, H, W) -> (N, H, W, 1)
        images = images[..., None]
    labels = np.asarray([int(r["label"]) for r in records], np.int32)
    num_classes = source.dataset_info.features["label"].num_classes
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels, int(num_classes)


def _prepare_digits(data_dir: str) -> None:
    from tasks.digits_builder import L2oDigits

    builder = L2oDigits(data_dir=data_dir, file_format="array_record")
    if builder.is_prepared():
        return
    try:
        builder.download_and_prepare()
    except Exception:
        # Another process may have finished preparing the same directory first.
        if not L2oDigits(data_dir=data_dir, file_format="array_record").is_prepared():
            raise


@functools.cache
def _load_cached(name: str, data_dir: str) -> Dataset:
    builder_name = DATASETS[name]
    if name == "digits":
        _prepare_digits(data_dir)
    train_images, train_labels, num_classes = _load_split(name, builder_name, data_dir, "train")
    test_images, test_labels, _ = _load_split(name, builder_name, data_dir, "test")
    return Dataset(
        name=name,
        train_images=train_images, train_labels=train_labels,
        test_images=test_images, test_labels=test_labels,
        num_classes=num_classes, image_shape=tuple(int(s) for s in train_images.shape[1:]),
    )


def load_dataset(name: str = "digits", data_dir: str | os.PathLike | None = None) -> Dataset:
    """Load dataset ``name`` (train and test splits) from ``data_dir`` (see module doc).

    ``"digits"`` is prepared into the data directory on first use (offline, < 1 s).

    Raises:
      ValueError: unknown ``name`` (the message lists the valid ones).
      DatasetNotFoundError: the dataset is not prepared there (the message says where it
        looked and how to prepare it).
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {sorted(DATASETS)}.")
    return _load_cached(name, resolve_data_dir(data_dir))


def clear_cache() -> None:
    """Forget every dataset loaded in this process (e.g. after preparing new data)."""
    _load_cached.cache_clear()
