"""What a run directory may be used for: a new run, a resumed one, or neither.

    prepare_new(run_dir, overwrite=False)    # refuses to replace an earlier run
    step = resume_step(run_dir, outer_steps, allow_fresh=False)   # where a resume starts

Each refusal is an exception whose message names the directory and the flag that does
what the user probably wants (``--resume``, ``--overwrite``, ``--allow-fresh``, a larger
``--outer-steps``).
"""

from __future__ import annotations

from pathlib import Path

from meta_train.checkpoint import CHECKPOINT, PREVIOUS, checkpoint_step

# Files a run writes; an existing one means the directory holds a run.
RUN_FILES = ("config.json", CHECKPOINT, PREVIOUS, "metrics.csv", "metrics.jsonl",
             "theta.json", "theta.msgpack", "theta_best.json", "theta_best.msgpack",
             "final_eval.json")


class RunExists(FileExistsError):
    """``--out`` names a directory that already holds a run (and no ``--overwrite``)."""


class NothingToResume(FileNotFoundError):
    """``--resume`` names a run without a checkpoint (and no ``--allow-fresh``)."""


class AlreadyDone(Exception):
    """A resumed run is already at (or past) the requested ``outer_steps``; nothing changed.

    Attributes: run_dir, step (the checkpoint's), outer_steps (asked for).
    """

    def __init__(self, run_dir: Path, step: int, outer_steps: int):
        self.run_dir, self.step, self.outer_steps = Path(run_dir), int(step), int(outer_steps)
        more = ("" if step == outer_steps else
                f" (asked for --outer-steps {outer_steps}; a run never goes back)")
        super().__init__(
            f"{str(self.run_dir)!r} is already at step {step}{more}; nothing changed. Pass "
            f"--outer-steps larger than {step} to continue it.")


def prepare_new(run_dir: Path, overwrite: bool = False) -> None:
    """Make sure a new run may write ``run_dir``; with ``overwrite``, delete the old run's files.

    Raises:
      RunExists: ``run_dir`` holds files of an earlier run and ``overwrite`` is False.
    """
    run_dir = Path(run_dir)
    found = [name for name in RUN_FILES if (run_dir / name).exists()]
    if not found:
        return
    if not overwrite:
        step = _step_or_none(run_dir / CHECKPOINT)
        at = f" (checkpoint at step {step})" if step is not None else ""
        raise RunExists(
            f"{str(run_dir)!r} already holds a run{at}; continue it with "
            f"'l2o meta-train --resume {run_dir}', replace it with --overwrite, or pass "
            "another --out.")
    for name in found:
        (run_dir / name).unlink()


def resume_step(run_dir: Path, outer_steps: int, allow_fresh: bool = False) -> int:
    """The outer step a resume of ``run_dir`` starts from (0 without a checkpoint).

    Raises:
      NothingToResume: no checkpoint in ``run_dir`` and ``allow_fresh`` is False.
      AlreadyDone: the checkpoint is at ``outer_steps`` or beyond.
      CheckpointError: the checkpoint cannot be read (truncated, corrupt).
    """
    path = Path(run_dir) / CHECKPOINT
    if not path.is_file():
        if allow_fresh:
            return 0
        raise NothingToResume(
            f"{str(run_dir)!r} has no {CHECKPOINT}: there is nothing to resume; pass "
            "--allow-fresh to start it from step 0 with its config.json, or start a new run "
            "with --out.")
    step = checkpoint_step(path)
    if step >= outer_steps:
        raise AlreadyDone(Path(run_dir), step, outer_steps)
    return step


def _step_or_none(path: Path) -> int | None:
    try:
        return checkpoint_step(path) if path.is_file() else None
    except Exception:  # an unreadable checkpoint is still a run; the message omits the step
        return None
