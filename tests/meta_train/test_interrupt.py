"""SIGINT / SIGTERM during meta-training: checkpoint, one line, exit 130 / 143, exact resume."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import time

import jax
import numpy as np
import pytest

from meta_train.checkpoint import CHECKPOINT, checkpoint_step
from meta_train.config import MetaTrainConfig
from meta_train.interrupt import Interrupted, StopSignals
from meta_train.train import train

from helpers.cli import ROOT, TINY_META, l2o_command, subprocess_env


def test_stop_signals_records_the_first_signal_and_raises_on_the_second():
    previous = signal.getsignal(signal.SIGINT)
    with StopSignals() as stop:
        assert stop.signum is None
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.signum == signal.SIGTERM
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
    assert signal.getsignal(signal.SIGINT) is previous
    err = Interrupted(7, signal.SIGINT, "runs/x")
    assert str(err) == "interrupted at step 7; resume with: l2o meta-train --resume runs/x"
    assert (err.exit_status, Interrupted(1, signal.SIGTERM, "d").exit_status) == (130, 143)


def _rows(path):
    with open(path) as f:
        return [{k: v for k, v in row.items() if k not in ("wall_time", "steps_per_s")}
                for row in csv.DictReader(f)]


def _interrupt(run_dir, signum) -> subprocess.CompletedProcess:
    """Start a long tiny meta-training, send ``signum`` once a few steps are logged."""
    argv = l2o_command("meta-train", *TINY_META, "--outer-steps", "100000", "--out", run_dir,
                       "--no-reference", "--set", "log_every=1", "--set", "ckpt_every=0")
    process = subprocess.Popen(argv, cwd=ROOT, env=subprocess_env(), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    metrics, deadline = run_dir / "metrics.csv", time.monotonic() + 600
    while time.monotonic() < deadline and process.poll() is None:
        if metrics.is_file() and metrics.read_text().count("\n") >= 4:  # header + 3 steps
            break
        time.sleep(0.2)
    process.send_signal(signum)
    out, err = process.communicate(timeout=300)
    return subprocess.CompletedProcess(argv, process.returncode, out, err)


# SIGINT in the slow tier (the longer run of the two); SIGTERM by default.
@pytest.mark.parametrize("signum, status", [
    pytest.param(signal.SIGINT, 130, marks=pytest.mark.slow), (signal.SIGTERM, 143)])
def test_a_real_signal_checkpoints_and_the_resume_is_bit_identical(tmp_path, signum, status):
    run_dir = tmp_path / "interrupted"
    done = _interrupt(run_dir, signum)
    assert done.returncode == status, done.stderr[-3000:]
    last = done.stderr.strip().splitlines()[-1]
    _, _, rest = last.partition("interrupted at step ")
    step = int(rest.split(";")[0])
    assert last == f"interrupted at step {step}; resume with: l2o meta-train --resume {run_dir}"
    assert step >= 3 and checkpoint_step(run_dir / CHECKPOINT) == step  # ckpt_every=0: only it
    if signum != signal.SIGINT:
        return
    target = step + 2
    saved = MetaTrainConfig.from_json(run_dir / "config.json")
    resumed = train(saved.with_overrides([f"outer_steps={target}"]), resume=run_dir,
                    progress=False)
    straight = train(saved.with_overrides([f"outer_steps={target}",
                                           f"out_dir={tmp_path / 'straight'}"]), progress=False)
    assert resumed.steps == straight.steps == target
    for a, b in zip(jax.tree.leaves(straight.theta), jax.tree.leaves(resumed.theta)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert _rows(resumed.metrics_path) == _rows(straight.metrics_path)
    assert [int(r["step"]) for r in _rows(resumed.metrics_path)] == list(range(1, target + 1))
    assert resumed.final_eval == straight.final_eval
