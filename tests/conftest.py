"""Shared pytest setup: slow tests run only with --runslow (or L2O_RUN_SLOW=1).

The tests' programs are small and compile-bound, so XLA's CPU backend compiles them with
LLVM optimisation level 0 (``--xla_backend_optimization_level=0``; XLA's own graph passes
still run): about a third less CPU time for the suite. Set ``L2O_TEST_XLA_OPT=1`` to keep
XLA's default level. It reaches subprocesses through the environment and must be set
before jax initialises its backend, hence here.
"""

import os

import pytest

if os.environ.get("L2O_TEST_XLA_OPT") != "1" and "xla_backend_optimization_level" not in \
        os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                               " --xla_backend_optimization_level=0").strip()


def pytest_addoption(parser):
    parser.addoption(
        "--runslow", action="store_true", default=False, help="also run tests marked slow"
    )


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow") or os.environ.get("L2O_RUN_SLOW") == "1":
        return
    skip_slow = pytest.mark.skip(reason="slow: run with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip_slow)
