"""One-line errors under ``l2o SUBCOMMAND: error:``; exit 2 for usage, 1 at run time."""

from __future__ import annotations

import numpy as np
import pytest

from meta_train.checkpoint import CHECKPOINT, PREVIOUS, save_checkpoint
from meta_train.config import MetaTrainConfig

from helpers.cli import TINY_META, run_l2o


def _one_error_line(err: str, command: str) -> str:
    lines = [line for line in err.splitlines() if line.strip() and "WARNING" not in line]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"l2o {command}: error: "), lines[0]
    return lines[0]


def _run_dir(tmp_path, step: int | None, **fields):
    """A run directory with config.json and (unless step is None) a checkpoint at ``step``."""
    run = tmp_path / "run"
    run.mkdir()
    config = MetaTrainConfig(family="quadratic", horizon=4, trunc_length=2, num_tasks=1,
                             num_pairs=1, out_dir=str(run), **fields)
    config.to_json(run / "config.json")
    if step is not None:
        save_checkpoint(run / CHECKPOINT, {"x": np.zeros(2, np.float32)}, {"step": step})
    return run


@pytest.mark.parametrize("argv, command, expected", [
    (["meta-train", "--set", "lopt_config.bogus=1"], "meta-train",
     "MLPOptimizer has no config field(s) ['bogus']"),
    (["meta-train", "--set", "dataset=mnist"], "meta-train", "pass --dataset mnist"),
    (["meta-train", "--family-option", "hidden_size=3"], "meta-train",
     "family_overrides has unknown key(s) ['hidden_size']"),
    (["meta-train", "--lopt", "nope"], "meta-train", "unknown lopt 'nope'"),
    (["compare", "--family", "quadratic", "--optimizers", "adam,nope"], "compare",
     "unknown optimizer 'nope'"),
    (["compare", "--family", "quadratic", "--optimizers", "mlp-image,mlp-image"], "compare",
     "--optimizers lists 'mlp-image' twice"),
    (["compare", "--family", "nope"], "compare", "unknown task family 'nope'"),
    (["compare", "--family", "quadratic", "--family-option", "dims=3"], "compare",
     "unknown override(s) ['dims']"),
    (["demo", "--pretrained", "mlp-image,nope"], "demo", "unknown optimizer(s) ['nope']"),
    (["demo", "--set", "lopt_config.bogus=1"], "demo", "no config field(s) ['bogus']"),
    (["demo", "--family", "nope"], "demo", "unknown --family 'nope'"),
    (["pretrained", "nope"], "pretrained", "unknown optimizer 'nope'"),
])
def test_bad_usage_is_one_line_and_exit_2(capsys, argv, command, expected):
    status, _, err = run_l2o(capsys, *argv)
    assert status == 2
    assert expected in _one_error_line(err, command)


def test_unprepared_dataset_is_one_line_and_exit_1(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("L2O_DATA_DIR", str(tmp_path / "empty"))
    status, _, err = run_l2o(capsys, "meta-train", *TINY_META, "--family", "mlp-digits",
                             "--dataset", "mnist", "--out", tmp_path / "run")
    assert status == 1
    line = _one_error_line(err, "meta-train")
    assert "dataset 'mnist' is not prepared" in line and "tfds build mnist" in line
    assert "already prepared" not in line


def test_existing_run_is_kept_without_overwrite(capsys, tmp_path):
    run = _run_dir(tmp_path, step=4)
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    status, _, err = run_l2o(capsys, "meta-train", *TINY_META, "--out", run)
    assert status == 2
    line = _one_error_line(err, "meta-train")
    assert "already holds a run (checkpoint at step 4)" in line
    assert f"--resume {run}" in line and "--overwrite" in line
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


def test_resume_without_checkpoint_fails_unless_asked_to_start_fresh(capsys, tmp_path):
    run = _run_dir(tmp_path, step=None)
    status, _, err = run_l2o(capsys, "meta-train", "--resume", run, "--outer-steps", "3")
    assert status == 2
    line = _one_error_line(err, "meta-train")
    assert f"has no {CHECKPOINT}: there is nothing to resume" in line and "--allow-fresh" in line


@pytest.mark.parametrize("outer_steps, status", [(3, 2), (4, 0)])
def test_resume_at_or_past_the_target_changes_nothing(capsys, tmp_path, outer_steps, status):
    run = _run_dir(tmp_path, step=4)
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    code, out, err = run_l2o(capsys, "meta-train", "--resume", run,
                             "--outer-steps", str(outer_steps))
    assert code == status
    message = _one_error_line(err, "meta-train") if status else out.strip()
    assert "is already at step 4" in message and "nothing changed" in message
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


def test_resume_with_a_changed_recipe_is_one_line(capsys, tmp_path):
    run = _run_dir(tmp_path, step=2)
    status, _, err = run_l2o(capsys, "meta-train", "--resume", run, "--sigma", "0.5")
    assert status == 2
    assert "different recipe (sigma: 0.01 -> 0.5)" in _one_error_line(err, "meta-train")


def test_truncated_checkpoint_names_the_file_and_the_way_out(capsys, tmp_path):
    run = _run_dir(tmp_path, step=2)
    path = run / CHECKPOINT
    path.write_bytes(path.read_bytes()[:40])
    status, _, err = run_l2o(capsys, "meta-train", "--resume", run, "--outer-steps", "5")
    assert status == 1
    line = _one_error_line(err, "meta-train")
    assert f"checkpoint '{path}' is truncated or corrupt" in line and "--overwrite" in line
    save_checkpoint(run / PREVIOUS, {"x": np.zeros(2, np.float32)}, {"step": 1})
    status, _, err = run_l2o(capsys, "meta-train", "--resume", run, "--outer-steps", "5")
    assert status == 1
    assert f"rename {PREVIOUS} (one checkpoint period older) to {CHECKPOINT}" in err


def test_top_level_help_lists_commands_and_exit_codes(capsys):
    with pytest.raises(SystemExit) as info:
        run_l2o(capsys, "--help")
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and "2 bad usage" in out and "130/143 interrupted" in out


@pytest.mark.parametrize("command, listed", [
    ("meta-train", ["quadratic", "mlp-digits", "options: dataset", "learned optimizers "
                    "(--lopt): guarded, lstm, mlp", "(default 1500)", "examples:"]),
    ("compare", ["baselines: adam", "shipped learned optimizers: lstm-generalist, lstm-generalist-hd, lstm-image", "mlp-digits",
                 "(default heldout", "examples:"]),
    ("demo", ["task families (--family):", "shipped optimizers (--pretrained):",
              "(default 300)", "examples:"]),
    ("pretrained", ["shipped optimizers: lstm-generalist, lstm-generalist-hd, lstm-image", "examples:"]),
])
def test_subcommand_help_has_lists_defaults_examples_and_no_rst(capsys, command, listed):
    with pytest.raises(SystemExit) as info:
        run_l2o(capsys, command, "--help")
    assert info.value.code == 0
    out = capsys.readouterr().out
    for text in listed:
        assert text in out, (command, text)
    assert "``" not in out and "::" not in out and ":func:" not in out


def test_top_level_help_does_not_import_jax():
    import subprocess
    import sys

    from helpers.cli import ROOT, subprocess_env

    code = ("import sys\nfrom l2o.app.cli import main\ntry:\n    main(['--help'])\n"
            "except SystemExit:\n    pass\nprint('jax' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=subprocess_env(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "False"
