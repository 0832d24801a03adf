"""Multi-process meta-training on localhost: two `jax.distributed` processes (2 CPU devices
each, gloo collectives) run ``l2o meta-train`` and end with the single-process theta; only
process 0 writes files."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from meta_train import distributed
from meta_train.config import MetaTrainConfig
from meta_train.train import train

from helpers.devices import cpu_devices_env

ARGS = ["meta-train", "--family", "quadratic", "--lopt", "mlp", "--horizon", "8",
        "--trunc-length", "4", "--num-tasks", "2", "--num-pairs", "2", "--outer-steps", "3",
        "--sigma", "0.05", "--outer-lr", "0.01", "--no-progress",
        "--set", "lopt_config.hidden_sizes=[4]", "--set", "eval_every=0",
        "--set", "eval_tasks=2", "--set", "ckpt_every=2", "--set", "log_every=1"]

PROCESS = textwrap.dedent("""
    import sys
    from l2o.app.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_check_process_args_and_coordinator_parsing():
    assert distributed.parse_coordinator("10.0.0.1:1234") == ("10.0.0.1", 1234)
    assert distributed.parse_coordinator("[::1]:80") == ("[::1]", 80)
    for bad in ("10.0.0.1", ":1234", "host:port", "host:0", "host:70000"):
        with pytest.raises(ValueError, match="is not HOST:PORT"):
            distributed.parse_coordinator(bad)
    distributed.check_process_args(None, 1, 0)
    with pytest.raises(ValueError, match=r"process_id must be in \[0, 1\] .* got 2"):
        distributed.check_process_args("h:1", 2, 2)
    with pytest.raises(ValueError, match="num_processes=2 needs a coordinator"):
        MetaTrainConfig(num_processes=2, process_id=1)
    assert distributed.initialize(None, 1, 0) is False  # single process: nothing to join
    assert distributed.is_primary()
    distributed.assert_same_everywhere("anything", "config")  # no-op for one process


def test_to_host_returns_whole_arrays():
    tree = {"a": jax.numpy.arange(6.0).reshape(2, 3), "k": jax.random.PRNGKey(3), "n": 2}
    host = distributed.to_host(tree)
    np.testing.assert_array_equal(host["a"], np.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(host["k"], np.asarray(jax.random.PRNGKey(3)))
    assert isinstance(host["a"], np.ndarray) and int(host["n"]) == 2


@pytest.mark.slow  # ~50 s on 2 cores: three compilations of the training step
def test_two_processes_match_single_process(tmp_path):
    port = _free_port()
    env = cpu_devices_env(2)
    procs = []
    for pid in (0, 1):
        argv = ARGS + ["--out", str(tmp_path / f"p{pid}"), "--coordinator", f"127.0.0.1:{port}",
                       "--num-processes", "2", "--process-id", str(pid)]
        log = open(tmp_path / f"log{pid}.txt", "w")
        procs.append((subprocess.Popen([sys.executable, "-c", PROCESS, *argv], env=env,
                                       stdout=log, stderr=subprocess.STDOUT), log))
    try:
        codes = [p.wait(timeout=240) for p, _ in procs]
    finally:
        for p, log in procs:
            if p.poll() is None:
                p.kill()
            log.close()
    logs = [(tmp_path / f"log{pid}.txt").read_text()[-3000:] for pid in (0, 1)]
    assert codes == [0, 0], logs

    # Only process 0 wrote the run directory; process 1 computed but wrote nothing.
    written = sorted(f.name for f in (tmp_path / "p0").iterdir())
    assert {"config.json", "metrics.csv", "checkpoint.msgpack", "theta.json",
            "theta.msgpack", "final_eval.json"} <= set(written)
    assert not (tmp_path / "p1").exists()
    assert "run directory" in logs[1]  # process 1 did finish the run
    with open(tmp_path / "p0" / "metrics.csv") as f:
        assert len(f.read().strip().splitlines()) == 1 + 3
    provenance = json.loads((tmp_path / "p0" / "theta.json").read_text())["provenance"]
    assert provenance["train_device"].endswith("x4 (2 processes)")

    # The same run in this process (1 device unless the suite forces more).
    import l2o
    from l2o.app.cli import build_parser
    from meta_train.cli import resolve_config

    args = build_parser().parse_args(ARGS + ["--out", str(tmp_path / "single")])
    single = train(resolve_config(args), progress=False)
    _, theta_two, _ = l2o.load(tmp_path / "p0" / "theta")
    leaves_single = [np.asarray(x) for x in jax.tree.leaves(single.theta)]
    leaves_two = [np.asarray(x) for x in jax.tree.leaves(theta_two)]
    assert len(leaves_single) == len(leaves_two) > 0
    for a, b in zip(leaves_single, leaves_two):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
