"""Stop a meta-training run cleanly on SIGINT / SIGTERM.

    with StopSignals() as stop:
        for step in ...:
            ...
            if stop.signum is not None:
                save the checkpoint of `step`; raise Interrupted(step, stop.signum, run_dir)

The first signal only records itself (the running outer step finishes); a second one of
the same kind raises `KeyboardInterrupt` at once. Handlers are installed only in the
main thread and restored on exit.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(Exception):
    """A run stopped by a signal after checkpointing ``step``.

    Attributes:
      step: the last finished (and checkpointed) outer step.
      signum: the signal number; `exit_status` is ``128 + signum`` (130 / 143).
      run_dir: the run directory to resume.
    """

    def __init__(self, step: int, signum: int, run_dir: str | Path):
        self.step, self.signum, self.run_dir = int(step), int(signum), Path(run_dir)
        super().__init__(f"interrupted at step {self.step}; resume with: "
                         f"l2o meta-train --resume {self.run_dir}")

    @property
    def exit_status(self) -> int:
        """``128 + signum``, the shell's convention for a process ended by a signal."""
        return 128 + self.signum


class StopSignals:
    """Context manager recording the first SIGINT / SIGTERM in `signum` (None until then)."""

    def __init__(self):
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    def _handle(self, signum, frame):
        if self.signum == signum:  # asked twice: stop now
            raise KeyboardInterrupt
        self.signum = signum

    def install(self) -> "StopSignals":
        """Catch SIGINT / SIGTERM (main thread only; elsewhere a no-op); returns self."""
        if threading.current_thread() is threading.main_thread():
            for signum in SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def restore(self) -> None:
        """Put back the handlers that `install` replaced."""
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def __enter__(self) -> "StopSignals":
        return self.install()

    def __exit__(self, *exc) -> None:
        self.restore()
