"""``scripts/heldout_ablation.py``: variants of a recipe's optimizer at their initial theta."""

import json

import jax
import numpy as np
import pytest
from helpers.scripts import load_script


def test_parse_variant_reads_json_values():
    script = load_script("heldout_ablation")
    assert script.parse_variant('a:normalize_update=false,fan_in_scaling="none"') == (
        "a", {"normalize_update": False, "fan_in_scaling": "none"})
    assert script.parse_variant("b:hidden_sizes=[16, 16]") == ("b", {"hidden_sizes": [16, 16]})


@pytest.mark.parametrize("text, message", [
    ("no-colon", "expected LABEL:KEY=VALUE"),
    ("a:fan_in_scaling=none", "value of 'fan_in_scaling' is not JSON: 'none' (strings need quotes"),
    ("a:flag", "'flag' is not KEY=VALUE"),
])
def test_bad_variants_are_explained(text, message):
    with pytest.raises(SystemExit) as info:
        load_script("heldout_ablation").parse_variant(text)
    assert message in str(info.value)


def test_rows_start_from_the_recipes_initial_theta():
    """Row ``base`` is the recipe's optimizer at init_meta_params(fold_in(PRNGKey(seed), 1)),
    the starting point of meta-training; a variant changes only its override."""
    import l2o

    script = load_script("heldout_ablation")
    recipe = {"lopt": "mlp", "lopt_config": {"hidden_sizes": [4]}, "seed": 3}
    rows = script.variant_rows(recipe, [("wide", {"hidden_sizes": [6]})], seed=3)
    assert list(rows) == ["base", "wide"]
    lopt = l2o.MLPOptimizer(hidden_sizes=(4,))
    theta = lopt.init_meta_params(jax.random.fold_in(jax.random.PRNGKey(3), 1))
    params = {"w": jax.numpy.ones((3, 2))}
    grads = {"w": jax.numpy.full((3, 2), 0.5)}
    expected, _ = lopt.as_optax(theta, num_steps=5).update(grads, lopt.as_optax(
        theta, num_steps=5).init(params), params)
    tx = rows["base"](5)
    got, _ = tx.update(grads, tx.init(params), params)
    np.testing.assert_array_equal(got["w"], expected["w"])
    with pytest.raises(SystemExit, match="variant 'bad'"):
        script.variant_rows(recipe, [("bad", {"no_such_option": 1})], seed=3)


def test_script_runs_the_suite_on_a_recipe(tmp_path):
    script = load_script("heldout_ablation")
    assert script.main(["mlp-generalist-log", "plain:normalize_update=false", "--problems",
                        "cancer-logreg", "--steps", "5", "--seeds", "1",
                        "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "results.json").read_text())
    assert list(data["aggregates"]) == ["adam", "adam@suite", "base", "plain"]
    with pytest.raises(SystemExit, match="no recipe 'nope'"):
        script.main(["nope"])


def test_script_runs_on_the_training_problems(tmp_path):
    """``--training``: the same protocol on tasks.training_problems, named in the report."""
    script = load_script("heldout_ablation")
    assert script.main(["mlp-generalist-2x16-best", "adapt:lr_adapt=0.1", "--training",
                        "--problems", "teacher-regression", "--steps", "6", "--seeds", "1",
                        "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "results.json").read_text())
    assert list(data["aggregates"]) == ["adam", "adam@suite", "base", "adapt"]
    assert "tasks.training_problems" in (tmp_path / "report.md").read_text()
    with pytest.raises(SystemExit, match="unknown training problem 'iris-elu'"):
        script.main(["mlp-generalist-log", "--training", "--problems", "iris-elu"])
