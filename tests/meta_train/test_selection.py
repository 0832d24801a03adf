"""``keep="best"``: a run ships the theta of its best held-out evaluation, resumably."""

from __future__ import annotations

import argparse
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import serialization

import l2o
from meta_train import cli, selection
from meta_train.config import MetaTrainConfig
from meta_train.evaluate import mean_log_loss
from meta_train.train import build, train

from helpers.systems import TOY_FAMILY

LOPT = l2o.MLPOptimizer(hidden_sizes=(4,))


def _config(out_dir, **overrides) -> MetaTrainConfig:
    base = dict(family="toy", lopt="mlp", lopt_config={"hidden_sizes": [4]}, horizon=8,
                trunc_length=4, num_tasks=2, num_pairs=2, outer_steps=6, sigma=0.05,
                outer_lr=0.1, ckpt_every=3, log_every=1, eval_every=1, eval_tasks=2,
                keep="best", out_dir=str(out_dir))
    base.update(overrides)
    return MetaTrainConfig(**base)


def _train(config, **kwargs):
    components = build(config, family=TOY_FAMILY, heldout=TOY_FAMILY, lopt=LOPT)
    return train(config, progress=False, components=components, **kwargs)


def _eval_scores(run_dir) -> dict[int, float]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {int(r["step"]): r["eval_mean_log_loss"] for r in rows if "eval_mean_log_loss" in r}


def test_mean_log_loss_is_the_mean_log_of_the_curves_and_inf_when_one_diverged():
    losses = jnp.array([[1.0, math.e], [math.e ** 2, math.e ** 3]])
    np.testing.assert_allclose(mean_log_loss(losses), 1.5, rtol=1e-6)
    assert mean_log_loss(jnp.array([[1.0, jnp.nan]])) == math.inf
    assert mean_log_loss(jnp.array([[0.0, 1.0]])) < -40  # a zero loss is floored, not -inf


def test_choose_takes_the_lowest_finite_score_and_ties_go_to_the_later_theta():
    def c(step, score):
        return selection.Candidate(step, score, {"w": np.float32(step)}, {})

    assert selection.better(None, c(3, math.inf)) is None
    assert selection.better(c(2, 1.0), c(3, 1.0)).step == 2  # only a strict improvement
    assert selection.better(c(2, 1.0), c(3, 0.5)).step == 3
    assert selection.choose(c(9, 2.0), c(4, 1.0), c(0, 3.0)).step == 4
    assert selection.choose(c(9, 1.0), c(4, 1.0), c(0, 1.0)).step == 9
    assert selection.choose(c(9, math.nan), None, c(0, 3.0)).step == 0
    assert selection.choose(c(9, math.inf), None, c(0, math.inf)).step == 9


def test_a_run_keeps_the_theta_of_its_lowest_held_out_mean_log_loss(tmp_path):
    result = _train(_config(tmp_path / "run", outer_lr=0.5))  # improves, then drifts
    scores = _eval_scores(tmp_path / "run")
    assert sorted(scores) == [1, 2, 3, 4, 5, 6]
    scores[0] = result.final_eval["initial"]["mean_log_loss"]
    expected = min(sorted(scores, reverse=True), key=lambda s: scores[s])
    assert result.kept_step == expected == result.final_eval["kept"]["step"]
    assert 0 < expected < 6  # neither the initial nor the last theta: a real choice
    assert result.theta_path == tmp_path / "run" / "theta_best"
    lopt, theta, record = l2o.load(result.theta_path)
    jax.tree.map(np.testing.assert_array_equal, theta, result.theta)
    kept = record["provenance"]["kept"]
    assert (kept["keep"], kept["step"], kept["last_step"]) == ("best", expected, 6)
    np.testing.assert_allclose(kept["score"], scores[expected], rtol=1e-6)
    _, last, _ = l2o.load(tmp_path / "run" / "theta")  # the final theta is kept too
    assert last is not None


def test_keep_last_returns_the_final_theta_and_writes_no_best_file(tmp_path):
    result = _train(_config(tmp_path / "run", keep="last"))
    assert result.theta_path == tmp_path / "run" / "theta" and result.kept_step == 6
    assert "kept" not in result.final_eval
    assert not (tmp_path / "run" / "theta_best.json").exists()


def test_a_resumed_run_keeps_the_same_theta_as_an_uninterrupted_one(tmp_path):
    """The best theta is at the checkpoint's step 3, before the resume: only the copy
    carried in the checkpoint can give it back (steps 4-6 are worse, the initial theta too)."""
    whole = _train(_config(tmp_path / "whole", outer_lr=0.3))
    _train(_config(tmp_path / "split", outer_lr=0.3, outer_steps=3))
    split = _train(_config(tmp_path / "split", outer_lr=0.3), resume=tmp_path / "split")
    assert split.kept_step == whole.kept_step == 3
    assert ((tmp_path / "split" / "theta_best.msgpack").read_bytes()
            == (tmp_path / "whole" / "theta_best.msgpack").read_bytes())


def test_the_best_candidate_survives_a_checkpoint_round_trip():
    theta = LOPT.init_meta_params(jax.random.PRNGKey(0))
    best = selection.candidate(5, theta, {"mean_log_loss": -2.5, "final_train_loss": 0.1})
    extra = serialization.msgpack_restore(serialization.msgpack_serialize(selection.to_extra(best)))
    back = selection.from_extra(extra, theta)
    assert (back.step, back.score, back.evaluation) == (5, -2.5, best.evaluation)
    jax.tree.map(np.testing.assert_array_equal, back.theta, jax.device_get(theta))
    assert selection.from_extra({}, theta) is None


def test_keep_is_checked_and_has_a_flag(tmp_path):
    with pytest.raises(ValueError, match=r"unknown keep 'worst'; valid: \['last', 'best'\]"):
        MetaTrainConfig(keep="worst")
    parser = argparse.ArgumentParser(prog="l2o")
    cli.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["meta-train", "--keep", "best", "--out", str(tmp_path / "o")])
    assert cli.resolve_config(args).keep == "best"


def test_meta_train_cli_keep_best_names_the_kept_step_and_writes_theta_best(tmp_path, capsys):
    from l2o.app.cli import main

    run = tmp_path / "run"
    code = main(["meta-train", "--family", "quadratic", "--lopt", "mlp",
                 "--set", 'lopt_config={"hidden_sizes": [4]}', "--horizon", "4",
                 "--trunc-length", "2", "--num-tasks", "2", "--num-pairs", "1",
                 "--outer-steps", "4", "--keep", "best", "--no-progress", "--no-reference",
                 "--out", str(run), "--set", "eval_every=2", "--set", "eval_tasks=1",
                 "--set", "shard=false"])
    assert code == 0
    out = capsys.readouterr().out
    kept = json.loads((run / "final_eval.json").read_text())["kept"]
    assert f"meta-parameters: {run / 'theta_best'}.json" in out
    assert f"kept the theta of step {kept['step']}: held-out mean log loss" in out
    assert kept["step"] in (0, 2, 4)
    assert l2o.load(run / "theta_best").record["provenance"]["kept"]["step"] == kept["step"]
