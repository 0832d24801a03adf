"""OptaxSpec: an optax optimizer as hashable, JSON-able data."""

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from l2o import OptaxSpec


def test_spec_builds_the_optimizer_it_names():
    spec = OptaxSpec("adamw", learning_rate=1e-2, weight_decay=0.1)
    params = {"w": jnp.array([1.0, -2.0])}
    grads = {"w": jnp.array([0.5, 0.25])}
    for tx in (spec.build(), optax.adamw(learning_rate=1e-2, weight_decay=0.1)):
        updates, _ = tx.update(grads, tx.init(params), params)
        np.testing.assert_allclose(updates["w"], [-0.011, -0.008], rtol=1e-5)


def test_spec_is_data():
    spec = OptaxSpec("sgd", learning_rate=0.1, momentum=0.9)
    assert spec.to_dict() == {"name": "sgd", "learning_rate": 0.1, "momentum": 0.9}
    assert OptaxSpec.from_dict(spec.to_dict()) == spec
    assert hash(OptaxSpec("sgd", momentum=0.9, learning_rate=0.1)) == hash(spec)
    assert spec != OptaxSpec("sgd", learning_rate=0.1)
    assert repr(spec) == "OptaxSpec('sgd', learning_rate=0.1, momentum=0.9)"
    with pytest.raises(AttributeError, match="immutable"):
        spec.name = "adam"


def test_spec_errors_name_the_problem():
    with pytest.raises(ValueError, match="'adamm' is not an optax optimizer.*Did you mean 'adam'"):
        OptaxSpec("adamm", learning_rate=1e-3)
    with pytest.raises(ValueError, match="returned a .*not a GradientTransformation"):
        OptaxSpec("EmptyState")
    with pytest.raises(TypeError, match=r"sgd\(learning_rate=...\) must be a number"):
        OptaxSpec("sgd", learning_rate=object())
    with pytest.raises(TypeError, match="unexpected keyword argument 'lr'"):
        OptaxSpec("sgd", lr=0.1)
    with pytest.raises(ValueError, match="a dict with a 'name' key"):
        OptaxSpec.from_dict({"learning_rate": 0.1})
