"""Meta-training with the loss guard in the loop, end to end: CLI, files, comparison."""

from __future__ import annotations

import json

import jax
import optax
import pytest

import l2o
from l2o.app.cli import main
from meta_train.train import build, train

from helpers.reliability import tiny_config

GUARDED_CONFIG = {"learned": {"architecture": "mlp", "config": {"hidden_sizes": [4]}},
                  "fallback": {"name": "sgd", "learning_rate": 0.1}}


def test_meta_train_cli_with_the_guard_saves_and_loads_it(tmp_path, capsys):
    run = tmp_path / "run"
    code = main(["meta-train", "--family", "quadratic", "--lopt", "guarded",
                 "--set", "lopt_config=" + json.dumps(GUARDED_CONFIG),
                 "--horizon", "4", "--trunc-length", "2", "--num-tasks", "2", "--num-pairs",
                 "1", "--outer-steps", "3", "--no-progress", "--out", str(run),
                 "--set", "eval_every=0", "--set", "eval_tasks=1", "--set", "shard=false"])
    assert code == 0
    loaded = l2o.load(run / "theta")
    expected = l2o.GuardedOptimizer(l2o.MLPOptimizer(hidden_sizes=(4,)),
                                    l2o.OptaxSpec("sgd", learning_rate=0.1))
    assert loaded.lopt == expected and loaded.horizon == 4
    assert loaded.record["provenance"]["outer_steps"] == 3
    assert json.loads((run / "config.json").read_text())["lopt"] == "guarded"
    # The saved optimizer runs in the comparison CLI (as a guarded row of its own).
    capsys.readouterr()
    code = main(["compare", "--family", "quadratic", "--optimizers", str(run / "theta.json"),
                 "--no-tune", "--steps", "8", "--seeds", "1", "--tasks", "1",
                 "--out", str(tmp_path / "compare")])
    assert code == 0
    rows = json.loads((tmp_path / "compare" / "results.json").read_text())["rows"]
    label = str(run / "theta")  # a theta file's row is labelled by its path
    assert set(rows) == {"adam", label} and rows[label]["kind"] == "learned"
    assert rows[label]["diverged"] == [[False]]


def test_train_refuses_an_unsaveable_optimizer_before_training(tmp_path):
    guarded = l2o.GuardedOptimizer(l2o.MLPOptimizer(hidden_sizes=(4,)), optax.sgd(0.1))
    config = tiny_config(tmp_path / "run")
    with pytest.raises(TypeError, match="fallback is an optax transform object"):
        train(config, progress=False, components=build(config, lopt=guarded))
    assert not (tmp_path / "run" / "checkpoint.msgpack").exists()


def test_guarded_meta_training_moves_theta(tmp_path):
    guarded = l2o.registry.get("guarded", **GUARDED_CONFIG)
    config = tiny_config(tmp_path / "run", lopt="guarded", lopt_config=GUARDED_CONFIG)
    result = train(config, progress=False)
    start = build(config).theta_init
    moved = [float(abs(a - b).max()) for a, b in zip(jax.tree.leaves(result.theta),
                                                      jax.tree.leaves(start))]
    assert max(moved) > 0
    assert l2o.load(result.theta_path).lopt == guarded
