"""The training loop: files of a run, exact resume after a crash, writability check."""

from __future__ import annotations

import csv
import json

import jax
import numpy as np
import pytest

import l2o
import meta_train.train as train_module
from meta_train.checkpoint import load_checkpoint, save_checkpoint
from meta_train.config import MetaTrainConfig
from meta_train.train import build, train

from helpers.systems import TOY_FAMILY

LOPT = l2o.MLPOptimizer(hidden_sizes=(4,))


def _config(out_dir, **overrides) -> MetaTrainConfig:
    base = dict(family="toy", lopt="mlp", lopt_config={"hidden_sizes": [4]}, horizon=8,
                trunc_length=4, num_tasks=2, num_pairs=2, outer_steps=6, sigma=0.05,
                outer_lr=1e-2, ckpt_every=3, log_every=1, eval_every=3, eval_tasks=2,
                out_dir=str(out_dir))
    base.update(overrides)
    return MetaTrainConfig(**base)


def _components(config):
    return build(config, family=TOY_FAMILY, heldout=TOY_FAMILY, lopt=LOPT)


def _rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def _trajectory(rows):
    timing = ("wall_time", "steps_per_s")
    return [{k: v for k, v in row.items() if k not in timing} for row in rows]


def test_crash_and_resume_is_bit_identical(tmp_path, monkeypatch):
    full_cfg = _config(tmp_path / "full")
    full = train(full_cfg, progress=False, components=_components(full_cfg))

    # Crash while writing the step-4 checkpoint: metrics already hold row 4.
    crash_cfg = _config(tmp_path / "crash", ckpt_every=1)
    real_save = train_module.save_checkpoint

    def crashing_save(path, state, extra):
        if extra["step"] == 4:
            raise KeyboardInterrupt("simulated crash")
        real_save(path, state, extra)

    monkeypatch.setattr(train_module, "save_checkpoint", crashing_save)
    with pytest.raises(KeyboardInterrupt):
        train(crash_cfg, progress=False, components=_components(crash_cfg))
    assert len(_rows(tmp_path / "crash" / "metrics.csv")) == 4
    monkeypatch.setattr(train_module, "save_checkpoint", real_save)

    resumed = train(crash_cfg, resume=tmp_path / "crash", progress=False,
                    components=_components(crash_cfg))
    assert resumed.steps == full.steps == 6
    for a, b in zip(jax.tree.leaves(full.theta), jax.tree.leaves(resumed.theta)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    full_rows = _rows(full.metrics_path)
    resumed_rows = _rows(resumed.metrics_path)
    assert [r["step"] for r in resumed_rows] == [str(s) for s in range(1, 7)]
    assert _trajectory(full_rows) == _trajectory(resumed_rows)
    assert full.final_eval == resumed.final_eval
    jsonl = [json.loads(line) for line in open(tmp_path / "crash" / "metrics.jsonl")]
    assert [r["step"] for r in jsonl] == list(range(1, 7))


def test_run_directory_contents(tmp_path):
    cfg = _config(tmp_path / "run", outer_steps=3, eval_every=0)
    result = train(cfg, progress=False, components=_components(cfg))
    files = sorted(p.name for p in result.run_dir.iterdir())
    assert files == ["checkpoint.msgpack", "config.json", "final_eval.json", "metrics.csv",
                     "metrics.jsonl", "theta.json", "theta.msgpack"]
    assert MetaTrainConfig.from_json(result.run_dir / "config.json") == cfg
    lopt, theta, record = l2o.load(result.theta_path)
    for a, b in zip(jax.tree.leaves(theta), jax.tree.leaves(result.theta)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    provenance = record["provenance"]
    assert provenance["outer_steps"] == 3 and provenance["strategy"] == "pes"
    assert provenance["horizon"] == 8 and provenance["trunc_length"] == 4
    assert provenance["sigma"] == 0.05 and provenance["seed"] == 0
    assert provenance["wall_time_s"] > 0 and "versions" in provenance and "date" in provenance
    rows = _rows(result.metrics_path)
    assert [int(r["step"]) for r in rows] == [1, 2, 3]
    assert all(np.isfinite(float(r["meta_loss"])) for r in rows)
    # Evaluation at the end only: the last row has no eval columns, final_eval has both.
    assert rows[-1]["eval_final_test_loss"] == ""
    assert set(result.final_eval) == {"trained", "initial"}
    # The checkpoint restores into a fresh state of the same config.
    template = _components(cfg).estimator.init(jax.random.PRNGKey(0), result.theta)
    state, extra = load_checkpoint(result.run_dir / "checkpoint.msgpack", template)
    assert int(state.step) == 3 and extra["step"] == 3


def test_resume_refuses_a_different_training_config(tmp_path):
    cfg = _config(tmp_path / "run")
    cfg.to_json(_prepare(tmp_path / "run"))
    with pytest.raises(ValueError, match="sigma: 0.05 -> 0.1"):
        train(_config(tmp_path / "run", sigma=0.1), resume=tmp_path / "run", progress=False)
    with pytest.raises(FileNotFoundError, match="no config.json"):
        train(cfg, resume=tmp_path / "nowhere", progress=False)


def _prepare(run_dir):
    run_dir.mkdir(parents=True)
    return run_dir / "config.json"


def test_unwritable_run_directory_is_reported(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(PermissionError, match="a-file/run' is not writable.*--out"):
        train(_config(blocker / "run"), progress=False)
    assert blocker.read_text() == "not a directory"


def test_checkpoint_rejects_other_structures(tmp_path):
    path = tmp_path / "ckpt.msgpack"
    save_checkpoint(path, {"a": np.zeros(3, np.float32)}, {"step": 1})
    with pytest.raises(ValueError, match="expects float32\\[4\\]"):
        load_checkpoint(path, {"a": np.zeros(4, np.float32)})
    with pytest.raises(ValueError, match="has 1 arrays but the run's state has 2"):
        load_checkpoint(path, {"a": np.zeros(3, np.float32), "b": np.zeros(1)})
    restored, extra = load_checkpoint(path, {"a": np.ones(3, np.float32)})
    np.testing.assert_array_equal(restored["a"], np.zeros(3))
    assert extra == {"step": 1}
    typed = {"k": jax.random.key(3)}
    save_checkpoint(path, typed)
    back, _ = load_checkpoint(path, {"k": jax.random.key(0)})
    np.testing.assert_array_equal(jax.random.key_data(back["k"]), jax.random.key_data(typed["k"]))
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_every_evaluation_uses_the_final_evaluations_tasks(tmp_path):
    """The periodic evaluation at the last step scores the final theta on the same tasks
    and batches as final_eval, so it equals final_eval["trained"]; the eval curve is
    comparable across steps."""
    cfg = _config(tmp_path / "run", outer_steps=4, eval_every=2)
    result = train(cfg, progress=False, components=_components(cfg))
    rows = {int(r["step"]): r for r in _rows(result.metrics_path)}
    assert rows[2]["eval_final_train_loss"] != "" and rows[3]["eval_final_train_loss"] == ""
    for key in ("final_train_loss", "final_test_loss"):
        np.testing.assert_allclose(float(rows[4][f"eval_{key}"]),
                                   result.final_eval["trained"][key], rtol=1e-6)
