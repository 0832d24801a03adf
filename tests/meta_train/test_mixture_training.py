"""Mixture meta-training through the config: validation, build, train, exact resume."""

from __future__ import annotations

import argparse
import dataclasses
import json

import jax
import numpy as np
import pytest

import l2o
import meta_train.train as train_module
from meta_train import cli
from meta_train.config import MetaTrainConfig
from meta_train.mixture import MixtureEstimator
from meta_train.pes import ESGradientEstimator
from meta_train.train import build, train

from helpers.systems import TOY_FAMILY, TOY_MATRIX_FAMILY

LOPT = l2o.MLPOptimizer(hidden_sizes=(4,))
TWO = [{"family": "toy", "weight": 3.0}, {"family": "toy-matrix", "weight": 1.0}]


def _config(out_dir, **overrides) -> MetaTrainConfig:
    base = dict(family="toy", lopt="mlp", lopt_config={"hidden_sizes": [4]}, horizon=8,
                trunc_length=4, num_tasks=2, num_pairs=2, outer_steps=5, sigma=0.05,
                outer_lr=1e-2, ckpt_every=2, log_every=1, eval_every=0, eval_tasks=2,
                out_dir=str(out_dir), mixture=TWO)
    base.update(overrides)
    return MetaTrainConfig(**base)


def _components(config):
    families = None if config.mixture is None else (TOY_FAMILY, TOY_MATRIX_FAMILY)[
        :len(config.mixture)]
    return build(config, family=TOY_FAMILY, heldout=TOY_FAMILY, lopt=LOPT, families=families)


def _leaves(tree):
    return [np.asarray(x) for x in jax.tree.leaves(tree)]


# ---------------------------------------------------------------- config
def test_entries_are_stored_in_full_form_and_roundtrip(tmp_path):
    config = MetaTrainConfig(mixture=[
        {"family": "quadratic"},
        {"family": "mlp-digits", "weight": 2, "overrides": {"hidden_sizes": (16,)},
         "augment": {"weight_scale": [0.01, 100]}}])
    assert config.mixture == [
        {"family": "quadratic", "weight": 1.0, "overrides": {}, "augment": {}},
        {"family": "mlp-digits", "weight": 2.0, "overrides": {"hidden_sizes": [16]},
         "augment": {"weight_scale": {"range": [0.01, 100.0], "level": "tensor",
                                      "probability": 1.0}}}]
    path = tmp_path / "c.json"
    config.to_json(path)
    assert MetaTrainConfig.from_json(path) == config
    config.check_names()
    assert MetaTrainConfig().mixture is None and MetaTrainConfig().recipe.mixture is None


@pytest.mark.parametrize("mixture, match", [
    ([], "invalid MetaTrainConfig: the mixture is empty; give at least one"),
    ([{"family": "quadratic", "weight": -1}],
     "mixture entry 0 \\('quadratic'\\) has weight -1; a weight must be a finite number > 0"),
    ([{"family": "quadratic"}, {"family": "rosenbrock", "weight": 0}],
     "mixture entry 1 \\('rosenbrock'\\) has weight 0;"),
    ([{"famly": "quadratic"}],
     "mixture entry 0 has unknown key\\(s\\) \\['famly'\\]. Did you mean 'family'\\? Valid:"),
    ([{"weight": 1.0}], "mixture entry 0 needs a \"family\""),
    (["quadratic"], "mixture entry 0 must be an object"),
    ([{"family": "quadratic", "augment": {"weight_scal": [1, 2]}}],
     "mixture entry 0 \\('quadratic'\\) augment: unknown augmentation"),
])
def test_bad_entries_get_one_line_errors(mixture, match):
    with pytest.raises(ValueError, match=match) as info:
        MetaTrainConfig(mixture=mixture)
    assert "\n" not in str(info.value)


def test_unknown_names_in_entries_get_did_you_mean():
    config = MetaTrainConfig(mixture=[{"family": "quadratic"}, {"family": "rosenbrok"}])
    with pytest.raises(ValueError, match="mixture entry 1: unknown task family 'rosenbrok'. "
                                         "Did you mean 'rosenbrock'\\? Valid: \\["):
        config.check_names()
    config = MetaTrainConfig(mixture=[{"family": "mlp-digits", "overrides": {"hiden_sizes": [8]}}])
    with pytest.raises(ValueError, match="mixture entry 0 \\('mlp-digits'\\) overrides have unknown "
                                         "key\\(s\\) \\['hiden_sizes'\\]. Did you mean 'hidden_sizes'"):
        config.check_names()
    with pytest.raises(ValueError, match="with a mixture give each entry its own"):
        MetaTrainConfig(mixture=[{"family": "quadratic"}], family_overrides={"dim": 3})


def test_cli_mixture_from_a_name_or_a_file(tmp_path):
    parser = argparse.ArgumentParser(prog="l2o")
    cli.add_parser(parser.add_subparsers(dest="command"))
    config = cli.resolve_config(parser.parse_args(["meta-train", "--mixture", "wide"]))
    from tasks import mixtures

    assert [e["family"] for e in config.mixture] == [e["family"] for e in mixtures.get("wide")]
    path = tmp_path / "mix.json"
    path.write_text(json.dumps([{"family": "quadratic", "weight": 2}]))
    config = cli.resolve_config(parser.parse_args(["meta-train", "--mixture", str(path)]))
    assert config.mixture == [{"family": "quadratic", "weight": 2.0, "overrides": {},
                               "augment": {}}]
    path.write_text(json.dumps({"mixture": [{"family": "rosenbrock"}]}))
    config = cli.resolve_config(parser.parse_args(["meta-train", "--mixture", str(path)]))
    assert config.mixture[0]["family"] == "rosenbrock"
    with pytest.raises(ValueError, match="--mixture 'wid' is neither a predefined mixture .*"
                                         "Did you mean 'wide'"):
        cli.resolve_config(parser.parse_args(["meta-train", "--mixture", "wid"]))
    config = cli.resolve_config(parser.parse_args(
        ["meta-train", "--set", 'mixture=[{"family": "quadratic"}]']))
    assert config.mixture[0]["family"] == "quadratic"
    config = cli.resolve_config(parser.parse_args(["meta-train", "--horizon-range", "20", "400"]))
    assert config.horizon_range == [20, 400]
    with pytest.raises(ValueError, match="min 400 > max 20"):
        cli.resolve_config(parser.parse_args(["meta-train", "--horizon-range", "400", "20"]))
    # a flag is validated together with the --set overrides that follow it
    config = cli.resolve_config(parser.parse_args(
        ["meta-train", "--horizon-range", "2", "4", "--set", "trunc_length=2"]))
    assert (config.horizon_range, config.trunc_length) == ([2, 4], 2)
    with pytest.raises(ValueError, match="horizon_range min 2 is below trunc_length=20"):
        cli.resolve_config(parser.parse_args(["meta-train", "--horizon-range", "2", "4"]))


# ---------------------------------------------------------------- build and train
def test_build_makes_one_group_per_entry_with_the_entry_families():
    config = MetaTrainConfig(mixture=[
        {"family": "quadratic", "overrides": {"dim": 3}},
        {"family": "rosenbrock", "weight": 3, "augment": {"weight_scale": [0.1, 10]}}],
        lopt_config={"hidden_sizes": [4]}, horizon=8, trunc_length=4, num_tasks=1, num_pairs=1)
    components = build(config, lopt=LOPT)
    estimator = components.estimator
    assert isinstance(estimator, MixtureEstimator) and estimator.weights == (0.25, 0.75)
    assert tuple(e.system.family for e in estimator.estimators) == components.families
    assert components.families[1].name.endswith("+wscale[0.1,10]")
    assert "+wscale" not in components.families[0].name
    params = components.systems[0].init(jax.random.PRNGKey(0), components.theta_init).params
    assert jax.tree.leaves(params)[0].shape == (3,)
    assert components.heldout.split == "heldout"


def test_rejected_entry_values_name_the_entry():
    config = MetaTrainConfig(mixture=[{"family": "quadratic"},
                                      {"family": "mlp-digits",
                                       "overrides": {"activations": ["swishy"]}}])
    with pytest.raises(ValueError, match="mixture entry 1 \\('mlp-digits'\\) was rejected: "
                                         ".*activations must be"):
        build(config, lopt=LOPT)


def test_single_family_augment_wraps_the_family():
    plain = build(MetaTrainConfig(family="quadratic"), lopt=LOPT)
    augmented = build(MetaTrainConfig(family="quadratic", augment={"weight_scale": [1e-3, 1e3]}),
                      lopt=LOPT)
    assert isinstance(augmented.estimator, ESGradientEstimator)
    assert augmented.family.name == plain.family.name + "+wscale[0.001,1000]"
    cfg = augmented.family.sample(jax.random.PRNGKey(0))
    scales = np.asarray(jax.tree.leaves(cfg.scales))
    assert np.all((scales >= 1e-3) & (scales <= 1e3)) and np.any(scales != 1.0)


def test_mixture_run_resumes_bit_identically_and_records_provenance(tmp_path, monkeypatch):
    full_cfg = _config(tmp_path / "full")
    full = train(full_cfg, progress=False, components=_components(full_cfg))

    crash_cfg = _config(tmp_path / "crash", ckpt_every=1)
    real_save = train_module.save_checkpoint

    def crashing_save(path, state, extra):
        if extra["step"] == 3:
            raise KeyboardInterrupt("simulated crash")
        real_save(path, state, extra)

    monkeypatch.setattr(train_module, "save_checkpoint", crashing_save)
    with pytest.raises(KeyboardInterrupt):
        train(crash_cfg, progress=False, components=_components(crash_cfg))
    monkeypatch.setattr(train_module, "save_checkpoint", real_save)
    resumed = train(crash_cfg, resume=tmp_path / "crash", progress=False,
                    components=_components(crash_cfg))
    assert resumed.steps == full.steps == 5
    for a, b in zip(_leaves(full.theta), _leaves(resumed.theta)):
        np.testing.assert_array_equal(a, b)
    rows = [json.loads(line) for line in open(tmp_path / "crash" / "metrics.jsonl")]
    full_rows = [json.loads(line) for line in open(tmp_path / "full" / "metrics.jsonl")]
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5]
    for r, f in zip(rows, full_rows):
        assert r["meta_loss/0"] == f["meta_loss/0"] and r["meta_loss/1"] == f["meta_loss/1"]
        assert r["meta_loss"] == pytest.approx(0.75 * r["meta_loss/0"] + 0.25 * r["meta_loss/1"],
                                               rel=1e-6)
    moved = max(float(np.max(np.abs(a - b)))
                for a, b in zip(_leaves(full.theta), _leaves(_components(full_cfg).theta_init)))
    assert moved > 1e-4
    _, _, record = l2o.load(full.theta_path)
    provenance = record["provenance"]
    assert [e["family"] for e in provenance["mixture"]] == ["toy", "toy-matrix"]
    assert (provenance["family"], provenance["family_overrides"]) == ("mixture of toy, toy-matrix", None)
    assert provenance["mixture"][0]["weight"] == 3.0
    assert provenance["config"]["mixture"] == full_cfg.mixture
    # A changed weight is a different recipe.
    changed = _config(tmp_path / "full", mixture=[TWO[0], {**TWO[1], "weight": 2.0}])
    with pytest.raises(ValueError, match="different recipe \\(mixture:"):
        train(changed, resume=tmp_path / "full", progress=False)


def test_one_entry_mixture_follows_the_single_family_run(tmp_path):
    single_cfg = _config(tmp_path / "single", mixture=None, outer_steps=3)
    mixed_cfg = _config(tmp_path / "mixed", mixture=TWO[:1], outer_steps=3)
    single = train(single_cfg, progress=False, components=_components(single_cfg))
    mixed = train(mixed_cfg, progress=False, components=_components(mixed_cfg))
    assert isinstance(_components(single_cfg).estimator, ESGradientEstimator)
    for a, b in zip(_leaves(single.theta), _leaves(mixed.theta)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
