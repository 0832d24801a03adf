"""MetaTrainConfig validation, (de)serialisation, overrides, and the meta-train CLI parser."""

from __future__ import annotations

import argparse
import dataclasses
import json

import pytest

from meta_train import cli
from meta_train.config import MetaTrainConfig, Recipe, RunSettings


def test_defaults_roundtrip_through_json(tmp_path):
    config = MetaTrainConfig(family="quadratic", lopt_config={"hidden_sizes": [8]}, seed=3)
    path = tmp_path / "c.json"
    config.to_json(path)
    assert MetaTrainConfig.from_json(path) == config
    assert MetaTrainConfig.from_dict(config.to_dict()) == config
    assert config.to_dict()["seed"] == 3


@pytest.mark.parametrize(
    "fields, error, match",
    [
        ({"horizon": 200, "trunc_length": 30}, ValueError,
         "trunc_length=30 must divide horizon=200 \\(divisors of 200: \\[1, 2, 4, 5, 8, 10, 20, 25"),
        ({"num_pairs": 0}, ValueError, "num_pairs must be >= 1, got 0"),
        ({"sigma": -0.1}, ValueError, "sigma must be > 0, got -0.1"),
        ({"strategy": "cma"}, ValueError, "unknown strategy 'cma'; valid: \\['pes', 'tes', 'nres'\\]"),
        ({"meta_loss": "mse"}, ValueError, "unknown meta_loss 'mse'; valid: \\['log', 'normalized'"),
        ({"horizon": "200"}, TypeError, "horizon must be an int, got '200' \\(str\\)"),
        ({"num_tasks": True}, TypeError, "num_tasks must be an int, got True"),
        ({"sigma": "big"}, TypeError, "sigma must be a number"),
        ({"lopt_config": [1]}, TypeError, "lopt_config must be a dict"),
        ({"stagger": 1}, TypeError, "stagger must be true or false"),
        ({"min_ratio": 20.0}, ValueError, "min_ratio \\(20.0\\) must be below max_ratio \\(10.0\\)"),
        ({"min_ratio": 0.0}, ValueError, "min_ratio must be > 0, got 0.0"),
    ],
)
def test_invalid_fields_are_explained(fields, error, match):
    with pytest.raises(error, match=match):
        MetaTrainConfig(**fields)


def test_unknown_keys_and_names():
    with pytest.raises(ValueError, match="unknown config key\\(s\\) \\['sigam'\\]; valid keys: .*'sigma'"):
        MetaTrainConfig.from_dict({"sigam": 0.1})
    with pytest.raises(ValueError, match="unknown lopt 'transformer'; valid: \\['guarded', 'lstm', 'mlp', 'mlp-2x16', "
                       "'mlp-2x32', 'mlp-2x8'\\]"):
        MetaTrainConfig(lopt="transformer").check_names()
    with pytest.raises(ValueError, match="unknown task family 'imagenet'; valid: .*'quadratic'"):
        MetaTrainConfig(family="imagenet").check_names()
    MetaTrainConfig(family="quadratic", lopt="lstm").check_names()


def test_bad_json_file(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("{sigma: 1")
    with pytest.raises(ValueError, match="is not valid JSON"):
        MetaTrainConfig.from_json(path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        MetaTrainConfig.from_json(tmp_path / "missing.json")


def test_overrides_coerce_types():
    config = MetaTrainConfig().with_overrides([
        "sigma=0.02", "num_tasks=4", "stagger=false", "heldout_family=none",
        "lopt_config.hidden_sizes=[16, 16]", "lopt_config.normalize_over=all",
        "strategy=nres",
    ])
    assert config.sigma == 0.02 and config.num_tasks == 4 and config.stagger is False
    assert config.heldout_family is None and config.strategy == "nres"
    assert config.lopt_config == {"hidden_sizes": [16, 16], "normalize_over": "all"}
    assert MetaTrainConfig().with_overrides(['lopt_config={"a": 1}']).lopt_config == {"a": 1}
    with pytest.raises(ValueError, match="override num_tasks='four': expected an int"):
        MetaTrainConfig().with_overrides(["num_tasks=four"])
    with pytest.raises(ValueError, match="not of the form key=value"):
        MetaTrainConfig().with_overrides(["sigma"])
    with pytest.raises(ValueError, match="unknown config key 'lr'"):
        MetaTrainConfig().with_overrides(["lr=3"])
    with pytest.raises(ValueError, match="must divide horizon"):
        MetaTrainConfig().with_overrides(["trunc_length=7"])


def _parse(argv):
    parser = argparse.ArgumentParser(prog="l2o")
    cli.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["meta-train", *argv])


def test_cli_precedence_and_print_config(tmp_path, capsys):
    path = tmp_path / "c.json"
    MetaTrainConfig(family="quadratic", sigma=0.5, seed=7).to_json(path)
    args = _parse(["--config", str(path), "--sigma", "0.2", "--outer-steps", "50",
                   "--set", "sigma=0.03", "--out", str(tmp_path / "o"), "--print-config"])
    config = cli.resolve_config(args)
    assert (config.family, config.sigma, config.seed, config.outer_steps) == ("quadratic", 0.03, 7, 50)
    assert config.out_dir == str(tmp_path / "o")
    assert args.func(args) == 0
    assert json.loads(capsys.readouterr().out)["sigma"] == 0.03


def test_cli_resume_uses_the_runs_config(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    MetaTrainConfig(family="quadratic", horizon=40, trunc_length=10).to_json(run_dir / "config.json")
    config = cli.resolve_config(_parse(["--resume", str(run_dir), "--outer-steps", "9"]))
    assert (config.horizon, config.outer_steps, config.out_dir) == (40, 9, str(run_dir))


def test_cli_refuses_the_old_steps_flag(capsys):
    from l2o.app.cli import main

    assert main(["meta-train", "--steps", "100"]) == 2
    err = capsys.readouterr().err
    assert "--steps no longer sets the outer steps" in err and "--outer-steps" in err
    config = cli.resolve_config(_parse(["--tasks", "3", "--num-tasks", "2", "--horizon", "40"]))
    assert (config.eval_tasks, config.num_tasks, config.horizon) == (3, 2, 40)


def test_cli_reports_bad_config(capsys):
    from l2o.app.cli import main

    assert main(["meta-train", "--lopt", "nope"]) == 2
    assert "l2o meta-train: error: unknown lopt 'nope'" in capsys.readouterr().err
    assert main(["meta-train", "--set", "trunc_length=7"]) == 2
    assert "must divide horizon=200" in capsys.readouterr().err


def test_recipe_and_run_settings_partition_the_fields():
    recipe = {f.name for f in dataclasses.fields(Recipe)}
    run = {f.name for f in dataclasses.fields(RunSettings)}
    assert recipe.isdisjoint(run)
    assert recipe | run == {f.name for f in dataclasses.fields(MetaTrainConfig)}
    config = MetaTrainConfig(sigma=0.02, out_dir="x", outer_steps=5)
    assert config.recipe == Recipe(sigma=0.02)
    assert config.run_settings == RunSettings(out_dir="x", outer_steps=5)
    moved = config.with_overrides(["out_dir=y", "num_devices=0", "eval_every=3", "outer_steps=9"])
    assert moved.recipe == config.recipe and moved.run_settings != config.run_settings
    assert config.with_overrides(["seed=1"]).recipe != config.recipe


@pytest.mark.parametrize("name", [f.name for f in dataclasses.fields(MetaTrainConfig)])
def test_every_field_rejects_a_value_of_the_wrong_type(name):
    with pytest.raises(TypeError, match=f"invalid MetaTrainConfig: {name} must be"):
        MetaTrainConfig(**{name: object()})
