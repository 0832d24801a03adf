"""Every recipe under ``scripts/pretrain/`` is a valid config whose optimizer builds."""

import dataclasses
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import l2o
from l2o import registry
from meta_train.config import MetaTrainConfig

RECIPES = sorted((Path(__file__).resolve().parents[2] / "scripts" / "pretrain").glob("*.json"))


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_recipe_is_a_valid_config(path):
    recipe = json.loads(path.read_text())
    assert recipe.pop("description").strip()
    ship_overrides = recipe.pop("ship_overrides", {})
    config = MetaTrainConfig.from_dict(recipe)
    lopt = registry.get(config.lopt, **config.lopt_config)
    assert lopt.name == config.lopt
    shipped = dataclasses.replace(lopt, **ship_overrides)  # the shipped form builds too
    key = jax.random.PRNGKey(0)
    assert (jax.tree.structure(shipped.init_meta_params(key))
            == jax.tree.structure(lopt.init_meta_params(key)))


def _first_update(lopt, params, grads):
    theta = lopt.init_meta_params(jax.random.PRNGKey(0))
    state = lopt.init(theta, params, num_steps=100)
    return lopt.update(theta, grads, state, params)[0]


def test_generalist_recipe_scales_updates_by_fan_in_and_normalises_the_learned_term():
    """The generalist's options as configured: a (64, 4) kernel's whole update is the
    unscaled one / sqrt(64) (a bias, fan-in 1, is unchanged), and without the nominal term
    the kernel's update has RMS step_mult / 8 whatever the network outputs."""
    recipe = json.loads((RECIPES[0].parent / "mlp-generalist.json").read_text())
    lopt = registry.get(recipe["lopt"], **recipe["lopt_config"])
    assert (lopt.fan_in_scaling, lopt.normalize_update, lopt.nominal) == ("inverse_sqrt", True, True)
    keys = jax.random.split(jax.random.PRNGKey(1), 4)
    params = {"b": jax.random.normal(keys[0], (4,)), "w": jax.random.normal(keys[1], (64, 4))}
    grads = {"b": jax.random.normal(keys[2], (4,)), "w": jax.random.normal(keys[3], (64, 4))}
    scaled = _first_update(lopt, params, grads)
    unscaled = _first_update(dataclasses.replace(lopt, fan_in_scaling="none"), params, grads)
    np.testing.assert_allclose(scaled["w"], unscaled["w"] / 8.0, rtol=1e-6)
    np.testing.assert_allclose(scaled["b"], unscaled["b"], rtol=1e-6)
    learned_only = _first_update(dataclasses.replace(lopt, nominal=False), params, grads)
    rms = float(jnp.sqrt(jnp.mean(jnp.square(learned_only["w"]))))
    np.testing.assert_allclose(rms, lopt.step_mult / 8.0, rtol=1e-5)


def _tiny_recipe(configs: Path, outer_steps: int) -> None:
    """``configs/tiny.json``: the reliability tests' tiny quadratic run as a recipe."""
    from tests.helpers.reliability import tiny_config

    config = tiny_config(configs, outer_steps=outer_steps, ckpt_every=1)
    recipe = {**config.to_dict(), "description": "tiny quadratic run"}
    (configs / "tiny.json").write_text(json.dumps(recipe))


def test_pretrain_resume_continues_bit_identically(tmp_path, monkeypatch):
    """``--resume --set outer_steps=4`` after a 2-step run ships the same meta-parameters
    as one 4-step run; ``--resume`` with ``--overwrite`` is refused."""
    from tests.helpers.scripts import load_script

    pretrain = load_script("pretrain")
    monkeypatch.setattr(pretrain, "CONFIGS", tmp_path)
    _tiny_recipe(tmp_path, outer_steps=2)
    split = ["--runs", str(tmp_path / "split"), "--dest", str(tmp_path / "split_out")]
    assert pretrain.main(["tiny", *split]) == 0
    assert pretrain.main(["tiny", "--resume", "--set", "outer_steps=4", *split]) == 0
    _tiny_recipe(tmp_path, outer_steps=4)
    whole = ["--runs", str(tmp_path / "whole"), "--dest", str(tmp_path / "whole_out")]
    assert pretrain.main(["tiny", *whole]) == 0
    split_file = (tmp_path / "split_out" / "tiny.msgpack").read_bytes()
    assert split_file == (tmp_path / "whole_out" / "tiny.msgpack").read_bytes()
    provenance = json.loads((tmp_path / "split_out" / "tiny.json").read_text())["provenance"]
    assert provenance["outer_steps"] == 4
    with pytest.raises(SystemExit):
        pretrain.main(["tiny", "--resume", "--overwrite", *split])


def test_pretrain_run_directory_follows_dest_and_an_existing_run_is_named(tmp_path, monkeypatch):
    """With ``--dest`` alone the run directory is ``DEST/runs/NAME`` (a quick check there
    leaves another destination's run alone); a second run into the same place stops with
    a message naming the recipe and the ways on, not a traceback."""
    from tests.helpers.scripts import load_script

    pretrain = load_script("pretrain")
    monkeypatch.setattr(pretrain, "CONFIGS", tmp_path)
    _tiny_recipe(tmp_path, outer_steps=1)
    assert pretrain.main(["tiny", "--dest", str(tmp_path / "quick")]) == 0
    assert (tmp_path / "quick" / "runs" / "tiny" / "config.json").is_file()
    assert (tmp_path / "quick" / "tiny.msgpack").is_file()
    assert pretrain.main(["tiny", "--dest", str(tmp_path / "real")]) == 0
    with pytest.raises(SystemExit, match=r"already holds a run of tiny; continue it with "
                                         r"--resume, replace it with --overwrite"):
        pretrain.main(["tiny", "--dest", str(tmp_path / "quick")])
    with pytest.raises(SystemExit, match="already at outer step 1; pass --set outer_steps=N"):
        pretrain.main(["tiny", "--dest", str(tmp_path / "quick"), "--resume"])
    with pytest.raises(SystemExit, match="has no run of tiny to resume"):
        pretrain.main(["tiny", "--dest", str(tmp_path / "none"), "--resume"])


def test_ship_only_rewrites_the_shipped_file_with_the_recipes_ship_overrides(tmp_path, monkeypatch):
    """``--ship-only`` writes the package file from a finished run without training, with
    ``ship_overrides`` applied to the optimizer's config (same theta) and recorded."""
    from tests.helpers.scripts import load_script

    pretrain = load_script("pretrain")
    monkeypatch.setattr(pretrain, "CONFIGS", tmp_path)
    _tiny_recipe(tmp_path, outer_steps=2)
    dest = ["--dest", str(tmp_path / "out")]
    with pytest.raises(SystemExit, match="holds no finished run of tiny"):
        pretrain.main(["tiny", "--ship-only", *dest])
    assert pretrain.main(["tiny", *dest]) == 0
    trained = l2o.load(tmp_path / "out" / "tiny")
    recipe = json.loads((tmp_path / "tiny.json").read_text())
    (tmp_path / "tiny.json").write_text(json.dumps({**recipe, "ship_overrides": {"unroll": False}}))
    assert pretrain.main(["tiny", "--ship-only", *dest]) == 0
    shipped = l2o.load(tmp_path / "out" / "tiny")
    assert shipped.lopt == dataclasses.replace(trained.lopt, unroll=False) != trained.lopt
    jax.tree.map(np.testing.assert_array_equal, shipped.theta, trained.theta)
    assert shipped.record["provenance"]["ship_overrides"] == {"unroll": False}
    assert shipped.record["provenance"]["outer_steps"] == 2
