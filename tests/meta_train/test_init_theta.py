"""Meta-training from a saved or shipped theta (``init_theta``): the run starts exactly at
those meta-parameters, records where they came from, and refuses ones of another shape."""

from __future__ import annotations

import argparse
import json

import jax
import numpy as np
import pytest

import l2o
from meta_train import cli
from meta_train.config import MetaTrainConfig
from meta_train.train import build, train

from helpers.reliability import tiny_config


def _leaves_equal(a, b) -> bool:
    return all(np.array_equal(np.asarray(x), np.asarray(y))
               for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


def test_run_starts_from_a_saved_theta_under_another_option(tmp_path):
    lopt = l2o.MLPOptimizer(hidden_sizes=(4,))
    saved = jax.tree.map(lambda x: x + 0.25, lopt.init_meta_params(jax.random.PRNGKey(7)))
    l2o.save(tmp_path / "start", lopt, saved, {})
    # lr_adapt changes how the update uses theta, not its shapes: the saved theta fits.
    config = tiny_config(tmp_path / "run", init_theta=str(tmp_path / "start.json"),
                         lopt_config={"hidden_sizes": [4], "lr_adapt": 0.1})
    components = build(config)
    assert _leaves_equal(components.theta_init, saved)
    fresh = build(tiny_config(tmp_path / "other", lopt_config={"hidden_sizes": [4]}))
    assert not _leaves_equal(fresh.theta_init, saved)

    result = train(config, progress=False)
    record = json.loads((result.run_dir / "theta.json").read_text())["provenance"]
    sha = json.loads((tmp_path / "start.json").read_text())["weights"]["sha256"]
    assert record["init_theta"]["sha256"] == sha
    assert record["init_theta"]["config"]["lr_adapt"] == 0.0
    assert record["config"]["init_theta"] == str(tmp_path / "start.json")
    # zero outer steps return the loaded theta itself (the path may omit ".json")
    still = train(tiny_config(tmp_path / "zero", init_theta=str(tmp_path / "start"),
                              lopt_config={"hidden_sizes": [4], "lr_adapt": 0.1},
                              outer_steps=0), progress=False)
    assert _leaves_equal(still.theta, saved)


def test_run_starts_from_a_shipped_optimizer():
    loaded = l2o.load_pretrained("lstm-generalist")
    lopt_config = {**loaded.record["config"], "lr_adapt": 0.03}
    config = MetaTrainConfig(family="quadratic", lopt="lstm", lopt_config=lopt_config,
                             init_theta="lstm-generalist", horizon=4, trunc_length=2,
                             num_tasks=1, num_pairs=1, shard=False)
    components = build(config)
    assert _leaves_equal(components.theta_init, loaded.theta)
    assert components.lopt.lr_adapt == 0.03
    assert components.init_record["source"] == "lstm-generalist"


def test_a_theta_of_another_shape_is_refused_naming_the_leaves(tmp_path):
    config = tiny_config(tmp_path / "run", init_theta="mlp-generalist-2x16-best",
                         lopt_config={"hidden_sizes": [4]})
    with pytest.raises(ValueError, match=r"does not fit .*\['mlp'\]\['layer_0'\]\['w'\]: "
                                         r"\(21, 16\) \(needs \(17, 4\)\)"):
        build(config)


def test_an_unknown_source_lists_the_shipped_optimizers(tmp_path):
    config = tiny_config(tmp_path / "run", init_theta=str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="neither a shipped optimizer .*mlp-image.* nor a theta"):
        build(config)


def test_init_theta_is_part_of_the_recipe(tmp_path):
    config = tiny_config(tmp_path / "run").with_overrides(["init_theta=mlp-image"])
    assert config.recipe.init_theta == "mlp-image"
    assert config.with_overrides(["init_theta=none"]).init_theta is None
    assert config.recipe != tiny_config(tmp_path / "run").recipe


def test_cli_flag_sets_init_theta_and_reports_a_mismatch_in_one_line(tmp_path, capsys):
    from l2o.app.cli import main

    parser = argparse.ArgumentParser()
    cli.add_parser(parser.add_subparsers(dest="command"))
    config = cli.resolve_config(parser.parse_args(
        ["meta-train", "--init-theta", "lstm-generalist", "--lopt", "lstm"]))
    assert (config.init_theta, config.lopt) == ("lstm-generalist", "lstm")
    code = main(["meta-train", "--init-theta", "lstm-generalist", "--outer-steps", "1",
                 "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "['lr_head']['b'] not in this optimizer" in err[0]
    assert not (tmp_path / "run" / "theta.json").exists()
