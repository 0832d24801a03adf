"""Every recipe under ``scripts/pretrain/`` is a valid config whose optimizer builds."""

import dataclasses
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from l2o import registry
from meta_train.config import MetaTrainConfig

RECIPES = sorted((Path(__file__).resolve().parents[2] / "scripts" / "pretrain").glob("*.json"))


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_recipe_is_a_valid_config(path):
    recipe = json.loads(path.read_text())
    assert recipe.pop("description").strip()
    config = MetaTrainConfig.from_dict(recipe)
    lopt = registry.get(config.lopt, **config.lopt_config)
    assert lopt.name == config.lopt


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
