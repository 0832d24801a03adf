"""Fixtures for the learned-optimizer tests."""

import pytest

import l2o


@pytest.fixture(params=l2o.registry.names())
def lopt(request):
    """Every registered learned optimizer with its default config."""
    return l2o.registry.get(request.param)
