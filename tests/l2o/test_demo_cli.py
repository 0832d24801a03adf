"""The ``l2o`` CLI wiring, ``l2o demo`` and the shipped-optimizer listing."""

import json
import subprocess
import sys
from pathlib import Path

import jax
import pytest

import l2o
from l2o.app.cli import main
from l2o.app.cli import build_parser
from l2o.app.demo import DemoConfig, config_from_args, learned_rows
from meta_train.config import MetaTrainConfig

ROOT = Path(__file__).resolve().parents[2]


def test_every_subcommand_is_registered(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for command in ("demo", "meta-train", "compare", "pretrained"):
        assert command in text


def test_pretrained_listing_names_every_shipped_optimizer(capsys):
    assert main(["pretrained"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert listed == l2o.list_pretrained()
    assert {"mlp-image", "lstm-image", "mlp-quadratic", "lstm-quadratic"} <= set(listed)


def test_pretrained_show_prints_provenance(capsys):
    assert main(["pretrained", "mlp-quadratic"]) == 0
    out = capsys.readouterr().out
    record = json.loads(out[out.index("{"):])
    provenance = record["provenance"]
    assert provenance["strategy"] == "pes" and provenance["family"] == "quadratic"
    assert provenance["recipe"] == "python scripts/pretrain.py mlp-quadratic"


@pytest.mark.parametrize("field, value", [("seeds", -1), ("steps", 2.5), ("tasks", 0)])
def test_demo_config_rejects_bad_sizes(field, value):
    with pytest.raises(ValueError, match=f"{field} must be a positive integer"):
        DemoConfig(**{field: value})
    with pytest.raises(ValueError, match="outer_steps must be a positive integer"):
        DemoConfig(meta=MetaTrainConfig(outer_steps=0))


def _demo_args(*argv):
    return build_parser().parse_args(["demo", *argv])


def test_demo_flags_set_the_meta_training_config():
    config = config_from_args(_demo_args(
        "--outer-steps", "7", "--horizon", "40", "--trunc-length", "10", "--num-tasks", "2",
        "--num-pairs", "3", "--seed", "5", "--steps", "30", "--tasks", "4", "--seeds", "2",
        "--set", "sigma=0.05", "--out", "somewhere"))
    meta = config.meta
    assert (meta.outer_steps, meta.horizon, meta.trunc_length, meta.num_tasks, meta.num_pairs,
            meta.seed, meta.sigma) == (7, 40, 10, 2, 3, 5, 0.05)
    assert (config.steps, config.tasks, config.seeds) == (30, 4, 2)
    run = config.meta_train_config()
    assert run.out_dir == str(Path("somewhere") / "meta-train") and run.ckpt_every == 50
    assert run.recipe == meta.recipe and meta.eval_every == 0


def test_demo_config_needs_truncation_dividing_horizon(capsys):
    with pytest.raises(ValueError, match="must divide horizon"):
        config_from_args(_demo_args("--horizon", "100", "--trunc-length", "30"))
    config = config_from_args(_demo_args("--eval-tasks", "3"))
    assert config.tasks == 3 and "--eval-tasks is deprecated; use --tasks" in capsys.readouterr().err


def test_demo_defaults_compare_the_shipped_generalists(tmp_path):
    defaults = DemoConfig().pretrained
    assert defaults == ("mlp-generalist-2x16-hd", "lstm-generalist-hd")
    lopt = l2o.MLPOptimizer()
    path = tmp_path / "theta"
    l2o.save(path, lopt, lopt.init_meta_params(jax.random.PRNGKey(0)), {})
    rows, notes = learned_rows(path, defaults)
    assert notes == [] and list(rows) == ["mlp (demo)", *defaults]
    params = {"w": jax.numpy.ones((3, 2)), "b": jax.numpy.zeros(2)}
    for name in defaults:  # both read the loss: value= reaches them through the optax form
        tx = rows[name](10)
        updates, _ = tx.update(params, tx.init(params), params, value=jax.numpy.float32(2.0))
        assert all(bool(jax.numpy.all(jax.numpy.isfinite(u))) for u in jax.tree.leaves(updates))


def test_learned_rows_skip_missing_pretrained_with_a_note(tmp_path):
    lopt = l2o.MLPOptimizer()
    path = tmp_path / "theta"
    l2o.save(path, lopt, lopt.init_meta_params(jax.random.PRNGKey(0)), {})
    rows, notes = learned_rows(path, ("mlp-quadratic", "no-such-optimizer"))
    assert list(rows) == ["mlp (demo)", "mlp-quadratic"]
    assert len(notes) == 1 and "no-such-optimizer" in notes[0]
    tx = rows["mlp-quadratic"](10)
    params = {"x": jax.numpy.ones(3)}
    updates, _ = tx.update(params, tx.init(params), params, value=jax.numpy.float32(1.0))
    assert jax.tree.structure(updates) == jax.tree.structure(params)


@pytest.mark.slow
def test_demo_end_to_end_writes_the_report(tmp_path):
    out = tmp_path / "demo"
    cmd = [sys.executable, "-m", "l2o.app.cli", "demo", "--out", str(out), "--outer-steps", "4",
           "--horizon", "40", "--trunc-length", "20", "--num-tasks", "2", "--num-pairs", "2",
           "--steps", "40", "--seeds", "2", "--tasks", "2", "--pretrained",
           "mlp-image,mlp-generalist-2x16-hd"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    rows = set(results["rows"])
    assert {"adam", "lion", "lookahead", "mlp (demo)", "mlp (demo)+guard", "mlp-image",
            "mlp-image+guard", "mlp-generalist-2x16-hd", "mlp-generalist-2x16-hd+guard"} <= rows
    for name in ("report.md", "loss_curves.png", "performance_profile.png"):
        assert (out / name).stat().st_size > 0
    assert (out / "meta-train" / "theta.json").is_file()
    assert results["config"]["evaluated_on"]["split"] == "train"
    assert "mlp (demo)+guard" in done.stdout and "speedup median" in done.stdout
