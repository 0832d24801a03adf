"""save/load/load_pretrained: bit-exact round trip and every corruption error."""

import hashlib
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import serialization

import l2o
from l2o import io as lio


@pytest.fixture
def saved(tmp_path):
    lopt = l2o.MLPOptimizer(hidden_sizes=(8,), momentum_decays=(0.5, 0.9))
    theta = lopt.init_meta_params(jax.random.key(0))
    theta["log_lr"] = jnp.float32(-4.321)
    meta = {"task_families": ["quadratic"], "steps": 3, "strategy": "pes", "seed": np.int64(7)}
    json_path, weights_path = l2o.save(tmp_path / "opt.json", lopt, theta, meta)
    return lopt, theta, json_path, weights_path


def test_round_trip_is_bit_exact(saved, lopt, tmp_path):
    lopt_saved, theta, json_path, weights_path = saved
    assert json_path.name == "opt.json" and weights_path.name == "opt.msgpack"
    loaded_lopt, loaded_theta, record = l2o.load(tmp_path / "opt")
    assert loaded_lopt == lopt_saved and hash(loaded_lopt) == hash(lopt_saved)
    assert jax.tree.structure(loaded_theta) == jax.tree.structure(theta)
    for a, b in zip(jax.tree.leaves(loaded_theta), jax.tree.leaves(theta)):
        assert a.dtype == b.dtype and np.asarray(a).tobytes() == np.asarray(b).tobytes()
    prov = record["provenance"]
    assert prov["steps"] == 3 and prov["seed"] == 7 and prov["versions"]["jax"] == jax.__version__
    assert record["architecture"] == "mlp" and record["features"] == lopt_saved.feature_names()
    assert record["weights"]["sha256"] == hashlib.sha256(weights_path.read_bytes()).hexdigest()
    # every registered architecture round-trips, defaults included
    theta2 = lopt.init_meta_params(jax.random.key(1))
    l2o.save(tmp_path / "other", lopt, theta2, {})
    again_lopt, again_theta, _ = l2o.load(tmp_path / "other.msgpack")
    assert again_lopt == lopt
    assert all(bool(jnp.array_equal(a, b)) for a, b in zip(jax.tree.leaves(again_theta), jax.tree.leaves(theta2)))


def _edit_json(path, **changes):
    record = json.loads(path.read_text())
    record.update(changes)
    path.write_text(json.dumps(record))


def test_truncated_weights(saved):
    _, _, json_path, weights_path = saved
    weights_path.write_bytes(weights_path.read_bytes()[:-10])
    with pytest.raises(ValueError, match=r"opt\.msgpack.*truncated"):
        l2o.load(json_path)


def test_wrong_hash(saved):
    _, _, json_path, weights_path = saved
    data = bytearray(weights_path.read_bytes())
    data[-1] ^= 0xFF
    weights_path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"opt\.msgpack.*sha256"):
        l2o.load(json_path)


def test_truncated_json(saved):
    _, _, json_path, _ = saved
    json_path.write_text(json_path.read_text()[:50])
    with pytest.raises(ValueError, match=r"opt\.json.*truncated or corrupt"):
        l2o.load(json_path)


def test_newer_format_version(saved):
    _, _, json_path, _ = saved
    _edit_json(json_path, format_version=lio.FORMAT_VERSION + 1)
    with pytest.raises(ValueError, match="newer.*Upgrade l2o"):
        l2o.load(json_path)


def test_other_architecture(saved):
    _, _, json_path, _ = saved
    _edit_json(json_path, architecture="transformer")
    with pytest.raises(ValueError, match="unknown architecture 'transformer'.*'lstm', 'mlp'"):
        l2o.load(json_path)
    _edit_json(json_path, architecture="lstm")  # known, but the config is an MLP's
    with pytest.raises(ValueError, match="config not accepted by 'lstm'"):
        l2o.load(json_path)


def test_wrong_shapes(saved):
    _, _, json_path, weights_path = saved
    other = l2o.MLPOptimizer(hidden_sizes=(4,), momentum_decays=(0.5, 0.9))
    data = serialization.to_bytes(other.init_meta_params(jax.random.key(0)))
    weights_path.write_bytes(data)
    _edit_json(json_path, weights={"file": weights_path.name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()})
    with pytest.raises(ValueError, match=r"opt\.msgpack.*do not match.*layer_0.*\[11, 8\].*\[11, 4\]"):
        l2o.load(json_path)


def test_not_msgpack_and_missing_files(saved, tmp_path):
    _, _, json_path, weights_path = saved
    data = b"\xc1" * 40  # 0xc1 is never valid msgpack
    weights_path.write_bytes(data)
    _edit_json(json_path, weights={"file": weights_path.name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()})
    with pytest.raises(ValueError, match="not a flax msgpack"):
        l2o.load(json_path)
    weights_path.unlink()
    with pytest.raises(FileNotFoundError, match="missing"):
        l2o.load(json_path)
    with pytest.raises(FileNotFoundError, match="nope.json"):
        l2o.load(tmp_path / "nope")


def test_save_validates_inputs(tmp_path):
    lopt = l2o.LSTMOptimizer()
    theta = lopt.init_meta_params(jax.random.key(0))
    with pytest.raises(ValueError, match="layer_0"):
        l2o.save(tmp_path / "x", lopt, {**theta, "layer_0": {"w": jnp.zeros((3, 3)), "b": theta["layer_0"]["b"]}}, {})
    with pytest.raises(TypeError, match="meta must be a dict"):
        l2o.save(tmp_path / "x", lopt, theta, ["not", "a", "dict"])
    with pytest.raises(TypeError, match="not JSON"):
        l2o.save(tmp_path / "x", lopt, theta, {"bad": object()})
    assert not (tmp_path / "x.json").exists()


def test_pretrained_listing_and_loading(saved, tmp_path, monkeypatch):
    with pytest.raises(KeyError, match="no pretrained learned optimizer 'nope'; available"):
        l2o.load_pretrained("nope")
    for name in l2o.list_pretrained():  # whatever ships with the package must load
        lopt, theta, record = l2o.load_pretrained(name)
        assert record["name"] == name
    monkeypatch.setattr(lio, "_pretrained_dir", lambda: tmp_path)
    assert l2o.list_pretrained() == ["opt"]
    lopt, theta, _ = l2o.load_pretrained("opt")
    assert float(theta["log_lr"]) == np.float32(-4.321)


def test_load_returns_a_typed_record_with_the_horizon(tmp_path):
    lopt = l2o.MLPOptimizer(hidden_sizes=(4,))
    theta = lopt.init_meta_params(jax.random.key(0))
    l2o.save(tmp_path / "h", lopt, theta, {"horizon": 40})
    loaded = l2o.load(tmp_path / "h")
    assert isinstance(loaded, l2o.LoadedOptimizer)
    assert loaded.lopt == lopt and loaded.record["horizon"] == 40 == loaded.horizon
    assert loaded.name == "h"
    lopt_, theta_, record_ = loaded  # still a 3-tuple
    assert lopt_ is loaded.lopt and theta_ is loaded.theta and record_ is loaded.record
    params = {"w": jnp.ones(3)}
    with pytest.warns(UserWarning, match="h: as_optax\\(\\) uses num_steps=40"):
        tx = loaded.as_optax()
    assert int(tx.init(params).num_steps) == 40
    assert int(loaded.as_optax(num_steps=7).init(params).num_steps) == 7
    # an explicit horizon wins over meta's; without either none is recorded
    l2o.save(tmp_path / "k", lopt, theta, {"horizon": 40}, horizon=30)
    assert l2o.load(tmp_path / "k").horizon == 30
    l2o.save(tmp_path / "none", lopt, theta)
    bare = l2o.load(tmp_path / "none")
    assert bare.horizon is None and bare.record["horizon"] is None
    with pytest.raises(ValueError, match=r"records no meta-training horizon; pass as_optax\(num_steps"):
        bare.as_optax()
    with pytest.raises(ValueError, match="horizon must be a positive int"):
        l2o.save(tmp_path / "bad", lopt, theta, horizon=0)


def test_shipped_optimizers_know_their_horizon():
    horizons = {name: l2o.load_pretrained(name).horizon for name in l2o.list_pretrained()}
    assert horizons == {"lstm-generalist": 300, "lstm-generalist-hd": 300, "lstm-image": 200,
                        "lstm-quadratic": 100,
                        "mlp-generalist-2x16-best": 300, "mlp-generalist-2x16-hd": 300,
                        "mlp-generalist-log": 300,
                        "mlp-image": 200, "mlp-quadratic": 100}


def test_guarded_optimizer_round_trips_through_files(tmp_path):
    guarded = l2o.GuardedOptimizer(l2o.LSTMOptimizer(hidden_size=4, num_layers=1),
                                   {"name": "sgd", "learning_rate": 0.1}, smoothing=0.25)
    assert guarded.fallback == l2o.OptaxSpec("sgd", learning_rate=0.1)
    theta = guarded.init_meta_params(jax.random.key(0))
    l2o.save(tmp_path / "g", guarded, theta, horizon=20)
    record = json.loads((tmp_path / "g.json").read_text())
    assert record["architecture"] == "guarded"
    assert record["config"] == {
        "learned": {"architecture": "lstm",
                    "config": json.loads(json.dumps(guarded.learned.to_config()))},
        "fallback": {"name": "sgd", "learning_rate": 0.1}, "shadow": True, "alone_run": True,
        "smoothing": 0.25, "switch_gap": 0.0025, "reset_gap": 0.1}
    loaded = l2o.load(tmp_path / "g")
    assert loaded.lopt == guarded and hash(loaded.lopt) == hash(guarded)
    for a, b in zip(jax.tree.leaves(loaded.theta), jax.tree.leaves(theta)):
        np.testing.assert_array_equal(a, b)
    # a transform object as fallback runs but cannot be written
    unsaveable = l2o.GuardedOptimizer(guarded.learned, optax.sgd(0.1))
    with pytest.raises(TypeError, match="fallback is an optax transform object.*OptaxSpec"):
        l2o.save(tmp_path / "u", unsaveable, theta)
    assert not (tmp_path / "u.json").exists()


def test_registry_describes_every_optimizer():
    guarded = l2o.registry.get("guarded", learned="lstm", fallback={"name": "adam", "learning_rate": 0.01})
    assert guarded == l2o.GuardedOptimizer(l2o.LSTMOptimizer(), l2o.OptaxSpec("adam", learning_rate=0.01))
    assert l2o.registry.get("guarded") == l2o.GuardedOptimizer(l2o.MLPOptimizer())
    for lopt in (guarded, l2o.MLPOptimizer(hidden_sizes=(3,))):
        assert l2o.registry.from_dict(l2o.registry.to_dict(lopt)) == lopt
    with pytest.raises(ValueError, match="not a registered learned optimizer"):
        l2o.registry.to_dict(object())
    with pytest.raises(KeyError, match="unknown learned optimizer 'mpl'.*Did you mean 'mlp'"):
        l2o.registry.get("guarded", learned="mpl")
