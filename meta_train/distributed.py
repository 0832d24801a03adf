"""One meta-training run over several processes (hosts): `jax.distributed` and host I/O.

Every process runs the same program (multi-controller SPMD): the same config, the same
PRNG keys, the same jitted outer step over a mesh of *all* processes' devices (see
`meta_train.sharding`). Collectives (the gradient all-reduce, gathers for checkpoints) need
every process to take part, so every process executes the whole loop; only the primary
process (index 0) writes files.

    initialize("10.0.0.1:1234", num_processes=2, process_id=0)   # before any JAX computation
    host_state = to_host(state)      # collective: call it on every process
    if is_primary(): save(host_state)

On CPU the cross-process collectives use gloo (``jax_cpu_collectives_implementation``,
set here before the backend starts); GPUs use NCCL and TPUs their interconnect.
"""

from __future__ import annotations

import hashlib
from typing import Any

import jax
import jax.extend.backend
import numpy as np


def parse_coordinator(address: str) -> tuple[str, int]:
    """``"HOST:PORT"`` -> ``(host, port)``; ``ValueError`` saying what was expected otherwise."""
    host, sep, port = str(address).rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(
            f"coordinator address {address!r} is not HOST:PORT (e.g. 10.0.0.1:1234 or "
            "127.0.0.1:29500); pass the address of process 0 and a free port."
        )
    return host, int(port)


def check_process_args(coordinator: str | None, num_processes: int, process_id: int) -> None:
    """Validate a process-group description (no JAX calls).

    Raises ``ValueError`` unless ``num_processes >= 1``, ``0 <= process_id < num_processes``
    and, when ``num_processes > 1``, ``coordinator`` is a ``HOST:PORT`` string.
    """
    if isinstance(num_processes, bool) or not isinstance(num_processes, int) or num_processes < 1:
        raise ValueError(f"num_processes must be an int >= 1, got {num_processes!r}.")
    if isinstance(process_id, bool) or not isinstance(process_id, int) \
            or not 0 <= process_id < num_processes:
        raise ValueError(
            f"process_id must be in [0, {num_processes - 1}] for num_processes={num_processes}, "
            f"got {process_id!r}."
        )
    if num_processes > 1 and coordinator is None:
        raise ValueError(
            f"num_processes={num_processes} needs a coordinator address HOST:PORT "
            "(--coordinator) reachable from every process."
        )
    if coordinator is not None:
        parse_coordinator(coordinator)


def initialize(
    coordinator: str | None,
    num_processes: int = 1,
    process_id: int = 0,
    initialization_timeout: int = 300,
) -> bool:
    """Join the process group ``coordinator`` (``"HOST:PORT"`` of process 0).

    A no-op returning False for a single process without coordinator. Otherwise calls
    ``jax.distributed.initialize`` (after selecting gloo for CPU collectives) and returns
    True; calling it again with the same arguments is a no-op. Call it before creating
    any array you keep: a backend started earlier (importing evosax starts one) is
    cleared, and arrays made on it become unusable.

    Raises:
      ValueError: invalid arguments (see `check_process_args`).
      RuntimeError: JAX was already initialised differently, or its backend already started.
    """
    check_process_args(coordinator, num_processes, process_id)
    if coordinator is None:
        return False
    if jax.distributed.is_initialized():
        if (jax.process_count(), jax.process_index()) != (num_processes, process_id):
            raise RuntimeError(
                f"jax.distributed is already initialised as process {jax.process_index()} of "
                f"{jax.process_count()}, not {process_id} of {num_processes}."
            )
        return True
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    from jax._src import xla_bridge  # the check jax.distributed itself makes

    if xla_bridge.backends_are_initialized():
        # Importing evosax (through meta_train) already ran small computations on a
        # single-process backend; drop it so the backend restarts inside the process
        # group. Arrays created before this point must not be used afterwards.
        jax.extend.backend.clear_backends()
    try:
        jax.distributed.initialize(
            coordinator_address=coordinator, num_processes=num_processes,
            process_id=process_id, initialization_timeout=initialization_timeout,
        )
    except RuntimeError as err:
        raise RuntimeError(
            f"could not join process group {coordinator} as process {process_id} of "
            f"{num_processes}: {err}. Initialise before any JAX computation, start every "
            "process with the same coordinator and num_processes, and check the port is free."
        ) from err
    return True


def is_primary() -> bool:
    """Whether this process writes the run's files (process index 0)."""
    return jax.process_index() == 0


def to_host(tree: Any) -> Any:
    """Every leaf of ``tree`` as a whole host array on every process.

    Leaves held entirely by this process are fetched, replicated leaves are read from a
    local copy, and leaves split across processes are all-gathered -- a collective, so
    every process must call `to_host` on the same tree at the same point. PRNG key arrays
    come back as (local) key arrays, everything else as ``numpy.ndarray``.
    """
    from jax.experimental import multihost_utils

    def leaf(x):
        if not isinstance(x, jax.Array):
            return np.asarray(x)
        is_key = jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)
        raw = jax.random.key_data(x) if is_key else x
        if raw.is_fully_addressable:
            value = np.asarray(jax.device_get(raw))
        elif raw.is_fully_replicated:
            value = np.asarray(raw.addressable_data(0))
        else:
            value = np.asarray(multihost_utils.process_allgather(raw, tiled=True))
        return jax.random.wrap_key_data(value, impl=jax.random.key_impl(x)) if is_key else value

    return jax.tree.map(leaf, tree)


def assert_same_everywhere(text: str, what: str) -> None:
    """Raise on every process unless ``text`` is identical on all of them (a no-op for one
    process). Used to check that all processes run the same training config."""
    if jax.process_count() == 1:
        return
    from jax.experimental import multihost_utils

    digest = np.frombuffer(hashlib.sha256(text.encode()).digest(), dtype=np.uint32)
    try:
        multihost_utils.assert_equal(digest, f"{what} differs between processes")
    except AssertionError as err:
        raise ValueError(
            f"{what} differs between processes ({err}); start every process with the same "
            "settings (only process_id and out_dir may differ)."
        ) from None
