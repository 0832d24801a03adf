"""Environment for a subprocess that sees several (virtual) CPU devices."""

import os


def cpu_devices_env(count: int) -> dict:
    """``os.environ`` plus ``count`` host CPU devices (the suite's other XLA flags kept)."""
    flags = os.environ.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={count}"
    return dict(os.environ, XLA_FLAGS=flags.strip(), JAX_PLATFORMS="cpu")
