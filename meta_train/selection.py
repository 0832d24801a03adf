"""Which meta-parameters a run ships: the last ones, or the best evaluated ones.

PES's estimate is noisy and a meta-objective on short truncations is not what a user
sees, so the last theta of a run is not always its best: a run may improve its held-out
evaluation for a while, then drift. With ``keep="best"`` a run ships the theta whose
held-out evaluation (`meta_train.evaluate`, the run's fixed held-out tasks and batches)
has the lowest `SELECT_METRIC`, among the initial theta, every periodic evaluation and
the last theta. Only the run's own held-out family takes part in the choice, never the
comparison suite.

The best periodic candidate so far is carried in the checkpoint (`to_extra` /
`from_extra`), so a resumed run chooses exactly as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import numpy as np
from flax import serialization

KEEP_CHOICES = ("last", "best")
SELECT_METRIC = "mean_log_loss"


@dataclasses.dataclass(frozen=True)
class Candidate:
    """An evaluated theta: its outer ``step``, ``score`` (`SELECT_METRIC`, lower is
    better), ``theta`` (on the host) and its whole held-out ``evaluation`` summary."""

    step: int
    score: float
    theta: Any
    evaluation: dict


def candidate(step: int, theta: Any, evaluation: dict) -> Candidate:
    """``theta`` of outer ``step`` with its held-out summary (`meta_train.evaluate.summarize`)."""
    return Candidate(int(step), float(evaluation[SELECT_METRIC]), jax.device_get(theta),
                     dict(evaluation))


def better(best: Candidate | None, new: Candidate) -> Candidate | None:
    """``new`` if its score is finite and lower than ``best``'s, else ``best``."""
    if not math.isfinite(new.score) or (best is not None and new.score >= best.score):
        return best
    return new


def choose(last: Candidate, best: Candidate | None, initial: Candidate) -> Candidate:
    """The lowest score of the last, best periodic and initial candidates; ties go to the
    one listed first (later theta first). All non-finite: the last one."""
    finite = [c for c in (last, best, initial) if c is not None and math.isfinite(c.score)]
    return min(finite, key=lambda c: c.score) if finite else last


def to_extra(best: Candidate | None) -> dict:
    """Checkpoint ``extra`` entries for ``best`` (none when there is no candidate yet)."""
    if best is None:
        return {}
    theta = jax.tree.map(np.asarray, serialization.to_state_dict(best.theta))
    return {"best": {"step": best.step, "score": best.score, "evaluation": best.evaluation,
                     "theta": theta}}


def from_extra(extra: dict, template: Any) -> Candidate | None:
    """The candidate stored by `to_extra` in a checkpoint's ``extra`` (``template``: any
    theta of the run, for the structure)."""
    stored = extra.get("best")
    if stored is None:
        return None
    theta = serialization.from_state_dict(template, stored["theta"])
    theta = jax.tree.map(lambda like, x: np.asarray(x, dtype=np.asarray(like).dtype),
                         template, theta)
    return Candidate(int(stored["step"]), float(stored["score"]), theta,
                     {k: v for k, v in stored["evaluation"].items()})


def record(chosen: Candidate, keep: str, last_step: int) -> dict:
    """The provenance entry saying which theta a run kept and why."""
    return {"keep": keep, "metric": SELECT_METRIC, "step": chosen.step,
            "score": chosen.score, "last_step": int(last_step),
            "evaluated_on": "the run's held-out family (its fixed evaluation tasks)"}
