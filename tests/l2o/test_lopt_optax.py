"""as_optax: flax + optax training on digits, extra-arg handling, boundary errors, registry."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from sklearn.datasets import load_digits

import l2o


class _DigitsMLP(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.Dense(10)(jnp.tanh(nn.Dense(32)(x)))


def _digits():
    data = load_digits()
    return jnp.asarray(data.data / 16.0, jnp.float32), jnp.asarray(data.target)


def test_mlp_lopt_trains_flax_model_on_digits():
    images, labels = _digits()
    model = _DigitsMLP()
    params = model.init(jax.random.key(0), images[:1])
    lopt = l2o.MLPOptimizer()
    tx = lopt.as_optax(lopt.init_meta_params(jax.random.key(1)), num_steps=150)

    def loss_fn(params, key):
        idx = jax.random.randint(key, (128,), 0, images.shape[0])
        logits = model.apply(params, images[idx])
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels[idx]).mean()

    @jax.jit
    def train(params):
        def step(carry, key):
            params, state = carry
            loss, grads = jax.value_and_grad(loss_fn)(params, key)
            updates, state = tx.update(grads, state, params, value=loss, next_loss_fn=loss_fn)
            return (optax.apply_updates(params, updates), state), loss

        (params, _), losses = jax.lax.scan(step, (params, tx.init(params)), jax.random.split(jax.random.key(2), 150))
        return params, losses

    params, losses = train(params)
    full_loss = optax.softmax_cross_entropy_with_integer_labels(model.apply(params, images), labels).mean()
    print("digits full-batch loss after 150 steps:", float(full_loss))
    assert float(losses[0]) > 2.0  # ~log(10) at the start
    assert float(full_loss) < 0.2  # untrained MLP optimizer ~ Adam(1e-2): ~0.1 here


def test_value_is_forwarded_and_chain_works():
    lopt = l2o.LSTMOptimizer(use_loss=True)
    theta = lopt.init_meta_params(jax.random.key(0))
    params = {"w": jnp.ones(3)}
    grads = {"w": jnp.array([0.1, -0.2, 0.3])}
    tx = optax.chain(optax.clip_by_global_norm(10.0), lopt.as_optax(theta, num_steps=20))
    state = tx.init(params)
    u_low, _ = tx.update(grads, state, params, value=jnp.float32(0.01))
    u_high, _ = tx.update(grads, state, params, value=jnp.float32(100.0))
    direct, _ = lopt.update(theta, grads, lopt.init(theta, params, 20), params, jnp.float32(0.01))
    np.testing.assert_allclose(u_low["w"], direct["w"], rtol=1e-6)
    assert float(jnp.max(jnp.abs(u_low["w"] - u_high["w"]))) > 1e-6
    with pytest.raises(ValueError, match="uses the loss.*value=loss"):
        tx.update(grads, state, params)


def test_value_optional_when_unused_and_params_required():
    lopt = l2o.MLPOptimizer()
    tx = l2o.as_optax(lopt, lopt.init_meta_params(jax.random.key(0)), num_steps=10)
    params = {"w": jnp.ones(3)}
    state = tx.init(params)
    assert int(state.num_steps) == 10
    updates, state = tx.update(params, state, params)  # no value: fine for the MLP
    assert int(state.step) == 1 and bool(jnp.all(jnp.isfinite(updates["w"])))
    with pytest.raises(ValueError, match="needs the current params"):
        tx.update(params, state)


def test_as_optax_rejects_bad_theta_and_horizon():
    lopt = l2o.MLPOptimizer()
    theta = lopt.init_meta_params(jax.random.key(0))
    population = jax.tree.map(lambda x: jnp.stack([x, x]), theta)
    with pytest.raises(ValueError, match="population axis"):
        lopt.as_optax(population, num_steps=10)
    with pytest.raises(ValueError, match="expected leaves"):
        lopt.as_optax({"mlp": theta["mlp"]}, num_steps=10)
    with pytest.raises(ValueError, match="num_steps"):
        lopt.as_optax(theta, num_steps=0)


def test_registry():
    assert l2o.registry.names() == ["guarded", "lstm", "mlp"]
    assert l2o.registry.get("mlp", hidden_sizes=[16]) == l2o.MLPOptimizer(hidden_sizes=(16,))
    assert isinstance(l2o.registry.get("lstm", hidden_size=4), l2o.LSTMOptimizer)
    with pytest.raises(KeyError, match="unknown learned optimizer 'adam'.*'guarded', 'lstm', 'mlp'"):
        l2o.registry.get("adam")
    with pytest.raises(TypeError, match="no config field.*'hidden'.*valid"):
        l2o.registry.get("mlp", hidden=3)


def test_flax_example_runs(monkeypatch, capsys):
    import pathlib
    import runpy

    example = pathlib.Path(__file__).parents[2] / "examples" / "flax_training_loop.py"
    monkeypatch.setattr("sys.argv", [str(example), "--steps", "60"])
    runpy.run_path(str(example), run_name="__main__")
    lines = [line.split() for line in capsys.readouterr().out.splitlines() if line.startswith("step")]
    first_loss, last_loss = float(lines[0][4]), float(lines[-1][4])
    assert len(lines) == 3 and first_loss > 2.0 and last_loss < 0.5 * first_loss
