"""What tasks a family gives, in words for reports: family, split, architecture, dataset.

    describe(registry.get("mlp-digits", split="heldout"))
    # {"family": "mlp-digits", "split": "heldout", "architecture": "64-64-64-10/relu",
    #  "dataset": "digits", "example_task": "mlp-digits/64-64-64-10/relu"}

The architecture is read off the name of one task of the family (every task of a family
has the same parameter shapes); the dataset off the family's name (``mlp-mnist``: mnist),
``"synthetic"`` for families that generate their data.
"""

from __future__ import annotations

from typing import Any

import jax

from tasks.data import DATASETS


def describe(family: Any, name: str | None = None) -> dict[str, str]:
    """``{"family", "split", "architecture", "dataset", "example_task"}`` of ``family``.

    ``name`` replaces ``family.name`` as the family label (e.g. the registry name a user
    typed, when the family was built with overrides).
    """
    task_name = family.sample_task(jax.random.PRNGKey(0)).name
    head, _, architecture = task_name.partition("/")
    _, _, suffix = family.name.partition("-")
    return {
        "family": name or family.name,
        "split": getattr(family, "split", "train"),
        "architecture": architecture or head,
        "dataset": suffix if suffix in DATASETS else "synthetic",
        "example_task": task_name,
    }


def sentence(description: dict[str, str]) -> str:
    """One phrase naming the tasks, e.g. ``mlp-digits, heldout split (64-64-64-10/relu on
    digits)``."""
    data = description["dataset"]
    on = f" on {data}" if data != "synthetic" else ", synthetic data"
    return (f"{description['family']}, {description['split']} split "
            f"({description['architecture']}{on})")
