"""Bad input gets an error that says what was given, what is expected and how to fix it."""

from __future__ import annotations

import json
import shutil

import jax
import jax.numpy as jnp
import optax
import pytest

import l2o
from baselines import registry as baseline_registry
from l2o import io as lio
from l2o.app.cli import main
from meta_train.config import MetaTrainConfig
from meta_train.pes import ESGradientEstimator
from tasks import registry as task_registry
from tasks.data import DatasetNotFoundError, load_dataset

from helpers.reliability import SMALL_LSTM, SMALL_MLP, tiny_config


# ----------------------------------------------------------------------- unknown names
@pytest.mark.parametrize(
    "lookup, given, valid",
    [
        (task_registry.get, "imagenet-resnet", task_registry.names()),
        (l2o.registry.get, "transformer", l2o.registry.all_names()),
        (baseline_registry.get, "adamw", baseline_registry.names()),
        (l2o.load_pretrained, "mlp-imagenet", l2o.list_pretrained()),
    ],
    ids=["task-family", "optimizer", "baseline", "pretrained"],
)
def test_unknown_names_list_the_valid_ones(lookup, given, valid):
    assert valid, "every registry has entries"
    with pytest.raises(KeyError) as info:
        lookup(given)
    message = info.value.args[0]
    assert repr(given) in message
    assert str(sorted(valid)) in message


def test_unknown_family_override_lists_valid_overrides():
    with pytest.raises(TypeError, match=r"unknown override\(s\) \['dimension'\].*'dim'"):
        task_registry.get("quadratic", dimension=3)


# ----------------------------------------------------------------------- config
HOW_TO_FIX = "--set KEY=VALUE"


@pytest.mark.parametrize(
    "fields, error, given",
    [
        ({"num_tasks": 2.0}, TypeError, "num_tasks must be an int, got 2.0 (float)"),
        ({"outer_lr": "3e-3"}, TypeError, "outer_lr must be a number, got '3e-3' (str)"),
        ({"family": ""}, TypeError, "family must be a non-empty string, got ''"),
        ({"horizon": 0}, ValueError, "horizon must be >= 1, got 0"),
        ({"trunc_length": -5}, ValueError, "trunc_length must be >= 1, got -5"),
        ({"eval_tasks": 0}, ValueError, "eval_tasks must be >= 1, got 0"),
        ({"ckpt_every": -1}, ValueError, "ckpt_every must be >= 0, got -1"),
        ({"outer_clip": 0.0}, ValueError, "outer_clip must be > 0, got 0.0"),
        ({"horizon": 100, "trunc_length": 30}, ValueError,
         "trunc_length=30 must divide horizon=100 (divisors of 100: [1, 2, 4, 5, 10, 20, 25, 50, 100])"),
    ],
)
def test_config_values_are_explained(fields, error, given):
    with pytest.raises(error) as info:
        MetaTrainConfig(**fields)
    message = str(info.value)
    assert given in message and HOW_TO_FIX in message


def test_config_from_json_with_wrong_types_and_keys(tmp_path):
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"num_pairs": "4", "sigma": [0.1]}))
    with pytest.raises(TypeError) as info:
        MetaTrainConfig.from_json(path)
    assert "num_pairs must be an int, got '4' (str)" in str(info.value)
    assert "sigma must be a number, got [0.1] (list)" in str(info.value)

    path.write_text(json.dumps({"sigam": 0.1}))
    with pytest.raises(ValueError, match=r"unknown config key\(s\) \['sigam'\].*Did you mean 'sigma'"):
        MetaTrainConfig.from_json(path)

    path.write_text(json.dumps([1, 2]))
    with pytest.raises(TypeError, match="config must be a JSON object/dict, got list"):
        MetaTrainConfig.from_json(path)


@pytest.mark.parametrize(
    "override, match",
    [
        ("num_pairs=two", r"override num_pairs='two': expected an int"),
        ("sigma=small", r"override sigma='small': expected a number"),
        ("stagger=maybe", r"override stagger='maybe': expected true or false"),
        ("num_tasks", r"override 'num_tasks' is not of the form key=value"),
        ("lopt_config=[4]", r"override lopt_config='\[4\]': expected a JSON object"),
        ("num_pairs=0", r"num_pairs must be >= 1, got 0\. Fix"),
        ("horizon=50", r"trunc_length=20 must divide horizon=50 \(divisors of 50"),
    ],
)
def test_overrides_are_explained(override, match):
    with pytest.raises((ValueError, TypeError), match=match):
        MetaTrainConfig().with_overrides([override])


@pytest.mark.parametrize("key", ["population_size", "popsize"])
def test_population_is_always_antithetic_pairs(key):
    # There is no population field: N = 2 * num_tasks * num_pairs is even by construction.
    with pytest.raises(ValueError) as info:
        MetaTrainConfig().with_overrides([f"{key}=7"])
    message = str(info.value)
    assert f"unknown config key {key!r}" in message
    assert "2 * num_tasks * num_pairs" in message and "set num_tasks and num_pairs" in message
    config = MetaTrainConfig().with_overrides(["num_tasks=3", "num_pairs=1"])
    from meta_train.train import build

    components = build(config)
    assert components.estimator.num_particles == 6
    with pytest.raises(ValueError, match="num_pairs must be a positive int, got 0"):
        ESGradientEstimator(components.system, components.theta_init, num_pairs=0,
                            horizon=4, trunc_length=2)


def test_cli_bad_override_exits_cleanly(capsys):
    status = main(["meta-train", "--set", "bogus=1", "--no-progress"])
    captured = capsys.readouterr()
    assert status == 2
    assert "unknown config key 'bogus'" in captured.err and "valid:" in captured.err
    assert "Traceback" not in captured.err + captured.out
    status = main(["meta-train", "--set", "horizon=7", "--set", "trunc_length=2"])
    captured = capsys.readouterr()
    assert status == 2 and "trunc_length=2 must divide horizon=7" in captured.err


def test_cli_unknown_family_and_lopt_exit_cleanly(capsys):
    assert main(["meta-train", "--family", "imagenet"]) == 2
    err = capsys.readouterr().err
    assert "unknown task family 'imagenet'; valid: [" in err and "'quadratic'" in err
    assert main(["meta-train", "--lopt", "transformer"]) == 2
    assert "unknown lopt 'transformer'; valid: ['guarded', 'lstm', 'mlp', 'mlp-2x16', 'mlp-2x32', 'mlp-2x8']" in capsys.readouterr().err


def test_compare_cli_unknown_optimizer_exits_with_one_line(capsys):
    assert main(["compare", "--family", "quadratic", "--optimizers", "adam,adamw"]) == 2
    message = capsys.readouterr().err.strip()
    assert message.startswith("l2o compare: error: unknown optimizer 'adamw'")
    assert "'lion'" in message and "l2o.save" in message and "\n" not in message
    assert main(["compare", "--family", "cifar-resnet", "--optimizers", "adam"]) == 2
    assert "unknown task family 'cifar-resnet'" in capsys.readouterr().err


def test_cli_unknown_pretrained_exits_cleanly(capsys):
    assert main(["pretrained", "mlp-imagenet"]) == 2
    message = capsys.readouterr().err.strip()
    assert message.startswith("l2o pretrained: error: unknown optimizer 'mlp-imagenet'")
    assert "mlp-image" in message


# ----------------------------------------------------------------------- params vs state
def test_per_leaf_state_of_other_shapes_with_as_many_coordinates_is_rejected():
    theta = SMALL_MLP.init_meta_params(jax.random.key(0))
    state = SMALL_MLP.init(theta, {"w": jnp.ones((3, 2)), "b": jnp.ones(2)}, 10)
    transposed = {"w": jnp.ones((2, 3)), "b": jnp.ones(2)}
    with pytest.raises(ValueError, match=r"state was built for 8 parameter coordinates of leaf shapes "
                                         r"\[\(2,\), \(3, 2\)\] but params have 8 \(leaf shapes \[\(2,\), \(2, 3\)\]\)"):
        SMALL_MLP.update(theta, transposed, state, transposed, jnp.float32(1.0))


@pytest.mark.parametrize("lopt", [SMALL_MLP, SMALL_LSTM], ids=lambda lopt: lopt.name)
def test_state_built_for_other_params_is_rejected(lopt):
    theta = lopt.init_meta_params(jax.random.key(0))
    params = {"w": jnp.ones((3, 2)), "b": jnp.ones(2)}
    state = lopt.init(theta, params, 10)
    bigger = {"w": jnp.ones((4, 2)), "b": jnp.ones(2)}
    update = jax.jit(lopt.update)
    with pytest.raises(ValueError) as info:
        update(theta, bigger, state, bigger, jnp.float32(1.0))
    message = str(info.value)
    assert "state was built for 8 parameter coordinates but params have 10" in message
    assert "[(2,), (4, 2)]" in message and "init(theta, params, num_steps)" in message
    with pytest.raises(ValueError, match=r"grads have leaf shapes \[\(2,\), \(4, 2\)\] but "
                                         r"params have \[\(2,\), \(3, 2\)\].*jax.grad"):
        update(theta, bigger, state, params, jnp.float32(1.0))
    # Through the optax adapter the same check fires.
    tx = lopt.as_optax(theta, num_steps=10)
    with pytest.raises(ValueError, match="state was built for 8"):
        tx.update(bigger, tx.init(params), bigger, value=1.0)
    updates, _ = update(theta, params, state, params, jnp.float32(1.0))  # the right pair works
    assert jax.tree.map(jnp.shape, updates) == {"w": (3, 2), "b": (2,)}


# ----------------------------------------------------------------------- missing extra args
def test_guard_without_next_loss_fn_says_how_to_pass_it():
    params = {"x": jnp.ones(3)}
    theta = SMALL_MLP.init_meta_params(jax.random.key(0))
    tx = l2o.loss_guarded(SMALL_MLP.as_optax(theta, 10), optax.sgd(0.1))
    with pytest.raises(ValueError, match=r"needs next_loss_fn.*next_loss_fn=lambda p: loss_fn\(p, next_batch\)"):
        tx.update(params, tx.init(params), params, value=1.0)
    guarded = l2o.GuardedOptimizer(SMALL_MLP, optax.sgd(0.1))
    state = guarded.init(theta, params, 10)
    with pytest.raises(ValueError, match="guarded-mlp.update needs next_loss_fn"):
        guarded.update(theta, params, state, params, jnp.float32(1.0))


def test_loss_using_optimizer_without_loss_says_how_to_pass_it():
    lopt = l2o.LSTMOptimizer(hidden_size=4, num_layers=1, use_loss=True)
    theta = lopt.init_meta_params(jax.random.key(0))
    params = {"x": jnp.ones(3)}
    state = lopt.init(theta, params, 10)
    with pytest.raises(ValueError) as info:
        lopt.update(theta, params, state, params)
    assert "use_loss=True" in str(info.value) and "got loss=None" in str(info.value)
    assert "update(theta, grads, state, params, loss)" in str(info.value)
    tx = lopt.as_optax(theta, num_steps=10)
    with pytest.raises(ValueError, match=r"uses the loss.*tx.update\(grads, state, params, value=loss\)"):
        tx.update(params, tx.init(params), params)
    updates, _ = tx.update(params, tx.init(params), params, value=2.0)
    assert bool(jnp.all(jnp.isfinite(updates["x"])))


# ----------------------------------------------------------------------- files
def test_missing_dataset_says_how_to_prepare_it(tmp_path):
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("mnist", data_dir=tmp_path)
    message = str(info.value)
    assert "'mnist' is not prepared" in message and f"{tmp_path}/mnist does not exist" in message
    assert "tfds build mnist --data_dir <DIR> --file_format array_record" in message
    assert "$L2O_DATA_DIR" in message
    assert isinstance(info.value, FileNotFoundError)
    with pytest.raises(ValueError, match=r"unknown dataset 'imagenet'; expected one of \['cifar10'"):
        load_dataset("imagenet", data_dir=tmp_path)


@pytest.fixture
def pretrained_copy(tmp_path, monkeypatch):
    """The first shipped optimizer copied to a private pretrained dir (name, json, weights)."""
    name = l2o.list_pretrained()[0]
    source = lio._pretrained_dir()
    for suffix in (".json", ".msgpack"):
        shutil.copy(source / f"{name}{suffix}", tmp_path / f"{name}{suffix}")
    monkeypatch.setattr(lio, "_pretrained_dir", lambda: tmp_path)
    return name, tmp_path / f"{name}.json", tmp_path / f"{name}.msgpack"


def _set(json_path, **changes):
    record = json.loads(json_path.read_text())
    record.update(changes)
    json_path.write_text(json.dumps(record))


def test_corrupted_pretrained_files_name_the_file_and_the_fix(pretrained_copy):
    name, json_path, weights_path = pretrained_copy
    lopt, theta, _ = l2o.load_pretrained(name)  # the intact copy loads
    original = weights_path.read_bytes()

    weights_path.write_bytes(original[: len(original) // 2])
    with pytest.raises(ValueError) as info:
        l2o.load_pretrained(name)
    message = str(info.value)
    assert str(weights_path) in message and f"has {len(original) // 2} bytes" in message
    assert f"says {len(original)}" in message and "restore the file" in message

    flipped = bytearray(original)
    flipped[len(flipped) // 2] ^= 0x01
    weights_path.write_bytes(bytes(flipped))
    with pytest.raises(ValueError, match="sha256 differs.*file modified or corrupt"):
        l2o.load_pretrained(name)

    weights_path.write_bytes(original)
    good = json_path.read_text()
    _set(json_path, format_version=lio.FORMAT_VERSION + 1)
    with pytest.raises(ValueError, match=rf"format_version {lio.FORMAT_VERSION + 1} is newer.*pip install -U l2o"):
        l2o.load_pretrained(name)

    json_path.write_text(good)
    other = next(a for a in l2o.registry.names() if a != json.loads(good)["architecture"])
    _set(json_path, architecture=other)  # another architecture, with this one's config
    with pytest.raises(ValueError, match=rf"{json_path.name}: config not accepted by {other!r}"):
        l2o.load_pretrained(name)

    json_path.write_text(good[: len(good) // 3])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        l2o.load_pretrained(name)

    json_path.write_text(good)
    weights_path.unlink()
    with pytest.raises(FileNotFoundError, match=rf"{weights_path.name}: weights file named by"):
        l2o.load_pretrained(name)


def test_unwritable_run_dir_fails_before_any_work(tmp_path, monkeypatch):
    import meta_train.train as train_module

    blocker = tmp_path / "file.txt"
    blocker.write_text("a file, not a directory")

    def must_not_build(*args, **kwargs):
        raise AssertionError("build() ran before the run directory was checked")

    monkeypatch.setattr(train_module, "build", must_not_build)
    with pytest.raises(PermissionError) as info:
        train_module.train(tiny_config(blocker / "run"), progress=False)
    message = str(info.value)
    assert f"{blocker / 'run'}' is not writable" in message and "another out_dir (--out)" in message
    assert blocker.read_text() == "a file, not a directory"
