"""Run-directory rules (new run, resume, overwrite) and the kept previous checkpoint."""

from __future__ import annotations

import numpy as np
import pytest

from meta_train.checkpoint import (
    CHECKPOINT, PREVIOUS, CheckpointError, checkpoint_step, keep_previous, save_checkpoint,
)
from meta_train.run_dir import AlreadyDone, NothingToResume, RunExists, prepare_new, resume_step

STATE = {"x": np.arange(3, dtype=np.float32)}


def test_keep_previous_holds_the_checkpoint_one_period_older(tmp_path):
    path = tmp_path / CHECKPOINT
    for step in (1, 2, 3):
        keep_previous(path)
        save_checkpoint(path, STATE, {"step": step})
    assert checkpoint_step(path) == 3 and checkpoint_step(tmp_path / PREVIOUS) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([CHECKPOINT, PREVIOUS])


def test_prepare_new_refuses_a_run_unless_overwrite_and_then_clears_it(tmp_path):
    prepare_new(tmp_path / "fresh")  # nothing there: fine
    save_checkpoint(tmp_path / CHECKPOINT, STATE, {"step": 7})
    (tmp_path / "metrics.csv").write_text("step\n1\n")
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(RunExists, match=r"already holds a run \(checkpoint at step 7\)"):
        prepare_new(tmp_path)
    prepare_new(tmp_path, overwrite=True)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]  # only the run's files go


def test_resume_step_needs_a_readable_checkpoint_before_the_target(tmp_path):
    with pytest.raises(NothingToResume, match="--allow-fresh"):
        resume_step(tmp_path, 10)
    assert resume_step(tmp_path, 10, allow_fresh=True) == 0
    save_checkpoint(tmp_path / CHECKPOINT, STATE, {"step": 4})
    assert resume_step(tmp_path, 10) == 4
    with pytest.raises(AlreadyDone, match="already at step 4 .asked for --outer-steps 3"):
        resume_step(tmp_path, 3)
    (tmp_path / CHECKPOINT).write_bytes(b"\x82\xa6leaves")
    with pytest.raises(CheckpointError, match="is truncated or corrupt"):
        resume_step(tmp_path, 10)
