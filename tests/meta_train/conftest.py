"""Fixtures of the meta_train tests."""

import pytest

from helpers.systems import TOY_FAMILY
from tasks.base import TaskFamily


@pytest.fixture
def toy_family() -> TaskFamily:
    """An 8-d noisy diagonal quadratic family (condition number up to e^2)."""
    return TOY_FAMILY
