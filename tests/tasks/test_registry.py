"""Registry: names, errors for bad names/splits/overrides, fast import without data."""

import subprocess
import sys

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
    assert tasks.Task is not None
