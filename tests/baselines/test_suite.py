"""The held-out suite: metric definitions on constructed curves, the suite-wide learning
rate, tuning = argmin of the final train loss, a tiny end-to-end run and its report."""

import json
import subprocess
import sys

import jax
import numpy as np
import optax
import pytest
from helpers.scripts import ROOT, load_script

from baselines import evaluate, optimizers, suite, suite_report
from baselines.evaluate import EvalResult
from tasks import heldout


def _result(curve, final_train, diverged=None, seeds=2):
    """An EvalResult of one task x ``seeds`` with the same train curve for every seed."""
    curve = np.asarray(curve, float)
    final_train = np.broadcast_to(np.asarray(final_train, float), (seeds,))
    evals = np.stack([np.stack([np.full(3, 9.0)] * seeds)])
    evals[0, :, -1] = final_train
    return EvalResult(
        train_loss=np.broadcast_to(curve, (1, seeds, curve.size)).copy(),
        eval_steps=np.array([0, curve.size // 2, curve.size]),
        eval_loss=evals + 1.0, eval_train_loss=evals,
        num_nonfinite=np.zeros((1, seeds), int),
        diverged=np.zeros((1, seeds), bool) if diverged is None else np.asarray([diverged]),
        seconds_per_step=1.0, compile_seconds=0.0, device="cpu",
    )


def test_speedup_and_losses_on_constructed_curves():
    # 20 steps, smoothing window ceil(0.1 * 20) = 2. Adam: 20, 19, ..., 1 -> its smoothed
    # final value is (2 + 1) / 2 = 1.5, first reached at step 20.
    adam = _result(np.arange(20, 0, -1), 0.5)
    fast = _result(np.concatenate([np.arange(10, 0, -1), np.ones(10)]), 0.25)  # 1.5 at step 10
    slow = _result(np.full(20, 5.0), [1.0, 3.0])                               # never
    m = suite.problem_metrics(fast, adam, slow)
    assert m["steps_to_target"] == 10 and m["speedup"] == 2.0
    assert m["final_train_loss"] == 0.25 and m["loss_ratio"] == 0.5
    # against `slow`: its target 5.0 is its own first smoothed value (step 1); fast's
    # smoothed curve first drops to <= 5 at step 7 ((5 + 4) / 2)
    assert m["speedup_vs_untuned"] == pytest.approx(1 / 7)
    never = suite.problem_metrics(slow, adam, adam)
    assert never["speedup"] == 0.0 and never["steps_to_target"] == np.inf
    assert never["final_train_loss"] == 2.0 and never["loss_ratio"] == 4.0
    assert suite.problem_metrics(adam, adam, adam)["speedup"] == 1.0
    # a diverged seed is left out of the final losses; all diverged -> ratio inf
    half = suite.problem_metrics(_result(np.ones(20), [1.0, 7.0], [False, True]), adam, adam)
    assert half["final_train_loss"] == 1.0 and half["divergences"] == 1
    gone = suite.problem_metrics(_result(np.ones(20), 1.0, [True, True]), adam, adam)
    assert np.isnan(gone["final_train_loss"]) and gone["loss_ratio"] == np.inf


def test_speedup_against_a_reference_that_never_reaches_its_own_target_is_impossible():
    """The reference always reaches its own final loss (its curve's last smoothed value)."""
    noisy = _result(np.random.default_rng(0).uniform(1, 2, 50), 1.0)
    assert suite.problem_metrics(noisy, noisy, noisy)["speedup"] == 1.0


def test_aggregate_hand_computed():
    def entry(speedup, final, untuned_speedup=1.0, divergences=0):
        return {"speedup": speedup, "speedup_vs_untuned": untuned_speedup,
                "final_train_loss": final, "loss_ratio": final / 2.0,
                "divergences": divergences, "num_runs": 3}

    rows = {"a": entry(0.0, 4.0), "b": entry(1.0, 2.0), "c": entry(2.0, 1.0, 3.0),
            "d": entry(4.0, float("nan"), 5.0, divergences=3)}
    rows["d"]["loss_ratio"] = float("inf")
    reference = {p: entry(1.0, 2.0) for p in rows}
    untuned = {p: entry(1.0, 3.0) for p in rows}
    a = suite.aggregate(rows, untuned, reference, num_resamples=500)
    assert a["speedup"]["median"] == 1.5 and a["speedup"]["iqm"] == 1.5  # mean of (1, 2)
    assert a["speedup"]["mean"] == 1.75 and a["speedup_vs_untuned"]["median"] == 2.0
    assert a["win_rate"] == pytest.approx((0 + 0.5 + 1 + 0) / 4)  # tie half, NaN loses
    assert a["win_rate_vs_untuned"] == 0.5
    assert a["never_reached"] == ["a"]
    assert a["loss_ratio_max"] == np.inf and a["loss_ratio_median"] == 1.5
    assert a["divergences"] == 3 and a["num_runs"] == 12


def test_suite_learning_rate():
    # point 1 is within 2x of the best everywhere; point 0 is best on one problem, 100x off
    # on the other; point 2 diverged on one problem.
    scores = np.array([[1.0, 1.5, np.inf], [100.0, 2.0, 1.0]])
    assert suite.suite_learning_rate(scores) == 1
    assert suite.suite_learning_rate(np.array([[1.0, 1.0], [1.0, 1.0]])) == 0  # ties: first
    assert suite.suite_learning_rate(np.array([[np.inf, np.inf], [np.inf, 5.0]])) == 1


@pytest.fixture(scope="module")
def tiny():
    """The convex problem, 12 steps x 2 seeds, Adam only (+ SGD and its guarded row)."""
    return suite.run_suite({"sgd": lambda n: optimizers.sgd(0.5)}, ["cancer-logreg"], steps=12,
                           num_seeds=2, guard=True, baselines=("adam",), progress=False,
                           key=jax.random.PRNGKey(1))


def test_default_grids_are_log_spaced_with_six_or_more_learning_rates():
    from baselines import registry

    for name in suite.BASELINES:
        grid = suite.SUITE_GRIDS.get(name, registry.get(name).grid)["learning_rate"]
        ratios = np.diff(np.log10(grid))
        assert len(grid) >= 6 and np.allclose(ratios, 0.5), (name, grid)
    assert suite.SUITE_GRIDS["adam"]["learning_rate"][-1] == pytest.approx(10**0.5)
    assert registry.get("lion").grid["weight_decay"] == (0.0, 1e-2, 1e-1)


def test_tuning_picks_the_argmin_of_the_final_train_loss(tiny):
    problem = tiny.problems["cancer-logreg"]
    tuning = problem.tuning["adam"]
    assert len(tuning.grid) == 10
    family = heldout.family("cancer-logreg")
    for index in (0, 5):  # two grid points, re-run alone with the same key
        lr = tuning.grid[index]["learning_rate"]
        alone = evaluate.evaluate(optimizers.adam(lr), family, 12, num_seeds=2, num_tasks=1,
                                  key=jax.random.PRNGKey(1))
        np.testing.assert_allclose(tuning.scores[index], alone.eval_train_loss[0, :, -1].mean(),
                                   rtol=1e-5)
    assert tuning.best == tuning.grid[int(np.argmin(tuning.scores))]
    assert list(problem.rows) == ["adam", "adam@suite", "sgd", "sgd+guard"]
    kind, hparams, adam = problem.rows["adam"]
    assert hparams == tuning.best
    np.testing.assert_allclose(problem.metrics["adam"]["final_train_loss"], tuning.scores.min(),
                               rtol=1e-6)
    # one problem: the suite-wide learning rate is that problem's
    assert tiny.config["untuned_hparams"] == tuning.best
    assert problem.metrics["adam"]["speedup"] == 1.0
    guarded = problem.metrics["sgd+guard"]
    assert 0.0 <= guarded["guard_learned_fraction"] <= 1.0
    assert tiny.aggregates["adam"]["win_rate"] == 0.5


def test_report_files(tiny, tmp_path):
    paths = suite_report.write_report(tiny, tmp_path)
    text = paths["markdown"].read_text()
    for needle in ("cancer-logreg", "breast_cancer", "linear 30-2", "full", "sgd+guard",
                   "adam@suite", "IQM"):
        assert needle in text
    data = json.loads(paths["json"].read_text())
    assert data["config"]["steps"] == 12
    row = data["problems"]["cancer-logreg"]["rows"]["sgd"]
    assert len(row["train_loss"]) == 2 and len(row["train_loss"][0]) == 12
    assert set(data["aggregates"]) == {"adam", "adam@suite", "sgd", "sgd+guard"}
    assert paths["summary"].stat().st_size > 0 and paths["curves"].stat().st_size > 0


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(problems=["iris"]), KeyError, "unknown held-out problem 'iris'"),
    (dict(problems=[]), ValueError, "problems is empty"),
    (dict(baselines=("lion",)), ValueError, "baselines must include 'adam'"),
    (dict(optimizers={"adam@suite": optax.sgd(0.1)}), ValueError, "clash with the baseline"),
])
def test_errors(kwargs, error, message):
    with pytest.raises(error, match=message):
        suite.run_suite(**{"optimizers": {}, **kwargs})


@pytest.mark.parametrize("args, message", [
    (["--problems", "wine-deep"], "Did you mean 'wine-deep-gelu'?"),
    (["--steps", "0"], "--steps must be >= 1, got 0."),
    (["no/such/theta"], "unknown optimizer 'no/such/theta'"),
])
def test_script_errors(args, message):
    with pytest.raises(SystemExit) as info:
        load_script("heldout_suite").main(args)
    assert message in str(info.value)


@pytest.mark.slow
def test_script_end_to_end(tmp_path):
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "heldout_suite.py"), "mlp-quadratic", "--guard",
         "--problems", "iris-elu,diabetes-tanh", "--steps", "20", "--seeds", "1",
         "--out", str(tmp_path)], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["config"]["problems"] == ["iris-elu", "diabetes-tanh"]
    assert {"adam", "lion", "lookahead", "adam@suite", "mlp-quadratic",
            "mlp-quadratic+guard"} == set(data["aggregates"])
    assert "mlp-quadratic+guard" in out.stdout


def _compare(*args):
    import argparse

    from baselines import cli

    parser = argparse.ArgumentParser(prog="l2o")
    cli.add_parser(parser.add_subparsers(dest="command"))
    parsed = parser.parse_args(["compare", *args])
    return parsed.func(parsed)


@pytest.mark.parametrize("args, message", [
    (["--suite", "heldout", "--family", "quadratic"], "pass --family or --suite, not both."),
    (["--family", "quadratic", "--problems", "iris-elu"], "--problems needs --suite heldout."),
    ([], "pass --family NAME (tasks.registry) or --suite heldout."),
    (["--suite", "heldout", "--problems", "iris,wine"], "unknown held-out problem 'iris'"),
    (["--suite", "heldout", "--seeds", "0"], "--seeds must be >= 1, got 0."),
])
def test_compare_cli_suite_errors(args, message):
    with pytest.raises(SystemExit) as info:
        _compare(*args)
    assert message in str(info.value)


def test_compare_cli_runs_the_suite(tmp_path, capsys):
    """``l2o compare --suite heldout``: baseline names are skipped (always run), a learned
    optimizer file becomes a row, the report lands in --out."""
    import l2o

    lopt = l2o.MLPOptimizer(hidden_sizes=(4,))
    l2o.save(tmp_path / "mine", lopt, lopt.init_meta_params(jax.random.PRNGKey(0)))
    assert _compare("--suite", "heldout", "--problems", "cancer-logreg", "--optimizers",
                    f"adam,lion,{tmp_path / 'mine'}", "--steps", "6", "--seeds", "1",
                    "--out", str(tmp_path / "out")) == 0
    data = json.loads((tmp_path / "out" / "results.json").read_text())
    assert (data["config"]["steps"], data["config"]["num_seeds"]) == (6, 1)
    mine = str(tmp_path / "mine")  # labelled by its path: two runs' theta files stay apart
    assert list(data["aggregates"]) == ["adam", "lion", "lookahead", "adam@suite", mine]
    assert mine in capsys.readouterr().out


def test_training_problems_have_the_heldout_interface_and_are_not_heldout():
    from tasks import heldout, training_problems

    assert not set(training_problems.names()) & set(heldout.names())
    d = training_problems.describe("mlp-digits-32")
    assert d["name"] == "mlp-digits-32" and d["dataset"] == "digits"
    assert training_problems.family("logreg-digits").name == "logreg-digits"
    with pytest.raises(KeyError, match="Did you mean 'ae-digits'"):
        training_problems.get("ae-digit")
