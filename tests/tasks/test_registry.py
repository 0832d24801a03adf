"""Registry: names, errors for bad names/splits/overrides, fast import without data."""

import functools
import subprocess
import sys

import jax
import pytest

import tasks
from tasks import registry
from tasks.base import TaskFamily


def test_names_listed_and_families_build():
    assert {"quadratic", "quadratic-lsq"} <= set(registry.names())
    family = registry.get("quadratic", split="heldout")
    assert isinstance(family, TaskFamily) and family.split == "heldout"


def test_unknown_family_lists_names():
    with pytest.raises(KeyError) as err:
        registry.get("no-such-family")
    for name in registry.names():
        assert name in str(err.value)


def test_bad_split_and_override():
    with pytest.raises(ValueError, match="heldout"):
        registry.get("quadratic", split="validation")
    with pytest.raises(TypeError, match="condition_range"):
        registry.get("quadratic", condition=3)
    with pytest.raises(ValueError, match="dim must be a positive integer, got -2"):
        registry.get("quadratic", dim=-2)
    with pytest.raises(ValueError, match="low <= high"):
        registry.get("quadratic", condition_range=(100.0, 10.0))


def test_register_rejects_duplicates():
    with pytest.raises(ValueError, match="already registered"):
        registry.register("quadratic", lambda: None, lambda: None)


def test_import_is_lazy_about_data():
    code = (
        "import sys, tasks; print(tasks.registry.names());"
        "print('tensorflow_datasets' in sys.modules, 'sklearn' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    lines = out.stdout.strip().splitlines()
    assert "quadratic" in lines[0]
    assert lines[1] == "False False"


def test_equal_arguments_give_the_same_family():
    assert registry.get("quadratic", dim=4) is registry.get("quadratic", dim=4)
    assert registry.get("mlp-digits", hidden_sizes=[16]) is registry.get("mlp-digits", hidden_sizes=(16,))
    assert registry.get("quadratic") is not registry.get("quadratic", split="heldout")
    assert registry.get("quadratic", dim=4) != registry.get("quadratic", dim=5)


def test_a_rebuilt_family_does_not_recompile():
    traces = []

    @functools.partial(jax.jit, static_argnums=0)
    def first_loss(family, key):
        traces.append(family.name)
        task = family.task(family.sample(key))
        return task.loss(task.init(key), key)

    for _ in range(2):
        first_loss(registry.get("rosenbrock", dim=3), jax.random.key(0))
    assert traces == ["rosenbrock"]


def test_family_names_carry_their_dataset(monkeypatch, tmp_path):
    import tasks.classifier
    from tasks.data import resolve_data_dir

    digits = tasks.registry.get("mlp-digits")
    assert digits.name == "mlp-digits"
    # Any dataset name gets the digits arrays: only the naming is under test here. The
    # data_dir of its own keeps these families apart from every other test's.
    real, digits_dir = tasks.classifier.device_data, resolve_data_dir(None)
    monkeypatch.setattr(tasks.classifier, "device_data", lambda name, data_dir: real("digits", digits_dir))
    for family, dataset in (("mlp-digits", "mnist"), ("conv-digits", "fashion_mnist"),
                            ("logreg-digits", "cifar10"), ("ae-digits", "mnist")):
        built = registry.get(family, dataset=dataset, data_dir=str(tmp_path))
        assert built.name == f"{family.split('-')[0]}-{dataset}"
        assert built.task(built.sample(jax.random.key(0))).name.startswith(built.name)
