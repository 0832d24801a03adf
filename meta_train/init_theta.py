"""Where meta-training starts: a fresh theta from the seed, or a saved / shipped one.

    theta, source = initial_theta(lopt, config.init_theta, key)

``init_theta`` (a `Recipe` field) is None (``lopt.init_meta_params(key)``), the name of a
shipped optimizer (``l2o.list_pretrained()``) or the path given to `l2o.save` (with or
without ``.json``). The run's optimizer is still the one its config names: a saved theta
can be meta-trained further under an option that leaves the meta-parameters' shapes alone
(e.g. ``lopt_config.lr_adapt``, a hand-designed rule around theta), which is how a shipped
optimizer is fine-tuned with it. The meta-parameter tree and shapes must match exactly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import numpy as np


def _shapes(tree: Any) -> dict[str, tuple]:
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    return {jax.tree_util.keystr(path): tuple(np.shape(leaf)) for path, leaf in flat}


def _difference(expected: dict, found: dict, shown: int = 4) -> str:
    """The first ``shown`` leaves whose shapes differ, or that only one tree has."""
    diff = []
    for key in sorted(set(expected) | set(found)):
        if key not in found:
            diff.append(f"{key} missing")
        elif key not in expected:
            diff.append(f"{key} not in this optimizer")
        elif expected[key] != found[key]:
            diff.append(f"{key}: {found[key]} (needs {expected[key]})")
    return "; ".join(diff[:shown]) + (f" (and {len(diff) - shown} more)" if len(diff) > shown else "")


def resolve(source: str) -> Any:
    """`l2o.LoadedOptimizer` of ``source``: a shipped name first, else a saved path.

    Raises:
      ValueError: neither a shipped optimizer nor a saved theta (the message lists the
        shipped names); errors of `l2o.load` for a file that exists but is unreadable.
    """
    import l2o

    if source in l2o.list_pretrained():
        return l2o.load_pretrained(source)
    base = Path(source)
    base = base.with_suffix("") if base.suffix in (".json", ".msgpack") else base
    if not base.with_name(base.name + ".json").is_file():
        raise ValueError(f"init_theta {source!r} is neither a shipped optimizer "
                         f"({', '.join(l2o.list_pretrained())}) nor a theta saved with "
                         "l2o.save (a path DIR/NAME with NAME.json beside NAME.msgpack).")
    return l2o.load(base)


def initial_theta(lopt: Any, source: str | None, key: jax.Array) -> tuple[Any, dict | None]:
    """The theta meta-training starts from and a record of where it came from.

    Returns ``(theta, None)`` for a fresh init (``source`` None), else ``(theta, {"source",
    "sha256", "architecture", "config"})`` of the loaded one (the weights' sha256 and the
    saved optimizer's config, for the provenance).

    Raises:
      ValueError: an unknown source (`resolve`), or meta-parameters whose tree or shapes
        differ from ``lopt``'s (the message names the first differing leaves).
    """
    fresh = lopt.init_meta_params(key)
    if source is None:
        return fresh, None
    loaded = resolve(source)
    expected, found = _shapes(fresh), _shapes(loaded.theta)
    if expected != found:
        raise ValueError(
            f"init_theta {source!r} ({loaded.record['architecture']}) does not fit {lopt!r}: "
            f"{_difference(expected, found)}. Give lopt and "
            "lopt_config the architecture it was saved with (only options that leave the "
            "meta-parameters' shapes alone, e.g. lr_adapt, may differ).")
    theta = jax.tree.map(lambda x, like: jax.numpy.asarray(x, like.dtype), loaded.theta, fresh)
    record = {"source": source, "sha256": loaded.record["weights"]["sha256"],
              "architecture": loaded.record["architecture"], "config": loaded.record["config"]}
    return theta, record
