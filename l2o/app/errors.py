"""How the ``l2o`` command line reports errors: one line, one prefix, two exit statuses.

Every subcommand prints ``l2o SUBCOMMAND: error: WHAT IS WRONG; WHAT TO DO`` on stderr and
exits with `USAGE` (2: bad flags, names, files or config, found before any long work) or
`FAILURE` (1: something failed at run time: missing data, an unreadable checkpoint).
An interrupted meta-training exits with ``128 + signal number`` (130 for SIGINT, 143 for
SIGTERM) after checkpointing.
"""

from __future__ import annotations

USAGE = 2
FAILURE = 1


class UsageError(SystemExit):
    """Bad usage (exit status `USAGE` under ``l2o``); the message says what to pass instead.

    A `SystemExit`, so a script that calls a subcommand's code and does not catch it still
    ends with the message and no traceback.
    """


class RunFailure(Exception):
    """A failure at run time (exit status `FAILURE`); the message says what to do."""


def one_line(message: object) -> str:
    """``message`` on one line (newlines and runs of spaces become single spaces)."""
    return " ".join(str(message).split())


def error_line(command: str | None, message: object) -> str:
    """``l2o COMMAND: error: MESSAGE`` on one line (``l2o: error: ...`` without a command)."""
    prefix = f"l2o {command}" if command else "l2o"
    return f"{prefix}: error: {one_line(message)}"
