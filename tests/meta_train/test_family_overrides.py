"""``MetaTrainConfig.family_overrides``: keyword overrides of the training task family."""

from __future__ import annotations

import argparse
import json

import jax
import jax.numpy as jnp
import pytest

import l2o
from meta_train import cli
from meta_train.config import MetaTrainConfig
from meta_train.train import build, build_family, train

LOPT = l2o.MLPOptimizer(hidden_sizes=(4,))


def _mlp_config(**overrides) -> MetaTrainConfig:
    return MetaTrainConfig(family="mlp-digits", lopt_config={"hidden_sizes": [4]}, horizon=8,
                           trunc_length=4, num_tasks=2, num_pairs=1, **overrides)


def test_default_is_empty_and_builds_the_plain_family():
    config = MetaTrainConfig(family="quadratic")
    assert config.family_overrides == {} and config.family_kwargs() == {}
    assert config.to_dict()["family_overrides"] == {}


def test_roundtrip_through_dict_and_json(tmp_path):
    config = _mlp_config(family_overrides={"activations": ("tanh", "relu"),
                                           "hidden_sizes": [16], "l2": 1e-4})
    # Stored in JSON form, so the config equals itself after a trip through a file.
    assert config.family_overrides == {"activations": ["tanh", "relu"], "hidden_sizes": [16],
                                       "l2": 1e-4}
    assert MetaTrainConfig.from_dict(config.to_dict()) == config
    path = tmp_path / "c.json"
    config.to_json(path)
    assert json.loads(path.read_text())["family_overrides"]["activations"] == ["tanh", "relu"]
    assert MetaTrainConfig.from_json(path) == config
    # The family gets tuples (its dataclass config fields are tuples).
    assert config.family_kwargs() == {"activations": ("tanh", "relu"), "hidden_sizes": (16,),
                                      "l2": 1e-4}


def test_set_overrides_one_entry_or_the_whole_dict():
    config = MetaTrainConfig().with_overrides([
        'family_overrides.activations=["tanh", "relu"]', "family_overrides.dataset=digits",
        "family_overrides.hidden_sizes=[32, 32]",
    ])
    assert config.family_overrides == {"activations": ["tanh", "relu"], "dataset": "digits",
                                       "hidden_sizes": [32, 32]}
    replaced = config.with_overrides(['family_overrides={"l2": 0.001}'])
    assert replaced.family_overrides == {"l2": 0.001}
    with pytest.raises(ValueError, match="override family_overrides='\\[1\\]': expected a JSON object"):
        MetaTrainConfig().with_overrides(["family_overrides=[1]"])


def test_sampled_tasks_use_the_overrides():
    config = _mlp_config(family_overrides={"activations": ["tanh", "relu"], "hidden_sizes": [16]})
    components = build(config)
    family = components.family
    cfgs = jax.vmap(family.sample)(jax.random.split(jax.random.PRNGKey(0), 64))
    # Both activations are drawn (index into ("tanh", "relu")).
    assert set(int(a) for a in cfgs.activation) == {0, 1}
    task = family.task(jax.tree.map(lambda x: x[0], cfgs))
    assert task.name == "mlp-digits/64-16-10/tanh|relu"
    kernels = sorted(p.shape for p in jax.tree.leaves(task.init(jax.random.PRNGKey(1))) if p.ndim == 2)
    assert kernels == [(16, 10), (64, 16)]
    # The meta-training system starts its inner runs on such tasks.
    state = components.system.init(jax.random.PRNGKey(2), components.theta_init)
    assert sorted(p.shape for p in jax.tree.leaves(state.params) if p.ndim == 2) == kernels
    # The same init key gives different outputs for the two activations: the index is used.
    x = jnp.ones((2, 8, 8, 1))
    outputs = []
    for index in (0, 1):
        cfg = jax.tree.map(lambda v: v[0], cfgs).replace(activation=jnp.int32(index))
        one = family.task(cfg)
        params = one.init(jax.random.PRNGKey(3))
        outputs.append(one.loss(params, jax.random.PRNGKey(4)))
    assert float(outputs[0]) != float(outputs[1])
    # The held-out split keeps its own architecture (64-64, ReLU).
    heldout_task = components.heldout.task(components.heldout.sample(jax.random.PRNGKey(0)))
    assert heldout_task.name == "mlp-digits/64-64-64-10/relu"


def test_unknown_key_is_explained():
    config = _mlp_config(family_overrides={"activation": ["relu"]})
    message = ("family_overrides has unknown key\\(s\\) \\['activation'\\] for task family "
               "'mlp-digits'; valid: \\[.*'activations'.*'hidden_sizes'.*\\]. Did you mean "
               "'activations' for 'activation'\\?")
    with pytest.raises(ValueError, match=message):
        config.check_names()
    with pytest.raises(ValueError, match=message):
        build(config)
    with pytest.raises(ValueError, match="unknown key\\(s\\) \\['dim'\\] for task family 'mlp-digits'"):
        build_family(_mlp_config(family_overrides={"dim": 3}))


def test_bad_values_are_explained():
    with pytest.raises(ValueError, match="task family 'mlp-digits' rejected family_overrides "
                                         "\\{'activations': \\['swishy'\\]\\}: activations must be"):
        build_family(_mlp_config(family_overrides={"activations": ["swishy"]}))
    with pytest.raises(TypeError, match="family_overrides must be a dict"):
        MetaTrainConfig(family_overrides=[("l2", 0.1)])
    with pytest.raises(TypeError, match="family_overrides must be JSON-serialisable"):
        MetaTrainConfig(family_overrides={"hidden_sizes": {16}})


def test_overrides_reach_the_run_provenance_and_block_a_changed_resume(tmp_path):
    config = MetaTrainConfig(
        family="quadratic", family_overrides={"dim": 3}, lopt="mlp",
        lopt_config={"hidden_sizes": [4]}, horizon=4, trunc_length=2, num_tasks=1,
        num_pairs=1, outer_steps=2, eval_every=0, eval_tasks=1, ckpt_every=0, log_every=1,
        out_dir=str(tmp_path / "run"),
    )
    components = build(config, lopt=LOPT)
    params = components.system.init(jax.random.PRNGKey(0), components.theta_init).params
    assert jax.tree.leaves(params)[0].shape == (3,)
    result = train(config, progress=False, components=components)
    _, _, record = l2o.load(result.theta_path)
    provenance = record["provenance"]
    assert provenance["family_overrides"] == {"dim": 3}
    assert provenance["config"]["family_overrides"] == {"dim": 3}
    saved = MetaTrainConfig.from_json(result.run_dir / "config.json")
    assert saved.family_overrides == {"dim": 3}
    changed = config.with_overrides(["family_overrides.dim=4", "outer_steps=3"])
    with pytest.raises(ValueError, match="different recipe \\(family_overrides: "
                                         "\\{'dim': 3\\} -> \\{'dim': 4\\}\\)"):
        train(changed, resume=result.run_dir, progress=False)


def test_cli_set_reaches_the_config():
    parser = argparse.ArgumentParser(prog="l2o")
    cli.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["meta-train", "--set", 'family_overrides.activations=["tanh","relu"]',
                              "--set", "family_overrides.hidden_sizes=[16]"])
    config = cli.resolve_config(args)
    assert config.family_overrides == {"activations": ["tanh", "relu"], "hidden_sizes": [16]}
    assert config.family_kwargs() == {"activations": ("tanh", "relu"), "hidden_sizes": (16,)}
