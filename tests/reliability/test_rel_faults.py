"""Faults lose nothing: SIGKILL + resume, interrupted checkpoint writes, determinism."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from typing import Any, NamedTuple

import jax
import numpy as np
import pytest

import meta_train.checkpoint as checkpoint_module
from meta_train.checkpoint import load_checkpoint, save_checkpoint
from meta_train.train import CHECKPOINT, build, train

from helpers.reliability import metrics_rows, tiny_config, trajectory, tree_bytes

OUTER_STEPS = 200
# Runs `train(config)` for the config given as JSON in argv[1]; the test kills it.
TRAIN_SCRIPT = (
    "import json, sys\n"
    "from meta_train.config import MetaTrainConfig\n"
    "from meta_train.train import train\n"
    "train(MetaTrainConfig.from_dict(json.loads(sys.argv[1])), progress=False)\n"
)


class Reference(NamedTuple):
    result: Any  # TrainResult of the uninterrupted run
    components: Any  # what it was built from (family, optimizer, estimator)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Reference:
    """An uninterrupted run of `OUTER_STEPS` outer steps (checkpoint only at the end)."""
    config = tiny_config(tmp_path_factory.mktemp("reference") / "run", outer_steps=OUTER_STEPS)
    components = build(config)
    return Reference(train(config, progress=False, components=components), components)


def _sharing_compilation(config, reference: Reference):
    """`build(config)` around the reference's family and optimizer objects: the jitted
    estimator step and evaluation compiled for the reference run are reused."""
    ref = reference.components
    return build(config, family=ref.family, heldout=ref.heldout, lopt=ref.lopt)


def _wait_for_rows(run_dir, target, proc, timeout=120.0):
    """Poll metrics.csv until it has ``target`` data rows (or the process ends)."""
    path = run_dir / "metrics.csv"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if path.is_file() and path.read_bytes().count(b"\n") - 1 >= target:
            return
        time.sleep(0.002)


def test_sigkill_at_a_random_step_then_resume_is_bit_identical(reference, tmp_path):
    seed = int(os.environ.get("L2O_REL_KILL_SEED", time.time_ns() % 2**31))
    kill_after = random.Random(seed).randint(2, OUTER_STEPS - 60)
    context = f"(kill seed {seed}, killed after metrics row {kill_after}; rerun with L2O_REL_KILL_SEED={seed})"
    config = tiny_config(tmp_path / "run", outer_steps=OUTER_STEPS, ckpt_every=1)
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-c", TRAIN_SCRIPT, json.dumps(config.to_dict())],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ),
    )
    try:
        _wait_for_rows(run_dir, kill_after, proc)
        proc.send_signal(signal.SIGKILL)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL, (
        f"the run was not killed mid-training (exit {proc.returncode}) {context}: "
        + stderr.decode()[-2000:]
    )
    assert not (run_dir / "theta.msgpack").exists(), context

    # Whatever the kill interrupted, the latest checkpoint is complete and loadable.
    components = _sharing_compilation(config, reference)
    template = components.estimator.init(jax.random.PRNGKey(0), components.theta_init)
    state, extra = load_checkpoint(run_dir / CHECKPOINT, template)
    killed_at = int(extra["step"])
    assert int(state.step) == killed_at and kill_after - 1 <= killed_at < OUTER_STEPS, context

    resumed = train(config, resume=run_dir, progress=False, components=components)
    full = reference.result
    assert resumed.steps == full.steps == OUTER_STEPS
    assert tree_bytes(resumed.theta) == tree_bytes(full.theta), context
    assert (run_dir / "theta.msgpack").read_bytes() == (
        full.run_dir / "theta.msgpack").read_bytes(), context
    rows = metrics_rows(resumed.metrics_path)
    assert [int(r["step"]) for r in rows] == list(range(1, OUTER_STEPS + 1)), context
    assert trajectory(rows) == trajectory(metrics_rows(full.metrics_path)), context
    assert resumed.final_eval == full.final_eval


def test_same_seed_gives_bit_identical_theta_and_another_seed_does_not(reference, tmp_path):
    full = reference.result
    config = _with(full, out_dir=str(tmp_path / "again"))
    again = train(config, progress=False, components=build(config))  # compiled afresh
    assert tree_bytes(again.theta) == tree_bytes(full.theta)
    assert trajectory(metrics_rows(again.metrics_path)) == trajectory(
        metrics_rows(full.metrics_path))
    assert again.final_eval == full.final_eval

    config = _with(full, out_dir=str(tmp_path / "other"), seed=1)
    other = train(config, progress=False, components=_sharing_compilation(config, reference))
    assert tree_bytes(other.theta) != tree_bytes(full.theta)


def _with(result, **changes):
    """The config saved in ``result``'s run directory with ``changes``."""
    saved = json.loads((result.run_dir / "config.json").read_text())
    saved.update(changes)
    return tiny_config(**saved)


def test_checkpoint_write_interrupted_after_the_temp_file_keeps_the_previous_one(
        tmp_path, monkeypatch):
    path = tmp_path / CHECKPOINT
    old = {"theta": np.arange(4, dtype=np.float32), "key": jax.random.key(7)}
    save_checkpoint(path, old, {"step": 1})
    before = path.read_bytes()

    real_replace = os.replace
    written = []

    def crash_before_rename(src, dst):
        if str(src).endswith(".tmp"):
            written.append(os.path.getsize(src))
            raise OSError(28, "No space left on device (simulated)")
        return real_replace(src, dst)

    monkeypatch.setattr(checkpoint_module.os, "replace", crash_before_rename)
    new = {"theta": np.full(4, 9.0, np.float32), "key": jax.random.key(8)}
    with pytest.raises(OSError, match="simulated"):
        save_checkpoint(path, new, {"step": 2})
    monkeypatch.setattr(checkpoint_module.os, "replace", real_replace)

    assert written and written[0] > 0  # the temp file was complete when the rename failed
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [CHECKPOINT]  # no temp file left behind
    state, extra = load_checkpoint(path, new)
    assert extra == {"step": 1}
    np.testing.assert_array_equal(state["theta"], old["theta"])
    np.testing.assert_array_equal(jax.random.key_data(state["key"]),
                                  jax.random.key_data(old["key"]))


def test_training_crash_inside_a_checkpoint_write_resumes_exactly(reference, tmp_path,
                                                                  monkeypatch):
    full = reference.result
    config = _with(full, out_dir=str(tmp_path / "crash"), ckpt_every=2)
    components = _sharing_compilation(config, reference)
    real_write = checkpoint_module.write_atomic

    def write_then_die(path, data):
        if path.name == CHECKPOINT and (path.parent / "metrics.csv").read_text().count("\n") > 4:
            # The step-4 checkpoint: leave a half-written temp file, as a kill would.
            (path.parent / f".{path.name}.crashed.tmp").write_bytes(data[: len(data) // 2])
            raise KeyboardInterrupt("killed while writing the checkpoint")
        real_write(path, data)

    monkeypatch.setattr(checkpoint_module, "write_atomic", write_then_die)
    with pytest.raises(KeyboardInterrupt):
        train(config, progress=False, components=components)
    monkeypatch.setattr(checkpoint_module, "write_atomic", real_write)
    template = components.estimator.init(jax.random.PRNGKey(0), components.theta_init)
    _, extra = load_checkpoint(tmp_path / "crash" / CHECKPOINT, template)
    assert extra["step"] == 2

    resumed = train(config, resume=tmp_path / "crash", progress=False, components=components)
    assert tree_bytes(resumed.theta) == tree_bytes(full.theta)
    assert trajectory(metrics_rows(resumed.metrics_path)) == trajectory(
        metrics_rows(full.metrics_path))
