"""Fixtures for the learned-optimizer tests."""

import pytest

import l2o
from helpers.lopt import ARCHITECTURES


@pytest.fixture(params=ARCHITECTURES)
def lopt(request):
    """Every registered architecture (all but the guarded wrapper) with its default config."""
    return l2o.registry.get(request.param)
