"""The `LearnedOptimizer` base class: what a subclass must implement and what it inherits."""

import dataclasses
import warnings

import jax
import jax.numpy as jnp
import optax
import pytest

import l2o
from l2o.flat import count_params


@dataclasses.dataclass(frozen=True, repr=False)
class ScaledSign(l2o.LearnedOptimizer):
    """updates = -exp(theta["log_lr"]) * sign(grads); a minimal complete subclass."""

    learning_rate: float = 0.1

    name = "scaled-sign"

    def feature_names(self):
        return ["sign(g)"]

    def init_meta_params(self, key):
        return {"log_lr": jnp.log(jnp.float32(self.learning_rate))}

    def init(self, theta, params, num_steps):
        return jnp.zeros((), jnp.int32)

    def update(self, theta, grads, state, params, loss=None):
        step = -jnp.exp(theta["log_lr"])
        return jax.tree.map(lambda g: step * jnp.sign(g), grads), state + 1


def test_a_subclass_missing_a_method_cannot_be_built():
    @dataclasses.dataclass(frozen=True)
    class NoFeatures(l2o.LearnedOptimizer):
        name = "no-features"

        def init_meta_params(self, key):
            return {}

        def init(self, theta, params, num_steps):
            return ()

        def update(self, theta, grads, state, params, loss=None):
            return grads, state

    with pytest.raises(TypeError, match="abstract method.*feature_names"):
        NoFeatures()


def test_a_subclass_inherits_description_config_and_optax_form():
    lopt = ScaledSign(0.5)
    assert repr(lopt) == "ScaledSign(learning_rate=0.5, num_meta_params=1)"
    assert lopt.summary().splitlines() == [
        "ScaledSign (name 'scaled-sign')", "  learning_rate: 0.5", "  features: sign(g)",
        "  meta-parameters: 1"]
    assert lopt.uses_loss is False and lopt.needs_next_loss_fn is False
    assert lopt.to_config() == {"learning_rate": 0.5}
    assert ScaledSign.from_config(lopt.to_config()) == lopt
    with pytest.raises(TypeError, match=r"ScaledSign has no config field\(s\) \['lr'\]"):
        ScaledSign.from_config({"lr": 0.5})
    theta = lopt.init_meta_params(jax.random.key(0))
    tx = lopt.as_optax(theta, num_steps=10)
    params = {"w": jnp.array([1.0, -2.0])}
    updates, _ = tx.update({"w": jnp.array([3.0, -4.0])}, tx.init(params), params)
    assert updates["w"].tolist() == pytest.approx([-0.5, 0.5])
    with pytest.raises(ValueError, match="population axis"):
        lopt.check_meta_params({"log_lr": jnp.zeros(2)})


@pytest.mark.parametrize("name", l2o.registry.names())
def test_registered_optimizers_count_their_meta_parameters(name):
    lopt = l2o.registry.get(name)
    assert lopt.num_meta_params() == count_params(lopt.init_meta_params(jax.random.key(0)))


def test_as_optax_requires_num_steps_and_names_it():
    lopt = l2o.MLPOptimizer(hidden_sizes=(4,))
    theta = lopt.init_meta_params(jax.random.key(0))
    with pytest.raises(ValueError, match="MLPOptimizer.as_optax needs num_steps"):
        lopt.as_optax(theta)
    with pytest.raises(ValueError, match="MLPOptimizer.as_optax needs num_steps"):
        l2o.as_optax(lopt, theta)
    with pytest.raises(TypeError, match="num_steps"):
        lopt.init(theta, {"w": jnp.zeros(3)})


def test_guarded_optimizer_shares_the_description():
    guarded = l2o.GuardedOptimizer(l2o.MLPOptimizer(hidden_sizes=(4,)), optax.sgd(0.1))
    assert guarded.feature_names() == guarded.learned.feature_names()
    assert guarded.num_meta_params() == guarded.learned.num_meta_params()
    assert repr(guarded).startswith("GuardedOptimizer(learned=MLPOptimizer(hidden_sizes=(4,),")
    assert "  shadow: True" in guarded.summary().splitlines()


def test_old_home_of_guarded_optimizer_warns():
    import l2o.guard

    with pytest.warns(DeprecationWarning, match="import it from l2o or l2o.guarded"):
        cls = l2o.guard.GuardedOptimizer
    assert cls is l2o.GuardedOptimizer
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(AttributeError, match="no attribute 'Guarded'"):
            l2o.guard.Guarded  # noqa: B018


def test_public_names_resolve():
    assert {"GuardedOptimizer", "LoadedOptimizer", "OptaxSpec", "guard_stats",
            "loss_guarded"} <= set(l2o.__all__)
    assert [name for name in l2o.__all__ if not hasattr(l2o, name)] == []
