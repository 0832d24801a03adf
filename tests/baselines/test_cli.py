"""The ``compare`` subcommand: parser, optimizer resolution, an end-to-end run."""

import argparse
import json

import jax
import numpy as np
import pytest

from baselines import cli


def _parser():
    parser = argparse.ArgumentParser(prog="l2o")
    cli.add_parser(parser.add_subparsers(dest="command"))
    return parser


def test_parser_defaults_and_flags():
    args = _parser().parse_args(["compare", "--family", "quadratic", "--guard", "--steps", "12",
                                 "--seeds", "3", "--tasks", "5", "--out", "x"])
    assert args.func is cli.run and args.guard and args.optimizers == "adam,lion,lookahead"
    assert (args.steps, args.seeds, args.tasks, args.out) == (12, 3, 5, "x")


def test_old_num_tasks_flag_warns_and_means_held_out_tasks(capsys):
    args = _parser().parse_args(["compare", "--family", "quadratic", "--num-tasks", "0"])
    with pytest.raises(SystemExit, match="--tasks must be >= 1, got 0"):
        cli.run(args)
    assert "--num-tasks is deprecated here; use --tasks" in capsys.readouterr().err


def test_resolve_optimizer_names_files_and_errors(tmp_path):
    import l2o

    assert cli.resolve_optimizer("lion") == "lion"
    lopt = l2o.MLPOptimizer(hidden_sizes=(4,))
    theta = lopt.init_meta_params(jax.random.PRNGKey(0))
    l2o.save(tmp_path / "mine", lopt, theta)
    factory = cli.resolve_optimizer(str(tmp_path / "mine.json"))
    tx = factory(10)
    params = {"w": np.ones(3, np.float32)}
    updates, _ = tx.update({"w": np.ones(3, np.float32)}, tx.init(params), params, value=1.0)
    assert np.all(np.isfinite(updates["w"]))
    with pytest.raises(ValueError, match="unknown optimizer 'nope'"):
        cli.resolve_optimizer("nope")


def test_resolve_families_uses_the_task_registry():
    train, heldout = cli.resolve_families("quadratic")
    assert (train.name, heldout.name) == ("quadratic", "quadratic")
    assert (train.split, heldout.split) == ("train", "heldout")


def test_run_writes_a_report_on_a_registered_family(tmp_path, capsys):
    args = _parser().parse_args([
        "compare", "--family", "quadratic", "--optimizers", "adam,sgd", "--no-tune",
        "--steps", "8", "--seeds", "1", "--tasks", "2", "--out", str(tmp_path),
    ])
    assert cli.run(args) == 0
    data = json.loads((tmp_path / "results.json").read_text())
    assert list(data["rows"]) == ["adam", "sgd"] and data["rows"]["sgd"]["hparams"] == {"learning_rate": 1e-2}
    assert data["config"]["heldout_family"] == "quadratic" and not data["config"]["tune"]
    assert len(data["rows"]["adam"]["train_loss"][0][0]) == 8
    assert "speedup" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="--steps must be >= 1"):
        cli.run(_parser().parse_args(["compare", "--family", "quadratic", "--steps", "0"]))


@pytest.mark.slow
def test_compare_on_mlp_digits_with_a_guarded_learned_optimizer(tmp_path):
    import l2o

    lopt = l2o.MLPOptimizer()
    l2o.save(tmp_path / "fresh", lopt, lopt.init_meta_params(jax.random.PRNGKey(0)))
    args = _parser().parse_args([
        "compare", "--family", "mlp-digits", "--optimizers",
        f"adam,lion,lookahead,{tmp_path / 'fresh.json'}", "--guard", "--steps", "150",
        "--seeds", "2", "--tasks", "2", "--out", str(tmp_path / "out"),
    ])
    assert cli.run(args) == 0
    data = json.loads((tmp_path / "out" / "results.json").read_text())
    fresh = str(tmp_path / "fresh")  # a file entry's row is its path without the suffix
    assert list(data["rows"]) == ["adam", "lion", "lookahead", fresh, f"{fresh}+guard"]
    adam = data["rows"]["adam"]["metrics"]
    first = np.nanmean(np.array(data["rows"]["adam"]["train_loss"], float)[..., 0])
    assert adam["tail_train_loss"] < 0.5 * first  # tuned Adam trains the MLP
    assert data["rows"][f"{fresh}+guard"]["metrics"]["divergences"] == 0
    assert (tmp_path / "out" / "performance_profile.png").exists()
