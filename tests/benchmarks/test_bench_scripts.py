"""Smoke tests: every benchmark script runs end to end at tiny sizes, and its helpers
compute what they claim (exact state sizes, ratios, timings of known durations)."""

import json
import time

import jax
import pytest

from benchmarks import (
    common, compile_time, engine, memory, meta_throughput, optimizer_step, reference_pes,
    run_all, task_cost,
)

TINY_PES = ["--horizon", "4", "--trunc-length", "2", "--family", "synthetic-mlp"]


# ----------------------------------------------------------------- helpers
@pytest.mark.parametrize("platform, kind, slug", [
    ("cpu", "cpu", "cpu"),
    ("gpu", "NVIDIA H100 80GB HBM3", "h100"),
    ("gpu", "NVIDIA H200", "h200"),
    ("gpu", "Tesla V100-SXM2-16GB", "v100-sxm2-16gb"),
    ("tpu", "TPU v4", "v4"),
])
def test_device_slug(platform, kind, slug):
    assert common.device_slug(platform, kind) == slug


def test_time_interleaved_measures_known_durations():
    times = common.time_interleaved(
        {"short": lambda: time.sleep(0.002), "long": lambda: time.sleep(0.008)},
        iters=3, repeats=3)
    # Sleeps never end early; how late they end depends on the machine's load, so only
    # the lower bounds (which catch a wrong division by iters) are checked.
    assert times["short"]["min_s"] >= 0.002 and times["long"]["min_s"] >= 0.008
    for entry in times.values():
        assert entry["min_s"] <= entry["median_s"] <= entry["max_s"]
        assert (entry["iters"], entry["repeats"]) == (3, 3)


def test_merge_results_keeps_other_sections(tmp_path):
    path = tmp_path / "r.json"
    info = {"slug": "cpu", "loadavg": [0.0, 0.0, 0.0]}
    common.merge_results(path, "a", {"x": 1}, info)
    merged = common.merge_results(path, "b", {"y": 2}, info)
    on_disk = json.loads(path.read_text())
    assert on_disk == merged
    assert on_disk["a"]["x"] == 1 and on_disk["b"]["y"] == 2 and on_disk["device"] == info


def test_parse_ints_rejects_bad_input():
    assert common.parse_ints("1, 4,16", "--population") == [1, 4, 16]
    with pytest.raises(ValueError, match="--population"):
        common.parse_ints("1,x", "--population")
    with pytest.raises(ValueError, match="positive"):
        common.parse_ints("0", "--sizes")


def test_significant_keeps_the_precision_of_short_timings():
    """Millisecond timings keep 4 significant digits (4 decimals would leave 0.0018 of
    0.00176 and skew the ratios computed from them by several percent)."""
    assert common.significant(0.0017649) == 0.001765
    assert common.significant(12345.6) == 12350.0
    assert common.significant(-0.00012344, 3) == -0.000123


def test_layout_and_saturation():
    assert meta_throughput.layout(1, 8) == (1, 0)
    assert meta_throughput.layout(4, 8) == (2, 1)
    assert meta_throughput.layout(1024, 8) == (8, 64)
    with pytest.raises(ValueError, match="antithetic"):
        meta_throughput.layout(6, 2)
    assert meta_throughput.saturation_point([1, 4, 16, 64], [1.0, 3.0, 3.3, 3.5]) == 4
    assert meta_throughput.saturation_point([1, 4, 16], [1.0, 3.0, 9.0]) is None


def test_check_targets_uses_guard_difference():
    ratios = {"adam": 1.0, "mlp": 10.0, "guarded_mlp": 11.5, "lstm": 40.0, "guarded_lstm": 40.5}
    checks = optimizer_step.check_targets(ratios, "cpu")
    assert checks["mlp"] == {"value": 10.0, "limit": 14.0, "met": True}
    assert checks["guard_mlp"] == {"value": 1.5, "limit": 1.0, "met": False}
    assert checks["guard_lstm"]["value"] == 0.5 and checks["guard_lstm"]["met"]
    assert not optimizer_step.check_targets(ratios, "gpu")["lstm"]["met"]


def test_state_bytes_match_formulas():
    sizes = (8, 4, 2)
    n = 8 * 4 + 4 + 4 * 2 + 2
    states = memory.state_bytes_per_param(sizes)
    # Counters: Adam/Lion one int32 count; learned optimizers step + num_steps (int32).
    assert states["adam"]["bytes"] == 4 * 2 * n + 4
    assert states["lion"]["bytes"] == 4 * n + 4
    assert states["mlp"]["bytes"] == 4 * 6 * n + 8  # 5 momenta + second moment
    assert states["mlp-2x8"]["bytes"] == states["mlp"]["bytes"]  # hidden size: no state
    assert states["lstm"]["bytes"] == 4 * (2 * 2 * 20 + 1) * n + 8  # h, c of 2x20, momentum
    # Shipped generalists: 5 momenta + second moment + 4 loss statistics (3 EMAs, the first
    # loss); h, c of 1x8, one momentum and the nominal Adam term's two accumulators.
    assert states["mlp-generalist-log"]["bytes"] == 4 * 6 * n + 4 * 4 + 8
    assert states["mlp-generalist-2x16-best"]["bytes"] == states["mlp-generalist-log"]["bytes"]
    # lr_adapt: one float32 log learning-rate offset per tensor (4 tensors here)
    assert states["mlp-generalist-2x16-hd"]["bytes"] == states["mlp-generalist-log"]["bytes"] + 4 * 4
    assert states["lstm-generalist"]["bytes"] == 4 * (2 * 8 + 1 + 2) * n + 8
    assert states["lstm-generalist-hd"]["bytes"] == states["lstm-generalist"]["bytes"] + 4 * 4
    # The guard adds Adam's state, five counters, two flags, three losses, the running gap
    # and three running means; its paired runs the fallback and learned runs' params and
    # gradients, and the alone run's params, gradients and learned state.
    assert states["guarded_mlp"]["bytes"] == states["mlp"]["bytes"] + states["adam"]["bytes"] + 54
    paired = 4 * 4 * n + 4 * 2 * n + states["mlp"]["bytes"]
    assert states["shadowguarded_mlp"]["bytes"] == states["guarded_mlp"]["bytes"] + paired


# ----------------------------------------------------------------- scripts
def test_optimizer_step_script(tmp_path):
    out = tmp_path / "r.json"
    section = optimizer_step.main([
        "--sizes", "8,4,2", "--batch-size", "4", "--models", "mlp",
        "--optimizers", "lookahead,guarded_mlp", "--repeats", "1", "--block-seconds", "0.01",
        "--out", str(out)])
    entry = section["models"]["mlp-8-4-2"]
    assert entry["num_params"] == 46
    assert entry["ratio_to_adam"]["adam"] == 1.0
    ms = entry["ms_per_step"]
    assert entry["ratio_to_adam"]["lookahead"] == pytest.approx(ms["lookahead"] / ms["adam"], 1e-2)
    assert set(entry["targets"]) == set()  # neither mlp nor lstm was timed
    assert json.loads(out.read_text())["optimizer_step"]["models"]["mlp-8-4-2"]["num_params"] == 46


@pytest.mark.slow
def test_engine_script(tmp_path):
    """Engine vs minimal PES at tiny sizes: times, ratios and FLOPs are consistent, and the
    reference's per-leaf MLP optimizer computes l2o.MLPOptimizer's updates."""
    section = engine.main(["--configs", "mlp-2x8", "--num-tasks", "1", "--num-pairs", "1",
                           "--repeats", "1", "--out", str(tmp_path / "r.json"), *TINY_PES])
    entry = section["configs"]["mlp-2x8"]
    assert entry["direct_mlp_max_rel_diff"] < 1e-5
    assert entry["ratio_engine_to_reference"] == pytest.approx(
        entry["engine_s"] / entry["reference_s"], rel=2e-2)
    assert entry["engine_inner_steps_per_s"] == pytest.approx(2 * 2 / entry["engine_s"], rel=2e-2)
    assert entry["engine_gflop_per_step"] > 0 and 0 < entry["engine_fraction_of_peak"]
    assert set(entry["breakdown_s"]) == {"task_gradients", "learned_optimizer", "estimator"}
    assert "target" not in section  # mlp-2x32 was not timed


def test_reference_pes_steps_and_resets():
    """The minimal PES: xi is the sum of the steps' perturbations and resets with the run."""
    family = reference_pes_family()
    lopt = engine.CONFIGS["mlp-2x8"]()
    theta = lopt.init_meta_params(jax.random.PRNGKey(0))
    init, step = reference_pes.make_reference(
        family, *reference_pes.direct_mlp_functions(lopt), theta, num_tasks=2, num_pairs=1,
        trunc_length=2, horizon=4)
    state = init(jax.random.PRNGKey(1))
    assert state.xi.shape == (2, 2, 1, state.theta.size)
    starts = state.runs["t"][0, :, 0].tolist()
    assert starts == [0, 2]
    state, loss = step(state)
    assert bool(jax.numpy.isfinite(loss))
    # Task 1 started at step 2 and reached the horizon: reset, its accumulators zeroed.
    assert state.runs["t"][0, :, 0].tolist() == [2, 0]
    assert float(jax.numpy.max(jax.numpy.abs(state.xi[:, 1]))) == 0.0
    assert jax.numpy.allclose(state.xi[0, 0], -state.xi[1, 0])
    assert float(jax.numpy.max(jax.numpy.abs(state.xi[:, 0]))) > 0.0


def reference_pes_family():
    from benchmarks.models import synthetic_mlp_family

    return synthetic_mlp_family(sizes=(8, 4, 3), batch_size=4, num_examples=16)


@pytest.mark.slow
def test_meta_throughput_script(tmp_path):
    section = meta_throughput.main([
        "--population", "1,2", "--naive-max", "1", "--repeats", "1", "--block-seconds", "0.01",
        "--max-iters", "2", "--out", str(tmp_path / "r.json"), *TINY_PES])
    one, two = section["populations"]["1"], section["populations"]["2"]
    assert one["speedup_vs_population_1"] == 1.0
    assert one["naive"] == "measured" and two["naive"] == "extrapolated"
    for p, entry in ((1, one), (2, two)):
        assert entry["inner_steps_per_s"] == pytest.approx(
            p * 2 / (entry["ms_per_outer_step"] / 1e3), rel=1e-2)


def test_task_cost_script(tmp_path):
    section = task_cost.main(["--entries", "11,12", "--particles", "2", "--trunc", "2",
                              "--repeats", "1", "--out", str(tmp_path / "r.json")])
    names = [e["task"] for e in section["entries"]]
    assert names == ["quadratic/d10", "rosenbrock/d2"]
    assert [e["params"] for e in section["entries"]] == [10, 2]
    assert all(e["task_s"] > 0 and e["lopt_s"] > 0 for e in section["entries"])
    assert json.loads((tmp_path / "r.json").read_text())["task_cost"]["particles"] == 2
    with pytest.raises(SystemExit, match=r"--entries expects comma-separated indices in \[0, 13\)"):
        task_cost.main(["--entries", "13", "--no-save"])


@pytest.mark.slow
def test_memory_and_compile_time_scripts(tmp_path):
    out = tmp_path / "r.json"
    mem = memory.main(["--sizes", "8,4,2", "--population", "1", "--out", str(out), *TINY_PES])
    analysed = mem["outer_step"]["1"]["compiled_bytes"]
    assert analysed["total"] >= analysed["argument"] > 0
    comp = compile_time.main(["--population", "2", "--steps", "2", "--tasks", "1",
                              "--seeds", "1", "--optimizers", "adam", "--out", str(out),
                              *TINY_PES])
    step = comp["outer_step"]["2"]["step"]
    assert step["compile_s"] > 0 and step["total_s"] == pytest.approx(
        step["lower_s"] + step["compile_s"], abs=2e-3)
    merged = json.loads(out.read_text())
    assert {"memory", "compile_time", "device"} <= set(merged)
    assert merged["device"]["platform"] == jax.devices()[0].platform


def test_run_all_rejects_unknown_benchmark():
    with pytest.raises(ValueError, match="unknown benchmark"):
        run_all.run(["--only", "optimizer_step,nope"])
