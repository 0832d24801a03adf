"""Append-only metrics files of a run: ``metrics.csv`` and ``metrics.jsonl``.

Both get the same rows. The CSV has a fixed header (`COLUMNS`; a missing value is an
empty cell, extra keys go only to the JSONL). `offsets` reports the files' sizes, stored
in checkpoints so that a resumed run first cuts off rows written after its checkpoint.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

COLUMNS: tuple[str, ...] = (
    "step", "wall_time", "steps_per_s", "meta_loss", "meta_loss_finite_mean",
    "num_nonfinite", "num_resets", "grad_norm", "update_norm", "theta_norm",
    "eval_final_train_loss", "eval_final_test_loss", "eval_last_batch_loss",
    "eval_num_nonfinite",
)


class MetricsLog:
    """Writer of ``run_dir/metrics.csv`` and ``run_dir/metrics.jsonl``."""

    def __init__(self, run_dir: str | os.PathLike):
        self.csv_path = Path(run_dir) / "metrics.csv"
        self.jsonl_path = Path(run_dir) / "metrics.jsonl"
        self._csv = self._jsonl = None

    def truncate(self, offsets: dict | None) -> None:
        """Start fresh (``None``) or cut both files to ``offsets`` (from `offsets`) and append."""
        if offsets is None:
            self._open("w")
            self._csv.write(",".join(COLUMNS) + "\n")
            self._flush()
            return
        for path, size in ((self.csv_path, offsets["csv"]), (self.jsonl_path, offsets["jsonl"])):
            if not path.is_file() or path.stat().st_size < int(size):
                raise ValueError(
                    f"{str(path)!r} is shorter than at the checkpoint ({size} bytes); the run "
                    "directory was modified. Restore it or start a new run."
                )
            os.truncate(path, int(size))
        self._open("a")

    def _open(self, mode: str) -> None:
        self.close()
        self._csv = open(self.csv_path, mode, newline="")
        self._jsonl = open(self.jsonl_path, mode)

    def write(self, row: dict) -> None:
        """Append one row (a dict of numbers) to both files and flush them."""
        if self._csv is None:
            self.truncate(None)
        buffer = io.StringIO()
        csv.writer(buffer).writerow(["" if row.get(c) is None else row[c] for c in COLUMNS])
        self._csv.write(buffer.getvalue())
        self._jsonl.write(json.dumps(row, sort_keys=True) + "\n")
        self._flush()

    def _flush(self) -> None:
        for f in (self._csv, self._jsonl):
            f.flush()
            os.fsync(f.fileno())

    def offsets(self) -> dict:
        """Current sizes in bytes: ``{"csv": int, "jsonl": int}``."""
        if self._csv is not None:
            self._flush()
        return {
            "csv": self.csv_path.stat().st_size if self.csv_path.is_file() else 0,
            "jsonl": self.jsonl_path.stat().st_size if self.jsonl_path.is_file() else 0,
        }

    def close(self) -> None:
        """Close both files (idempotent)."""
        for f in (self._csv, self._jsonl):
            if f is not None:
                f.close()
        self._csv = self._jsonl = None
