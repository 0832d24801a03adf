"""compare() end to end on 2 toy tasks × 2 seeds, and the files report.py writes."""

import json

import jax
import numpy as np
import optax
import pytest

from baselines import compare as cmp
from baselines import evaluate as ev
from baselines import optimizers, registry
from baselines.report import write_report
from baselines.tune import tail_mean
from helpers.toy_family import toy_family

KEY = jax.random.PRNGKey(11)
STEPS = 30


def _learned_row():
    import l2o

    lopt = l2o.MLPOptimizer(hidden_sizes=(4,))
    theta = lopt.init_meta_params(jax.random.PRNGKey(0))
    return lambda num_steps: lopt.as_optax(theta, num_steps=num_steps)


@pytest.fixture(scope="module")
def results():
    narrow = {"learning_rate": (1e-2, 1e-1)}
    return cmp.compare(
        {
            "adam": registry.get("adam").with_grid(**narrow),
            "lookahead": registry.get("lookahead").with_grid(**narrow),
            "learned": _learned_row(),
            "blowup": optax.sgd(1e6),
        },
        toy_family(),
        steps=STEPS,
        num_seeds=2,
        num_tasks=2,
        heldout_family=toy_family(noise=0.2, split="heldout"),
        guard=True,
        key=KEY,
        progress=False,
    )


def test_reference_row_matches_a_direct_run(results):
    adam = results.rows["adam"]
    assert adam.hparams == results.tuning["adam"].best
    direct = ev.evaluate(
        optimizers.adam(adam.hparams["learning_rate"]), toy_family(noise=0.2), STEPS, 2, 2, jax.random.split(KEY)[1]
    )
    np.testing.assert_allclose(adam.result.train_loss, direct.train_loss, rtol=1e-5)
    np.testing.assert_allclose(adam.metrics["tail_train_loss"], tail_mean(direct.train_loss).mean(), rtol=1e-5)
    np.testing.assert_allclose(adam.metrics["final_test_loss"], direct.eval_loss[..., -1].mean(), rtol=1e-5)
    np.testing.assert_allclose(adam.metrics["final_train_loss"], direct.eval_train_loss[..., -1].mean(),
                               rtol=1e-5)
    # The toy's eval loss is the noise-free quadratic: below the noisy minibatch tail loss.
    assert adam.metrics["final_train_loss"] < adam.metrics["tail_train_loss"]
    assert adam.metrics["speedup_median"] == 1.0 and adam.metrics["win_rate"] == 0.5
    assert adam.metrics["time_ratio"] == 1.0 and adam.metrics["fraction_reached"] == 1.0


def test_rows_and_metrics_are_consistent(results):
    assert list(results.rows) == [
        "adam", "lookahead", "learned", "learned+guard", "blowup", "blowup+guard"
    ]
    assert results.rows["learned"].kind == "learned"
    assert results.rows["learned+guard"].kind == "guarded"
    for row in results.rows.values():
        per_task = row.metrics["per_task"]
        finals = np.asarray(per_task["tail_train_loss"])
        reference = np.asarray(per_task["reference_tail_train_loss"])
        wins = np.mean((np.nan_to_num(finals, nan=np.inf) < reference) + 0.5 * (finals == reference))
        assert row.metrics["win_rate"] == pytest.approx(wins)
        assert row.result.train_loss.shape == (2, 2, STEPS)
    learned = results.rows["learned"].metrics
    assert learned["divergences"] == 0 and np.isfinite(learned["final_train_loss"])


def test_diverging_optimizer_is_reported_not_raised(results):
    blowup = results.rows["blowup"].metrics
    assert blowup["divergences"] == blowup["num_runs"] == 4
    assert blowup["speedup_median"] == 0.0 and blowup["win_rate"] == 0.0
    assert np.isnan(blowup["final_train_loss"]) and np.isnan(blowup["tail_train_loss"])


def test_guard_with_tuned_adam_fallback_rescues_the_diverging_optimizer(results):
    guarded = results.rows["blowup+guard"]
    assert guarded.metrics["divergences"] == 0
    stats = guarded.result.final_stats
    assert stats["num_steps"].shape == (2, 2) and (stats["num_steps"] == STEPS).all()
    assert guarded.metrics["guard_learned_fraction"] < 0.2
    assert guarded.metrics["tail_train_loss"] < 2 * results.rows["adam"].metrics["tail_train_loss"]
    learned_fraction = results.rows["learned+guard"].metrics["guard_learned_fraction"]
    assert 0.0 <= learned_fraction <= 1.0


def test_report_files(results, tmp_path):
    paths = write_report(results, tmp_path / "out")
    data = json.loads(paths["json"].read_text())
    assert data["device"] == str(jax.devices()[0]) and data["versions"]["jax"] == jax.__version__
    assert data["config"]["steps"] == STEPS and data["config"]["grids"]["adam"]["learning_rate"] == [1e-2, 1e-1]
    adam = data["rows"]["adam"]
    assert adam["metrics"]["final_train_loss"] == pytest.approx(
        results.rows["adam"].metrics["final_train_loss"])
    np.testing.assert_allclose(np.array(adam["train_loss"]), results.rows["adam"].result.train_loss)
    assert data["rows"]["blowup"]["metrics"]["tail_train_loss"] is None
    assert data["rows"]["blowup"]["train_loss"][0][0][-1] is None
    assert data["tuning"]["lookahead"]["best"] == results.tuning["lookahead"].best
    fractions = np.array(data["performance_profile"]["fractions"])
    assert fractions.shape == (6, len(data["performance_profile"]["taus"]))
    assert fractions[0, -1] == 1.0 and fractions[4].max() == 0.0  # adam reaches, blowup never
    assert data["rows"]["blowup+guard"]["final_stats"]["num_steps"] == [[STEPS] * 2] * 2
    text = paths["markdown"].read_text()
    assert "| blowup |" in text and "4/4" in text and "cpu" in text.lower()
    assert "final train loss | final test loss | tail train loss" in text
    assert "tail train loss: mean minibatch training loss over the last 10% of steps" in text
    assert "blowup+guard:" in text
    for key in ("summary", "speedup", "curves", "profile"):
        assert paths[key].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_leads_with_the_winner_and_writes_never_reached(results, tmp_path):
    from baselines import stats
    from baselines.report import markdown
    from baselines.report_summary import lead, speedup_summary

    text = markdown(results)
    summaries = {n: speedup_summary(r) for n, r in results.rows.items() if n != "adam"}
    best = max(summaries, key=lambda n: (summaries[n]["median"], summaries[n]["iqm"]))
    speedups = np.asarray(results.rows[best].metrics["per_task"]["speedup"], float)
    assert summaries[best]["median"] == np.median(speedups)
    assert summaries[best]["iqm_ci"] == list(stats.bootstrap_ci(speedups, stats.iqm))
    first = text.split("\n\n")[1]
    assert first == lead(results) and first.startswith(f"**{best}** ")
    assert f"median speedup {summaries[best]['median']:.3g}×" in first
    assert "Diverged: blowup (4/4 runs)" in first and "blowup (2/2)" in first
    blowup_row = next(line for line in text.splitlines() if line.startswith("| blowup |"))
    assert "never reached [0, 0]" in blowup_row and "0×" not in blowup_row
    adam_row = next(line for line in text.splitlines() if line.startswith("| adam |"))
    assert adam_row.split(" | ")[10] == "—"  # no win rate of Adam against itself


def test_results_json_round_trips_into_the_same_report(results, tmp_path):
    from baselines.report import markdown
    from baselines.report_load import load_results

    paths = write_report(results, tmp_path / "a")
    loaded = load_results(paths["json"])
    again = write_report(loaded, tmp_path / "b")
    assert again["json"].read_text() == paths["json"].read_text()
    assert markdown(loaded) == markdown(results)


def test_compare_rejects_bad_entries():
    with pytest.raises(TypeError, match="expected a BaselineSpec"):
        cmp.compare({"x": 3}, toy_family(), steps=5, progress=False)
    with pytest.raises(KeyError, match="unknown baseline"):
        cmp.compare({"x": "adamw"}, toy_family(), steps=5, progress=False)
    with pytest.raises(TypeError, match="tuned reference"):
        cmp.compare({"adam": optax.adam(1e-3)}, toy_family(), steps=5, progress=False)
